"""``flotilla models``, ``flotilla ask`` and ``flotilla fake-provider``."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Optional

import typer
from rich.table import Table

from ..errors import UserError
from ._console import make_console

out = make_console()
err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models(as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON.")) -> None:
        """The model catalog (aliases resolved, limits, prices) and which providers have keys."""
        from ..config import load_settings
        from ..models.catalog import Catalog
        from ..models.providers import key_status

        settings = load_settings()
        catalog = Catalog.load(settings.data)
        aliases: dict[str, list[str]] = {}
        for alias, target in catalog.aliases.items():
            aliases.setdefault(target, []).append(alias)
        keys = key_status(settings)
        if as_json:
            rows = [{**info.__dict__, "aliases": sorted(aliases.get(name, []))}
                    for name, info in sorted(catalog.models.items())]
            print(json.dumps({"models": rows, "aliases": catalog.aliases, "providers": keys}, indent=2))
            return
        table = Table(title="models (USD per million tokens)")
        for column in ("model", "aliases", "context", "max out", "input", "output", "cache read", "cache write"):
            table.add_column(column, justify="right" if column not in ("model", "aliases") else "left",
                             no_wrap=column == "model")
        for name, info in sorted(catalog.models.items()):
            table.add_row(name, ", ".join(sorted(aliases.get(name, []))), f"{info.context_window:,}",
                          f"{info.max_output:,}", f"{info.input:g}", f"{info.output:g}", f"{info.cache_read:g}",
                          f"{info.cache_write:g}")
        out.print(table)
        dangling = {a: t for a, t in catalog.aliases.items() if t not in catalog.models}
        for alias, target in sorted(dangling.items()):
            out.print(f"alias {alias} → {target} (not in the catalog: no prices)", highlight=False)
        providers = Table(title="providers")
        providers.add_column("provider")
        providers.add_column("key")
        for provider, status in keys.items():
            style = "green" if status.startswith("set") else "red" if status.startswith("missing") else "dim"
            providers.add_row(provider, f"[{style}]{status}[/]")
        out.print(providers)

    @app.command("ask")
    def ask(
        model: str = typer.Argument(..., help="A model name (provider:model) or alias (opus, sonnet, haiku)."),
        prompt: str = typer.Argument(..., help="What to ask."),
        system: Optional[str] = typer.Option(None, "--system", help="A system prompt."),
        max_tokens: int = typer.Option(1024, "--max-tokens", help="The answer's token limit."),
        fallback_model: Optional[str] = typer.Option(None, "--fallback-model",
                                                     help="Comma-separated models to try in turn on overload."),
        as_json: bool = typer.Option(False, "--json", help="Print the whole response and its cost as JSON."),
        samples: int = typer.Option(1, "--samples", help="Best-of-N: sample the model N times, then aggregate."),
        aggregate: str = typer.Option("self-moa", "--aggregate",
                                      help="With --samples: self-moa (synthesise one answer), seq (the same in "
                                           "sliding windows of --window), judge (pick one, with its reason)."),
        aggregator: Optional[str] = typer.Option(None, "--aggregator",
                                                 help="The model that aggregates (default: MODEL itself)."),
        window: int = typer.Option(3, "--window", help="Samples per aggregation call for --aggregate seq."),
        parallel: int = typer.Option(4, "--parallel", help="Samples in flight at once."),
    ) -> None:
        """One call through the whole stack (usage, retry, fallback, budget), streamed to the terminal;
        with --samples N, best-of-N (Self-MoA): N samples, then one aggregated answer."""
        fallbacks = [m.strip() for m in (fallback_model or "").split(",") if m.strip()]
        if aggregator is not None and samples == 1:
            raise UserError("--aggregator aggregates samples: add --samples N (N of 2 or more)")
        if samples != 1:
            from ._sampled import ask_sampled

            ask_sampled(model, prompt, system=system, max_tokens=max_tokens, fallback=fallbacks, as_json=as_json,
                        samples=samples, aggregate=aggregate, aggregator=aggregator, window=window,
                        parallel=parallel)
            return
        asyncio.run(_ask(model, prompt, system, max_tokens, fallbacks, as_json))

    @app.command("fake-provider")
    def fake_provider(
        script: str = typer.Option(..., "--script", help="A JSON or YAML file mapping model names to steps."),
        port: int = typer.Option(8789, "--port", help="Port to listen on (0 picks a free one)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        api_key: Optional[str] = typer.Option(None, "--api-key", help="Answer 401 to any other key."),
    ) -> None:
        """Serve a fake Anthropic + OpenAI provider that answers from a script (for tests and demos)."""
        from ..testing.fake_provider import FakeProvider, load_script

        try:
            steps = load_script(script)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the fake provider script {script}: {exc}") from None
        server = FakeProvider(steps, api_key=api_key, host=host, port=port, log_level="info")
        err.print(f"fake provider for {', '.join(sorted(steps))}: Anthropic base URL http://{host}:{port}, "
                  f"OpenAI base URL http://{host}:{port}/v1", highlight=False)
        server.serve_forever()


async def _ask(name: str, prompt: str, system: str | None, max_tokens: int, fallbacks: list[str],
               as_json: bool) -> None:
    from ..config import load_settings
    from ..events import ListSink, ModelCalled
    from ..messages import ContentBlockDelta, Message, MessagesRequest, StreamAccumulator
    from ..models.catalog import Catalog
    from ..models.providers import build_model
    from ..models.stack import build_stack

    settings = load_settings()
    catalog = Catalog.load(settings.data)
    primary = build_model(name, settings=settings, catalog=catalog)
    backups = [build_model(f, settings=settings, catalog=catalog) for f in fallbacks]
    sink = ListSink()
    model = build_stack(primary, fallbacks=backups, catalog=catalog, sink=sink, role="executor")
    request = MessagesRequest(model=primary.name, messages=[Message(role="user", content=prompt)],
                              max_tokens=max_tokens, system=system)
    accumulator = StreamAccumulator()
    events = model.stream(request)
    try:
        async for event in events:
            accumulator.add(event)
            if as_json or not isinstance(event, ContentBlockDelta):
                continue
            if event.delta.get("type") == "text_delta":
                sys.stdout.write(event.delta["text"])
                sys.stdout.flush()
            elif event.delta.get("type") == "thinking_delta":
                err.print(event.delta["thinking"], end="", style="dim", highlight=False, markup=False)
    finally:
        await events.aclose()
    response = accumulator.result()
    calls = sink.of(ModelCalled)
    cost = sum(c.cost_usd for c in calls) if calls else catalog.cost(primary.name, response.usage)
    answered = next((f"{c.provider}:{c.model}" for c in reversed(calls) if c.error is None), primary.name)
    if as_json:
        print(json.dumps({"model": answered, "response": response.wire(), "cost_usd": round(cost, 8)}, indent=2))
        return
    if not response.text().endswith("\n"):
        sys.stdout.write("\n")
    u = response.usage
    err.print(f"{answered}: {u.input_tokens} in, {u.output_tokens} out, {u.cache_read_input_tokens} cache read, "
              f"{u.cache_creation_input_tokens} cache write · ${cost:.6f}", style="dim", highlight=False)
