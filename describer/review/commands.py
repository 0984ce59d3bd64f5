"""Sub-commands ``review serve`` (the review desk) and ``corrections export`` (reviews as training data).

Both talk to the local stack by default, and to a stack on AWS when given ``--stack-name`` (with
``--profile``/``--region``): the reviewer's own credentials, identified by STS GetCallerIdentity.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from describer.deployment_commands import add_target_arguments, deployment_from
from describer.review.access import exposure_refusal, tls_context
from describer.review.corrections import CORRECTIONS_FILE, export_corrections
from describer.review.desk import ReviewDesk
from describer.review.stack import review_desk
from describer.review.web import ReviewApp, serve

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# How often the desk publishes again the events of reviews it could not announce.
ANNOUNCE_RETRY_S = 60.0

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
        help=f"address to bind (default {DEFAULT_HOST}: this machine only; anything else exposes the desk "
        "and needs --tls-cert/--tls-key or --insecure-remote)",
    )
    serve_parser.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this certificate chain"
    )
    serve_parser.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    serve_parser.add_argument(
        "--insecure-remote",
        action="store_true",
        help="allow a non-loopback --host over plain HTTP (the token and cookie travel in clear text)",
    )
    serve_parser.add_argument(
        "--host-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a name browsers reach the desk by (the Host header it accepts; the first is in the URL); "
        "repeatable",
    )
    add_target_arguments(serve_parser)
    serve_parser.set_defaults(handler=_serve)

    corrections = subparsers.add_parser("corrections", help="reviews as training data")
    corrections_actions = corrections.add_subparsers(dest="corrections_command", required=True)
    export = corrections_actions.add_parser(
        "export", help="every accepted or corrected attribute as Q/A pairs (train --extra-pairs)"
    )
    export.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="writes corrections.csv, images/"
    )
    add_target_arguments(export)
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    s3 = deployment.client("s3")
    reviewed = [record for record in deployment.records() if record.review_decision is not None]

    with Progress(console=_console, transient=True) as progress:
        task = progress.add_task("Exporting reviewed records", total=len(reviewed))

        def read_photo(bucket: str, key: str, version: str) -> bytes:
            arguments = {"Bucket": bucket, "Key": key} | ({"VersionId": version} if version != "null" else {})
            body: bytes = s3.get_object(**arguments)["Body"].read()
            return body

        report = export_corrections(reviewed, args.out, read_photo, on_record=lambda: progress.advance(task))
    table = Table(title=f"Corrections from {deployment.stack_name}")
    for column in ("reviewed records", "exported", "of them corrected", "Q/A pairs", "photos", "written to"):
        table.add_column(column)
    table.add_row(
        str(len(reviewed)),
        str(report.records),
        str(report.corrected),
        str(report.pairs),
        str(report.photos),
        str(args.out / CORRECTIONS_FILE),
    )
    Console().print(table)
    return 0


def _serve(args: argparse.Namespace) -> int:
    if (args.tls_cert is None) != (args.tls_key is None):
        _console.print("[red]--tls-cert and --tls-key go together[/red]")
        return 2
    refusal = exposure_refusal(args.host, args.tls_cert is not None, args.insecure_remote, args.host_name)
    if refusal is not None:
        _console.print(f"[red]{refusal}[/red]")
        return 2
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert is not None else None
    deployment = deployment_from(args)
    desk = review_desk(deployment)
    app = ReviewApp(desk, deployment.client("s3"), deployment.stack_name)
    server = serve(app, args.host, args.port, tls=tls, host_names=args.host_name)
    where = "this machine only" if args.host == DEFAULT_HOST else "every client that can reach it"
    _console.print(f"Review desk for stack {deployment.stack_name}, reviewing as {desk.reviewer}")
    _console.print(f"Bound to {args.host} ({where}); stop with Ctrl-C.")
    # The one line a script or a person needs, on stdout and flushed.
    print(f"review: {server.url}", flush=True)
    stop = threading.Event()
    threading.Thread(target=_retry_announcements, args=(desk, stop), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    return 0


def _retry_announcements(desk: ReviewDesk, stop: threading.Event) -> None:
    while not stop.wait(ANNOUNCE_RETRY_S):
        if waiting := desk.retry_announcements():
            _console.print(f"{waiting} review(s) recorded but not yet announced: retrying")
