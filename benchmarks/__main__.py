"""``python -m benchmarks latency|backfill|cost|chaos``: the benchmarks that run on the local stack.

Each brings the stack up with ``describer local up``'s arguments and prints its figure on the last line.
The endpoint's benchmarks have their own entry points (``python -m benchmarks.endpoint_speedup``, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from describer.deployment_commands import console
from describer.local import stack as local_stack
from describer.local.commands import add_up_arguments, bring_up, clean_errors
from describer.local.model_host.faults import FaultSpec


def _latency(args: argparse.Namespace) -> int:
    from benchmarks.upload_latency import run_bench

    local_stack.down(args.state_dir.resolve())  # a fresh stack: the first upload meets cold workers
    return run_bench(bring_up(args), args.warm_uploads, args.burst, args.timeout, console)


def _backfill(args: argparse.Namespace) -> int:
    from benchmarks.backfill import run_backfill_bench

    local_stack.down(args.state_dir.resolve())  # a fresh stack: no records from earlier runs
    return run_backfill_bench(
        bring_up(args),
        args.objects,
        args.uploads,
        args.timeout,
        console,
        args.copy == "batch",
        args.batch_faults,
    )


def _cost(args: argparse.Namespace) -> int:
    from benchmarks.cost_meter import run_cost

    local_stack.down(args.state_dir.resolve())  # a fresh stack: its logs and histories are this run's
    return run_cost(bring_up(args), args.products, args.timeout, console)


def _chaos(args: argparse.Namespace) -> int:
    from benchmarks.backfill import run_batch_chaos
    from benchmarks.chaos import chaos_table, faults_table, run_chaos

    local_stack.down(args.state_dir.resolve())  # a fresh stack: every record and product is this run's
    settings = bring_up(args)
    try:
        result = run_chaos(
            settings,
            args.products,
            args.reuploads,
            args.redeliveries,
            args.timeout,
            console,
            args.photo_products,
        )
    finally:
        local_stack.set_faults(settings, FaultSpec())  # the stack serves cleanly again
    batch_line, batch_clean = run_batch_chaos(settings, args.batch_objects, args.timeout, console)
    console.print(chaos_table(result))
    console.print(faults_table(result))
    console.print(f"Took {result.elapsed_s:.0f} s on {os.cpu_count()} cores.")
    console.print(batch_line, soft_wrap=True)
    console.print(result.summary(), soft_wrap=True)  # one line, however narrow the terminal
    return 0 if result.clean and batch_clean else 1


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.chaos import CHAOS_SEED, DEFAULT_FAULTS

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=local_stack.default_state_dir())
    benches = parser.add_subparsers(dest="benchmark", required=True)

    latency = benches.add_parser(
        "latency", help="restart the stack, then cold and warm latency per upload and the time for a burst"
    )
    add_up_arguments(latency)
    latency.add_argument("--warm-uploads", type=int, default=5)
    latency.add_argument("--burst", type=int, default=50)
    latency.add_argument("--timeout", type=float, default=300)
    latency.set_defaults(handler=clean_errors(_latency))

    backfill = benches.add_parser(
        "backfill",
        help="fresh stack, backfill synthetic photos, a warm upload's latency during it, then a rerun",
    )
    add_up_arguments(backfill)
    backfill.add_argument("--objects", type=int, default=1000)
    backfill.add_argument("--uploads", type=int, default=5, help="warm uploads timed, idle and busy")
    backfill.add_argument("--timeout", type=float, default=3600)
    backfill.add_argument(
        "--copy", choices=["on-demand", "batch"], default="on-demand", help="the backfill's copy mode"
    )
    backfill.add_argument(
        "--batch-faults",
        default="",
        help="how the model host's batch jobs end, e.g. batch-expire=0.5,batch-partial=0.5",
    )
    backfill.set_defaults(handler=clean_errors(_backfill))

    cost = benches.add_parser("cost", help="fresh stack, N products metered, their cost per 1,000 images")
    add_up_arguments(cost)
    cost.add_argument("--products", type=int, default=20)
    cost.add_argument("--timeout", type=float, default=600)
    cost.set_defaults(handler=clean_errors(_cost))

    chaos = benches.add_parser(
        "chaos",
        help="up with injected faults; uploads, re-uploads and duplicate deliveries; nothing may be lost",
    )
    add_up_arguments(chaos)
    chaos.set_defaults(faults=DEFAULT_FAULTS, fault_seed=CHAOS_SEED)
    chaos.add_argument("--products", type=int, default=30, help="products uploaded once")
    chaos.add_argument("--reuploads", type=int, default=10, help="of those, uploaded again (other bytes)")
    chaos.add_argument("--redeliveries", type=int, default=10, help="upload events delivered again")
    chaos.add_argument(
        "--photo-products",
        type=int,
        default=3,
        help="products with several photos (product folders) among the uploads; one gets a photo more",
    )
    chaos.add_argument(
        "--batch-objects",
        type=int,
        default=120,
        help="backfilled with batch copy while every batch job ends badly (a job takes at least 100)",
    )
    chaos.add_argument("--timeout", type=float, default=1200, help="seconds to wait for final records")
    chaos.set_defaults(handler=clean_errors(_chaos))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
