"""`make demo`: the demo run over the local stack, its product folders and its HTML gallery."""
