"""Product Describer: the `describer` command, the local stack and the tools around the pipeline."""
