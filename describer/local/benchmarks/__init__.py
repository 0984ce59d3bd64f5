"""Measured runs: on the local stack (`make local-bench`, `backfill-bench`, `cost`, `chaos`) and in
process (`make copy-bench`); each prints its figure or verdict on the last line."""
