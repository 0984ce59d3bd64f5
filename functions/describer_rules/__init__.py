"""The pure rules shared by the pipeline, the endpoint and training: catalogue, answers, confidence,
fusion, content rules and contracts.

Plain, typed Python with no AWS SDK and no Powertools: this package is what a model dir's ``code/``
ships beside the endpoint.
"""
