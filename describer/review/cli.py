"""Sub-commands ``review serve`` (the review desk) and ``corrections export`` (reviews as training pairs).

Both talk to the local stack by default, and to a stack on AWS when given ``--stack-name`` (with
``--profile``/``--region``): the reviewer's own credentials, identified by STS GetCallerIdentity.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from describer.local.cli import _add_target_arguments, deployment_from
from describer.review.stack import review_desk
from describer.review.web import ReviewApp, serve

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

_console = Console(stderr=True)


def register(subparsers: Any) -> None:
    review = subparsers.add_parser(
        "review", help="the review desk: accept, correct or reject flagged records"
    )
    actions = review.add_subparsers(dest="review_command", required=True)
    serve_parser = actions.add_parser("serve", help="serve the review desk's web pages")
    serve_parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: a free one"
    )
    serve_parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}: this machine only; anything else exposes the desk)",
    )
    _add_target_arguments(serve_parser)
    serve_parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    desk = review_desk(deployment)
    server = serve(ReviewApp(desk, deployment.client("s3"), deployment.stack_name), args.host, args.port)
    where = "this machine only" if args.host == DEFAULT_HOST else "every client that can reach it"
    _console.print(f"Review desk for stack {deployment.stack_name}, reviewing as {desk.reviewer}")
    _console.print(f"Bound to {args.host} ({where}); stop with Ctrl-C.")
    # The one line a script or a person needs, on stdout and flushed.
    print(f"review: {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
