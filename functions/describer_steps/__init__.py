"""One module per Lambda step, named after its Lambda (``prepare`` serves functions/prepare/app.py),
plus what several steps share: the state shapes (``states``), settings and photo sets."""
