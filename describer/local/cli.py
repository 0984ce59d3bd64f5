"""Sub-commands ``local`` (up, down, status, demo, bench, backfill-bench, cost, chaos): the local stack.

The commands that work on any deployment (``upload``, ``backfill``, ``redrive``, ``results``) are in
``describer.deployment_cli``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from describer.deployment_cli import console
from describer.local import stack as local_stack
from describer.local.benchmarks.chaos import CHAOS_SEED, DEFAULT_FAULTS
from describer.local.model_host.faults import FaultSpec


def register(subparsers: Any) -> None:
    local = subparsers.add_parser("local", help="the whole system on this machine (emulator + model host)")
    local.add_argument(
        "--state-dir", type=Path, default=local_stack.default_state_dir(), help="default: .local/"
    )
    actions = local.add_subparsers(dest="local_command", required=True)

    up = actions.add_parser("up", help="start the emulator and the model host, deploy template.yaml")
    _add_up_arguments(up)
    up.set_defaults(handler=_clean_errors(_up))
    actions.add_parser("down", help="stop everything `up` started").set_defaults(handler=_down)
    actions.add_parser("status", help="the emulator endpoint and the stack outputs").set_defaults(
        handler=_status
    )

    demo = actions.add_parser("demo", help="up, upload sample photos and bad files, wait, table + gallery")
    _add_up_arguments(demo)
    demo.add_argument("--photos-per-category", type=int, default=2)
    demo.add_argument("--timeout", type=float, default=300, help="seconds to wait for final records")
    demo.set_defaults(handler=_clean_errors(_demo))

    bench = actions.add_parser(
        "bench", help="restart the stack, then cold and warm latency per upload and the time for a burst"
    )
    _add_up_arguments(bench)
    bench.add_argument("--warm-uploads", type=int, default=5)
    bench.add_argument("--burst", type=int, default=50)
    bench.add_argument("--timeout", type=float, default=300)
    bench.set_defaults(handler=_clean_errors(_bench))

    backfill_bench = actions.add_parser(
        "backfill-bench",
        help="fresh stack, backfill synthetic photos, a warm upload's latency during it, then a rerun",
    )
    _add_up_arguments(backfill_bench)
    backfill_bench.add_argument("--objects", type=int, default=1000)
    backfill_bench.add_argument("--uploads", type=int, default=5, help="warm uploads timed, idle and busy")
    backfill_bench.add_argument("--timeout", type=float, default=3600)
    backfill_bench.set_defaults(handler=_clean_errors(_backfill_bench))

    cost = actions.add_parser(
        "cost", help="fresh stack, N products metered, their cost per 1,000 images by component"
    )
    _add_up_arguments(cost)
    cost.add_argument("--products", type=int, default=20)
    cost.add_argument("--timeout", type=float, default=600)
    cost.set_defaults(handler=_clean_errors(_cost))

    chaos = actions.add_parser(
        "chaos",
        help="up with injected faults; uploads, re-uploads and duplicate deliveries; nothing may be lost",
    )
    _add_up_arguments(chaos)
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
    chaos.add_argument("--timeout", type=float, default=1200, help="seconds to wait for final records")
    chaos.set_defaults(handler=_clean_errors(_chaos))


def _add_up_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = local_stack.LocalSettings()
    parser.add_argument("--port", type=int, default=defaults.emulator_port, help="the emulator's port")
    parser.add_argument("--model-host-port", type=int, default=defaults.model_host_port)
    parser.add_argument("--model-dir", type=Path, default=defaults.model_dir, help="the demo model")
    parser.add_argument("--stack-name", default=defaults.stack_name)
    parser.add_argument(
        "--faults",
        default="",
        type=_fault_rates,
        metavar="KIND=RATE,...",
        help="make the model host fail that share of calls as AWS would, e.g. "
        "endpoint-throttle=0.2,endpoint-unavailable=0.05,endpoint-slow=0.05,bedrock-throttle=0.1,"
        "bedrock-unavailable=0.05,bedrock-timeout=0.02 (default: none)",
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")


def _fault_rates(text: str) -> str:
    try:
        FaultSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def settings_from(args: argparse.Namespace) -> local_stack.LocalSettings:
    return local_stack.LocalSettings(
        state_dir=args.state_dir.resolve(),
        emulator_port=args.port,
        model_host_port=args.model_host_port,
        model_dir=args.model_dir.resolve(),
        stack_name=args.stack_name,
        faults=FaultSpec.parse(args.faults, args.fault_seed, local_stack.SLOW_REPLY_S),
    )


def _clean_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report the local stack's expected failures (a timeout, a service that would not start) in one
    readable message with where to look, instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (TimeoutError, RuntimeError, FileNotFoundError, LookupError) as error:
            console.print(f"[bold red]{error}[/]")
            console.print(f"Logs: {args.state_dir.resolve() / 'logs'}")
            return 1

    return run


def bring_up(args: argparse.Namespace) -> local_stack.LocalSettings:
    with console.status("Starting the emulator and the model host, deploying template.yaml ..."):
        settings, deployed = local_stack.up(settings_from(args))
    verb = "deployed" if deployed else "up to date"
    console.print(f"[green]Local stack {settings.stack_name} {verb}[/] at {settings.endpoint_url}")
    if settings.faults.active:
        console.print(f"[yellow]Injecting faults[/] {settings.faults.text()} (seed {settings.faults.seed})")
    return settings


def _up(args: argparse.Namespace) -> int:
    bring_up(args)
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = local_stack.down(args.state_dir.resolve())
    console.print(f"Stopped {len(stopped)} process(es)." if stopped else "Nothing was running.")
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = local_stack.LocalSettings.load(args.state_dir.resolve())
    if settings is None or not local_stack.running(settings):
        console.print("The local stack is not running (`describer local up`).")
        return 1
    stack = local_stack.stack_description(settings)
    table = Table(title=f"{settings.stack_name} ({stack['StackStatus'] if stack else 'not deployed'})")
    table.add_column("output")
    table.add_column("value", overflow="fold")
    table.add_row("emulator endpoint", settings.endpoint_url)
    table.add_row("model host", settings.model_host_url)
    table.add_row("injected faults", fault_summary(local_stack.injected_faults(settings)))
    for output in (stack or {}).get("Outputs", []):
        table.add_row(output["OutputKey"], output["OutputValue"])
    console.print(table)
    return 0


def fault_summary(report: dict[str, Any]) -> str:
    """``endpoint-throttle=0.2: 12 of 60 invocations`` per kind, or that the host serves cleanly."""
    spec = FaultSpec.model_validate(report["spec"])
    if not spec.active:
        return "none (serving cleanly)"
    lines = []
    for kind, rate in spec.rates.items():
        if rate > 0:
            done, of = report["injected"].get(kind.value, 0), report["requests"].get(kind.route, 0)
            service = "endpoint" if kind.route == "invocations" else "Bedrock"
            lines.append(f"{kind.value}={rate:g}: {done} of {of} {service} calls")
    return "\n".join(lines) + f"\nseed {spec.seed}, slow reply {spec.slow_seconds:g} s"


def _demo(args: argparse.Namespace) -> int:
    from describer.local.demo.run import run_demo

    return run_demo(bring_up(args), args.photos_per_category, args.timeout, console)


def _backfill_bench(args: argparse.Namespace) -> int:
    from describer.local.benchmarks.backfill_bench import run_backfill_bench

    local_stack.down(args.state_dir.resolve())  # a fresh stack: no records from earlier runs
    return run_backfill_bench(bring_up(args), args.objects, args.uploads, args.timeout, console)


def _cost(args: argparse.Namespace) -> int:
    from describer.local.benchmarks.cost_meter import run_cost

    local_stack.down(args.state_dir.resolve())  # a fresh stack: its logs and histories are this run's
    return run_cost(bring_up(args), args.products, args.timeout, console)


def _bench(args: argparse.Namespace) -> int:
    from describer.local.benchmarks.upload_latency import run_bench

    # A fresh stack, so that the first upload meets cold Lambda workers.
    local_stack.down(args.state_dir.resolve())
    return run_bench(bring_up(args), args.warm_uploads, args.burst, args.timeout, console)


def _chaos(args: argparse.Namespace) -> int:
    from describer.local.benchmarks.chaos import chaos_table, faults_table, run_chaos

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
    console.print(chaos_table(result))
    console.print(faults_table(result))
    console.print(f"Took {result.elapsed_s:.0f} s on {os.cpu_count()} cores.")
    console.print(result.summary())
    return 0 if result.clean else 1
