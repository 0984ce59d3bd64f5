"""AWS access for the pipeline Lambdas: clients, the results table, product events, observability."""
