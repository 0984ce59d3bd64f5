"""Domain rules shared by the pipeline Lambdas, the SageMaker endpoint and training.

Nothing here knows about Lambda, Step Functions or torch: each module is plain, typed Python.
"""
