"""The file names in a model directory: training writes them, the endpoint and evaluation read them."""

CATALOGUE_FILE = "catalogue.json"
METADATA_FILE = "describer_model.json"
