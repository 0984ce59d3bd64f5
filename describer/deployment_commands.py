"""Sub-commands that work on any deployment: ``upload``, ``backfill``, ``redrive`` and ``results``.

They talk to the local stack by default, and to a stack on AWS when given ``--stack-name`` (with
``--profile``/``--region`` as usual for boto3); ``status`` and ``review`` take the same target
options (``add_target_arguments``, ``deployment_from``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from describer import redrive
from describer.deployment import Deployment, files_to_upload, upload_all
from describer.local.stack import default_state_dir
from describer_rules.contracts import ProductRecord, Status
from describer_rules.feeds.selection import in_locale
from describer_rules.locales import parse_locales

# Piped output (make in CI, a log file) gets room for the demo's table instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=180)


def register(subparsers: Any) -> None:
    upload = subparsers.add_parser("upload", help="upload product photos so the pipeline describes them")
    upload.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    upload.add_argument("--key-prefix", default="", help="inserted after the upload prefix, e.g. Shirts/")
    add_target_arguments(upload)
    upload.set_defaults(handler=_upload)

    backfill = subparsers.add_parser(
        "backfill", help="describe an existing catalogue in S3 (resumable: a rerun does what is missing)"
    )
    backfill.add_argument("source", metavar="s3://BUCKET/PREFIX", help="under the stack's BackfillPrefix")
    backfill.add_argument("--manifest", metavar="S3URI", help="a CSV manifest (Key column) under backfill/")
    backfill.add_argument("--category", help="the category of every product (object metadata still wins)")
    backfill.add_argument(
        "--timeout", type=float, help="seconds to follow the backfill (default: until done)"
    )
    backfill.add_argument(
        "--copy",
        choices=["on-demand", "batch"],
        default="on-demand",
        help="how the copy is bought: on-demand Converse calls (default), or Bedrock batch inference"
        " jobs at about half the price, hours later (docs/cost.md)",
    )
    add_target_arguments(backfill)
    backfill.set_defaults(handler=_backfill)
    redrive.add_parser(subparsers, add_target_arguments).set_defaults(
        handler=lambda args: redrive.redrive(args, deployment_from(args), console)
    )

    results = subparsers.add_parser("results", help="the product records")
    results.add_argument("--status", type=Status, choices=list(Status))
    results.add_argument(
        "--needs-review",
        action="store_true",
        help="only the records that need review (a query of the sparse by-review index), newest first",
    )
    results.add_argument("--json", action="store_true", help="a JSON array of ProductRecord objects")
    results.add_argument(
        "--locale", type=_locale, help="one locale's copy (e.g. es-ES); default: the default locale's"
    )
    add_target_arguments(results)
    results.set_defaults(handler=_results)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack-name", help="a stack on AWS (default: the local stack)")
    parser.add_argument("--profile", help="AWS profile for --stack-name")
    parser.add_argument("--region", help="AWS region for --stack-name")
    parser.add_argument("--state-dir", type=Path, default=default_state_dir(), help=argparse.SUPPRESS)


def deployment_from(args: argparse.Namespace) -> Deployment:
    if args.stack_name or args.profile:
        if not args.stack_name:
            raise SystemExit("--profile needs --stack-name")
        return Deployment.on_aws(args.stack_name, args.profile, args.region)
    try:
        return Deployment.local(args.state_dir.resolve())
    except LookupError as error:
        raise SystemExit(str(error)) from None


def _upload(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    files = files_to_upload(args.paths)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Uploading", total=len(files))
        responses = upload_all(deployment, files, args.key_prefix, lambda *_: progress.advance(task))
    for key in responses:
        console.print(f"s3://{deployment.upload_bucket}/{deployment.upload_prefix}{key}")
    return 0


def _backfill(args: argparse.Namespace) -> int:
    from describer import backfill_runs

    deployment = deployment_from(args)
    try:
        manifest = backfill_runs.S3Uri.parse(args.manifest) if args.manifest else None
        request = backfill_runs.backfill_input(
            deployment, backfill_runs.S3Uri.parse(args.source), manifest, args.category, args.copy == "batch"
        )
    except backfill_runs.BackfillError as error:
        console.print(f"[bold red]{error}[/]")
        return 2
    execution = backfill_runs.run(deployment, request, console, args.timeout)
    results = backfill_runs.item_results(deployment, execution)
    console.print(f"Backfill of {args.source}: {execution['status']}")
    table = Table()
    table.add_column("objects")
    table.add_column("count", justify="right")
    for outcome, count in sorted(backfill_runs.outcome_counts(results).items()):
        table.add_row(outcome.value, str(count))
    table.add_row("runs started", str(sum(result.started for result in results)))
    console.print(table)
    copy = backfill_runs.copy_report(execution)
    if copy:
        console.print(backfill_runs.copy_table(copy))
    if execution["status"] != "SUCCEEDED":
        console.print(f"[bold red]{execution.get('error', '')}: {execution.get('cause', '')}[/]")
        return 1
    return 0


def _locale(text: str) -> str:
    try:
        (tag,) = parse_locales(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return tag


def records_table(records: list[ProductRecord], title: str = "Products", locale: str | None = None) -> Table:
    table = Table(title=title if locale is None else f"{title} ({locale})", show_lines=True)
    for column in ("product", "category", "status", "attributes (confidence)", "title", "copy", "error"):
        table.add_column(column, overflow="fold")
    for record in records:
        colour = {"COMPLETED": "green", "FAILED": "red"}.get(record.status.value, "yellow")
        review = "\n[yellow]needs review[/]" if record.needs_review else ""
        copy = record.content.get(locale) if locale else next(iter(record.content.values()), None)
        text = (record.description or "")[:160]
        if copy is not None:
            text = "\n".join(
                [copy.description[:160], *(f"• {b}" for b in copy.bullets), ", ".join(copy.keywords)]
            )
        table.add_row(
            record.product_id,
            category_label(record),
            f"[{colour}]{record.status.value}[/]{review}",
            "\n".join(_attribute_line(record, name) for name in record.attributes),
            copy.title if copy else "",
            text,
            f"{record.error_code.value}: {record.error_message}" if record.error_code else "",
        )
    return table


def _attribute_line(record: ProductRecord, name: str) -> str:
    confidence = record.confidence.get(name)
    line = f"{name}: {record.attributes[name]}"
    if name in record.unknown_attributes:
        return f"{line} [yellow](unknown)[/]"
    return line if confidence is None else f"{line} ({confidence:.2f})"


def _results(args: argparse.Namespace) -> int:
    if args.needs_review and args.status:
        raise SystemExit("--needs-review lists COMPLETED records only: leave out --status")
    deployment = deployment_from(args)
    records = deployment.records_needing_review() if args.needs_review else deployment.records(args.status)
    records = [in_locale(record, args.locale) for record in records]
    if args.json:
        json.dump([record.model_dump(mode="json") for record in records], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console.print(records_table(records, locale=args.locale))
    return 0


def category_label(record: ProductRecord) -> str:
    """The category and where it came from: "Jeans (model 0.97)", "Shirts (key)"."""
    source = record.category_source.value if record.category_source else "-"
    if record.category_confidence is not None:
        source += f" {record.category_confidence:.2f}"
    return f"{record.category} ({source})"
