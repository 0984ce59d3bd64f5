"""One Converse call per locale, or one call for all locales? Tokens and latency, measured (not a test).

Both strategies run WriteDescription's real prompts and schema against a stub Bedrock that answers
with the offline writer's copy (the same sizes a model writes within the limits) and takes as long
as a model would to write it: ``--first-token-s`` plus the output tokens at ``--tokens-per-s``
(assumptions printed with the result; tokens estimated at four characters each, as the local model
host does; on AWS, Bedrock's CountTokens gives exact input counts). "per locale" is CopyWriter as
shipped (the locales in parallel); "one call" asks for every locale in one JSON object, the schema
keyed by locale, and the reply validated by the same rules. The last line names the cheaper and the
faster strategy.

Run: ``python -m benchmarks.copy --locales en-US,es-ES,de-DE,fr-FR``
(``make copy-bench``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from describer.local.model_host.description_backends import ConverseRequest, OfflineWriter, estimate_tokens
from describer.local.offline_writer.product_copy import write_copy
from describer_rules.catalogue import load_catalogue
from describer_rules.content_rules import check_reply, content_json_schema
from describer_rules.locales import language_name, parse_locales
from describer_rules.prompts import user_message
from describer_steps.settings import DescriptionSettings
from describer_steps.write_description import CopyWriter

# Claude Sonnet 4.x on-demand prices on Bedrock (USD per million tokens), for the cost column.
INPUT_USD_PER_M, OUTPUT_USD_PER_M = 3.0, 15.0


@dataclass(frozen=True)
class LatencyModel:
    first_token_s: float
    tokens_per_s: float
    scale: float  # the bench sleeps scale x the modelled time, and reports it unscaled

    def wait(self, output_tokens: int) -> None:
        time.sleep(self.scale * (self.first_token_s + output_tokens / self.tokens_per_s))


class _StubBedrock:
    """Answers Converse like the local model host, after the time a model would take."""

    def __init__(self, latency: LatencyModel) -> None:
        self.latency = latency
        self.writer = OfflineWriter()

    def converse(self, **request: Any) -> dict[str, Any]:
        reply = self.writer.converse(ConverseRequest.from_wire(request))
        self.latency.wait(reply.output_tokens)
        return _response(reply.text, reply.input_tokens, reply.output_tokens)


def _response(text: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens},
    }


@dataclass
class Measured:
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


def per_locale(writer: CopyWriter, bedrock: _StubBedrock) -> Measured:
    writer.client = bedrock
    started = time.perf_counter()
    result = writer.write()
    return Measured(result.input_tokens, result.output_tokens, time.perf_counter() - started)


def one_call(writer: CopyWriter, attributes: dict[str, str], latency: LatencyModel) -> Measured:
    """Every locale in one request: the same system prompt, one user turn, a schema keyed by locale."""
    locales = writer.settings.locales
    schema = {
        "type": "object",
        "properties": {locale: content_json_schema(writer.settings.title_max_chars) for locale in locales},
        "required": list(locales),
        "additionalProperties": False,
    }
    message = user_message(writer.category, attributes, locales[0]).replace(
        f"in {language_name(locales[0])}", "in each of " + ", ".join(language_name(loc) for loc in locales)
    )
    request = writer.request(message)
    request["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"] = json.dumps(schema)
    started = time.perf_counter()
    input_tokens = estimate_tokens(writer.system + message + json.dumps(schema))
    text = json.dumps(
        {
            loc: write_copy(attributes, writer.category.noun, loc, writer.settings.title_max_chars)
            for loc in locales
        },
        ensure_ascii=False,
    )
    output_tokens = estimate_tokens(text)
    latency.wait(output_tokens)
    for locale, copy in json.loads(text).items():
        _, broken = check_reply(copy, "end_turn", writer.rules(locale))
        assert not broken, broken
    return Measured(input_tokens, output_tokens, time.perf_counter() - started)


def products(count: int) -> list[tuple[str, dict[str, str]]]:
    """``count`` products spread over the catalogue's categories and values."""
    found = []
    for category in ("Shirts", "Tshirts"):
        spec = load_catalogue().category(category)
        names = [attribute.name for attribute in spec.attributes]
        combos = list(itertools.product(*(attribute.values for attribute in spec.attributes)))
        step = max(1, len(combos) // (count // 2 or 1))
        found += [
            (category, dict(zip(names, values, strict=True))) for values in combos[::step][: count // 2]
        ]
    return found


def run(locales: list[str], count: int, latency: LatencyModel, console: Console) -> tuple[Measured, Measured]:
    settings = DescriptionSettings(bedrock_model_id="us.anthropic.claude-sonnet-4-6", locales=locales)
    totals = {"per locale": [], "one call": []}  # type: dict[str, list[Measured]]
    for category, attributes in products(count):
        spec = load_catalogue().category(category)
        # The token estimate counts the JSON schema too: Bedrock bills it as input.
        writer = CopyWriter(spec, attributes, {}, None, settings)
        measured = per_locale(writer, _StubBedrock(latency))
        schema_tokens = estimate_tokens(json.dumps(writer.schema))
        measured.input_tokens += schema_tokens * len(locales)
        totals["per locale"].append(measured)
        totals["one call"].append(one_call(writer, attributes, latency))
    table = Table(title=f"Copy for {len(locales)} locales ({', '.join(locales)}), {count} products")
    for column in ("strategy", "input tokens", "output tokens", "USD / 1,000 products", "seconds (median)"):
        table.add_column(column, justify="right")
    means = {}
    for name, runs in totals.items():
        mean = Measured(
            round(statistics.mean(m.input_tokens for m in runs)),
            round(statistics.mean(m.output_tokens for m in runs)),
            statistics.median(m.seconds for m in runs) / latency.scale,
        )
        means[name] = mean
        cost = 1000 * (mean.input_tokens * INPUT_USD_PER_M + mean.output_tokens * OUTPUT_USD_PER_M) / 1e6
        table.add_row(
            name, str(mean.input_tokens), str(mean.output_tokens), f"{cost:.2f}", f"{mean.seconds:.2f}"
        )
    console.print(table)
    console.print(
        f"Latency model: first token {latency.first_token_s} s, {latency.tokens_per_s:.0f} output tokens/s "
        f"(slept at {latency.scale}x); tokens estimated at 4 characters each."
    )
    return means["per locale"], means["one call"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--locales", type=parse_locales, default=parse_locales("en-US,es-ES,de-DE,fr-FR"))
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--first-token-s", type=float, default=0.6)
    parser.add_argument("--tokens-per-s", type=float, default=60.0)
    parser.add_argument("--time-scale", type=float, default=0.1, help="sleep this share of the modelled time")
    args = parser.parse_args(argv)
    latency = LatencyModel(args.first_token_s, args.tokens_per_s, args.time_scale)
    console = Console(width=120)
    split, joined = run(args.locales, args.products, latency, console)
    cost = {
        name: m.input_tokens * INPUT_USD_PER_M + m.output_tokens * OUTPUT_USD_PER_M
        for name, m in (("per locale", split), ("one call", joined))
    }
    console.print(
        f"per-locale calls vs one call for {len(args.locales)} locales: "
        f"cost {cost['per locale'] / cost['one call']:.2f}x, latency {split.seconds / joined.seconds:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
