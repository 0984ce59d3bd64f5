"""The SageMaker endpoint: BLIP-2 answering a product's attribute questions (docs/endpoint.md).

Copied whole into ``<model dir>/code/endpoint/``; ``inference.py`` is the entry point the SageMaker
Hugging Face inference toolkit loads (``code/inference.py``).
"""
