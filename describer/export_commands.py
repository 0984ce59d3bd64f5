"""``describer export``: the results table as a channel feed (Google, Shopify, JSONL) in one locale.

It reads the local stack's table by default and a stack on AWS with ``--stack-name``; the feed goes to
``--out`` (or stdout) and a summary table to the terminal (stderr when the feed is on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from describer.deployment_commands import add_target_arguments, deployment_from
from describer_aws.results_table import sortable_utc
from describer_rules.feeds.formats import ExportOptions, FeedFormat, FeedSummary, UnknownLocale, export
from describer_rules.locales import parse_locales


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="write a channel feed (Merchant Center TSV, Shopify CSV, JSONL) from the results"
    )
    parser.add_argument("--format", required=True, type=FeedFormat, choices=list(FeedFormat))
    parser.add_argument("--locale", required=True, help="the locale of the copy, e.g. en-US")
    parser.add_argument("--out", type=Path, help="the file to write (default: stdout)")
    parser.add_argument("--since", metavar="TIME", help="only records updated at or after this ISO 8601 time")
    parser.add_argument(
        "--include-unreviewed", action="store_true", help="also the records still awaiting review"
    )
    parser.add_argument(
        "--plain-text",
        action="store_true",
        help="google: plain title/description instead of the structured (generated-text) attributes",
    )
    add_target_arguments(parser)
    parser.set_defaults(handler=_export)

    feeds = subparsers.add_parser("feeds", help="the stack's scheduled channel feeds (FeedExport)")
    feeds_commands = feeds.add_subparsers(dest="feeds_command", required=True)
    run = feeds_commands.add_parser(
        "run", help="run FeedExport now instead of waiting for FeedSchedule, and print what it wrote"
    )
    add_target_arguments(run)
    run.set_defaults(handler=_run_feed_export)


def _export(args: argparse.Namespace) -> int:
    try:
        (locale,) = parse_locales(args.locale)
        since = _since(args.since)
    except ValueError as error:
        return _error(error)
    records = deployment_from(args).records()
    if since is not None:
        records = [record for record in records if sortable_utc(record.updated_at) >= since]
    options = ExportOptions(locale, args.include_unreviewed, args.plain_text)
    try:
        feed = export(args.format, records, options)
    except UnknownLocale as error:
        return _error(error)
    if args.out is None:
        sys.stdout.write(feed.text)
        sys.stdout.flush()
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(feed.text, encoding="utf-8", newline="")
    console = Console(stderr=args.out is None)
    where = str(args.out) if args.out else "stdout"
    console.print(summary_table(feed.summary, f"{args.format.value} feed ({locale}) -> {where}"))
    return 0


def _run_feed_export(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    function_name = deployment.outputs["FeedExportFunctionName"]
    try:
        timeout_s = deployment.client("lambda").get_function_configuration(FunctionName=function_name)[
            "Timeout"
        ]
        # Waits as long as the function may run, and calls it once: a retried call would be a second
        # run (refused while the first holds the function's one concurrent execution).
        config = Config(read_timeout=timeout_s + 30, retries={"total_max_attempts": 1})
        caller: Any = deployment.session
        response = caller.client("lambda", endpoint_url=deployment.endpoint_url, config=config).invoke(
            FunctionName=function_name
        )
    except (ClientError, BotoCoreError) as error:
        # TooManyRequestsException: a scheduled run holds the function's one concurrent execution.
        return _error(RuntimeError(f"FeedExport could not be run: {error}"))
    result = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        return _error(RuntimeError(f"FeedExport failed: {result}"))
    table = Table(title=f"Feeds in s3://{deployment.upload_bucket}/")
    for column in ("key", "rows", "records read", "full read", "skipped", "cut"):
        table.add_column(column)
    for feed in result["feeds"]:
        table.add_row(
            feed["key"],
            str(feed["rows"]),
            str(feed["changed_records"]),
            "yes" if feed["full_read"] else "changes only",
            ", ".join(f"{reason}: {n}" for reason, n in sorted(feed["skipped"].items())),
            ", ".join(f"{field}: {n}" for field, n in sorted(feed["cuts"].items())),
        )
    Console().print(table)
    return 0


def _error(error: Exception) -> int:
    # One plain line (no wrapping): scripts read it.
    print(f"describer export: {error}", file=sys.stderr)
    return 2


def _since(text: str | None) -> str | None:
    if text is None:
        return None
    moment = sortable_utc(text)
    if moment == text:  # not an ISO 8601 time: sortable_utc returns it unchanged
        raise ValueError(f"--since {text!r} is not an ISO 8601 time (e.g. 2026-12-07T10:00:00Z)")
    return moment


def summary_table(summary: FeedSummary, title: str) -> Table:
    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("rows written", str(summary.rows))
    for reason, count in sorted(summary.skipped.items()):
        table.add_row(f"skipped: {reason}", str(count))
    for field, count in sorted(summary.cuts.items()):
        table.add_row(f"cut to the limit: {field}", str(count))
    for column, count in sorted(summary.left_out.items()):
        table.add_row(f"column left out: {column} (products without one)", str(count))
    return table
