"""Operator commands: `finops price`, `finops topics` (and `finops tail`, in commands.tail)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from finops.cli.commands.tail import tail
from finops.cli.failures import CliError
from finops.cli.output import console
from finops.cli.typer_app import JsonOption
from finops.common.settings_errors import pydantic_message

USAGE_HELP = "give input_tokens and output_tokens, or the provider's raw usage object"


def _settings() -> Any:
    from finops.common.settings import CommonSettings

    return CommonSettings(service_name="cli")


def _named(value: str) -> str:
    """A provider or model name: not empty (it would reach pricing as ``/model``)."""
    if not value.strip():
        raise typer.BadParameter("give a name, not an empty string")
    return value


def price(
    provider: Annotated[
        str, typer.Option(help="Provider, e.g. openai, anthropic, google.", callback=_named)
    ],
    model: Annotated[
        str, typer.Option(help="Model name as the provider spells it.", callback=_named)
    ],
    usage: Annotated[
        str,
        typer.Option(
            help="Usage as JSON: normalized ({input_tokens, output_tokens, cached_input_tokens, "
            "cache_write_tokens, cache_write_1h_tokens, reasoning_tokens}) or the provider's raw "
            "usage object."
        ),
    ],
    json_out: JsonOption = False,
) -> None:
    """Price one call's usage with genai-prices and print the total in USD."""
    from finops.common.events import price_call

    normalized = _usage(usage)
    result = price_call(provider, model, normalized)
    if json_out:
        answer = {
            "provider": provider,
            "model": model,
            "total_usd": result.total_usd,
            "input_usd": result.input_usd,
            "output_usd": result.output_usd,
            "cost_source": result.cost_source,
            "price_version": result.price_version,
            "usage": normalized.model_dump(),
        }
        print(json.dumps(answer))
    elif result.total_usd is None:
        # what the command was given names no priced model: exit 2 (docs/cli.md)
        raise CliError(
            f"unpriced: no price for {provider}/{model} ({result.price_version}); its calls are "
            "recorded with cost_source unpriced and count no spend: send cost_usd with them (see "
            "what they would have cost with `finops reprice --prices FILE`, docs/cli.md)",
            2,
        )
    else:
        console.print(f"${result.total_usd:.8f}")
        console.print(
            f"input ${result.input_usd or 0:.8f} · output ${result.output_usd or 0:.8f} · "
            f"{_tokens(normalized)} · {result.price_version}",
            style="dim",
            markup=False,
        )


def _tokens(usage: Any) -> str:
    """The normalized usage in words, its parts in brackets where there are any:
    ``20,012 input tokens (18,000 cached, 2,000 cache writes) · 500 output tokens``."""

    def parts(*named: tuple[int, str]) -> str:
        said = [f"{count:,} {name}" for count, name in named if count]
        return f" ({', '.join(said)})" if said else ""

    inputs = parts(
        (usage.cached_input_tokens, "cached"),
        (usage.cache_write_tokens, "cache writes"),
        (usage.cache_write_1h_tokens, "of them 1-hour"),
    )
    outputs = parts((usage.reasoning_tokens, "reasoning"))
    return f"{_count(usage.input_tokens, 'input token')}{inputs} · " + (
        f"{_count(usage.output_tokens, 'output token')}{outputs}"
    )


def _count(n: int, noun: str) -> str:
    """``1 input token``, ``1,000 input tokens``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _usage(text: str) -> Any:
    """``--usage`` as a normalized Usage, or one line saying what is wrong with it."""
    from pydantic import ValidationError

    from finops.common.events import Usage

    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--usage is not JSON ({exc}); {USAGE_HELP}", 2) from exc
    try:
        return Usage.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " * bool(e["loc"]) + pydantic_message(e)
            for e in exc.errors()
        )
        raise CliError(f"--usage: {problems} ({USAGE_HELP})", 2) from exc


def topics(
    count: Annotated[
        bool, typer.Option("--count/--no-count", help="Count messages by consuming each topic.")
    ] = True,
) -> None:
    """Every topic with its partitions, message count (counted by consuming) and cleanup policy."""
    rows = asyncio.run(_topics(count))
    table = Table(title="topics")
    table.add_column("topic", no_wrap=True)
    for col in ("partitions", "messages", "cleanup", "declared"):
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console.print(table)


async def count_messages(
    settings: Any, topics: list[str], idle_s: float = 1.0, concurrency: int = 8
) -> dict[str, int]:
    """Count each topic's records by reading it from the earliest offset to its end
    (:func:`finops.common.kafka.read_topic`).

    A few topics are read at a time, each by its own consumer, so the wait for
    quiet is not paid once per topic in a row.
    """
    from finops.common.kafka import read_topic

    slots = asyncio.Semaphore(concurrency)

    async def count(topic: str) -> int:
        async with slots:
            return sum([1 async for _ in read_topic(settings, topic, idle_s=idle_s)])

    return dict(zip(topics, await asyncio.gather(*map(count, topics)), strict=True))


#: the cleanup column of a topic the broker reports no ``cleanup.policy`` for (docs/cli.md)
BROKER_DEFAULT = "default"


def cleanup_policies(answers: list[Any]) -> dict[str, str]:
    """Each topic's ``cleanup.policy`` from the broker's DescribeConfigs answers.

    A topic created without one (Faust's ``<app>-__assignor-__leader``) has the broker's
    default, which Apache Kafka reports as such but the local broker (tansu) does not report
    at all: :data:`BROKER_DEFAULT`. A topic the broker could not describe is ``?``.
    """
    policies = {}
    for answer in answers:
        for resource in answer.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"]:
                policies[name] = "?"
                continue
            configs = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            policies[name] = configs.get("cleanup.policy") or BROKER_DEFAULT
    return policies


async def _topics(count: bool) -> list[tuple[Any, ...]]:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from finops.common.kafka import make_admin
    from finops.common.topics import TOPICS_BY_NAME

    settings = _settings()
    admin = make_admin(settings)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if not t.startswith("__"))
        described = {d["topic"]: d for d in await admin.describe_topics(names)} if names else {}
        configs = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        policies = cleanup_policies(await admin.describe_configs(configs)) if names else {}
    finally:
        await admin.close()
    counts = await count_messages(settings, names, idle_s=0.5) if count else None
    rows = []
    for name in names:
        spec = TOPICS_BY_NAME.get(name)
        messages = counts[name] if counts is not None else "-"
        rows.append(
            (
                name,
                len(described.get(name, {}).get("partitions", [])),
                messages,
                policies.get(name, "?"),
                "yes" if spec else "no (internal)",
            )
        )
    return rows


def register(app: typer.Typer) -> None:
    app.command()(price)
    app.command()(tail)
    app.command()(topics)
