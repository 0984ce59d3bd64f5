"""`describer`: one command for data, training, evaluation, SageMaker and the local stack.

Each area adds its own sub-commands with a ``register(subparsers)`` function; this module only
wires them together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="describer",
        description="Product Describer: data, training, evaluation, SageMaker and the local stack.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in _registrations():
        register(subparsers)
    return parser


def _registrations() -> list[Callable[[Any], None]]:
    # Imported here so an import error in one area names that area.
    from describer.deployment_commands import register as register_deployment
    from describer.export_commands import register as register_export
    from describer.local.commands import register as register_local
    from describer.review.commands import register as register_review
    from describer.sagemaker.launcher import register as register_sagemaker
    from describer.status import register as register_status
    from training.commands import register as register_training

    return [
        register_training,
        register_sagemaker,
        register_local,
        register_deployment,
        register_status,
        register_review,
        register_export,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.handler(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
