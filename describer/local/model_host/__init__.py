"""The local model host: SageMaker Runtime and Bedrock Runtime on one port, for the local stack.

- ``server``: the HTTP server and its routes (``python -m describer.local.model_host`` runs it).
- ``usage``: what the host served (``make cost`` meters it) and the calls per routing id.
- ``faults``: the faults it injects on request, in AWS's wire shapes.
- ``description_backends``: who answers ``Converse``: the offline writer or an OpenAI-compatible server.
"""

from describer.local.model_host.server import ModelHost

__all__ = ["ModelHost"]
