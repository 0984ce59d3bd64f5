"""SageMaker: the training job launcher, the endpoint's deployment and its autoscaling."""
