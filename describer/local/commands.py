"""Sub-commands ``local`` (up, down, status, demo): the local stack. Its benchmarks (latency, backfill,
cost, chaos) are ``python -m benchmarks`` (``benchmarks/__main__.py``).

The commands that work on any deployment (``upload``, ``backfill``, ``redrive``, ``results``) are in
``describer.deployment_commands``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from describer.deployment_commands import console
from describer.local import stack as local_stack
from describer.local.model_host.faults import FaultSpec


def register(subparsers: Any) -> None:
    local = subparsers.add_parser("local", help="the whole system on this machine (emulator + model host)")
    local.add_argument(
        "--state-dir", type=Path, default=local_stack.default_state_dir(), help="default: .local/"
    )
    actions = local.add_subparsers(dest="local_command", required=True)

    up = actions.add_parser("up", help="start the emulator and the model host, deploy template.yaml")
    add_up_arguments(up)
    up.set_defaults(handler=clean_errors(_up))
    actions.add_parser("down", help="stop everything `up` started").set_defaults(handler=_down)
    actions.add_parser("status", help="the emulator endpoint and the stack outputs").set_defaults(
        handler=_status
    )

    demo = actions.add_parser("demo", help="up, upload sample photos and bad files, wait, table + gallery")
    add_up_arguments(demo)
    demo.add_argument("--photos-per-category", type=int, default=2)
    demo.add_argument("--timeout", type=float, default=300, help="seconds to wait for final records")
    demo.set_defaults(handler=clean_errors(_demo))


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
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


def clean_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
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
