"""Prometheus metrics in the text exposition format, with no dependency.

Counters and histograms keyed by label tuples; the gateway runs on one event
loop, so plain dict updates need no lock.
"""

from __future__ import annotations

from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _Histogram:
    __slots__ = ("counts", "total", "n")

    def __init__(self) -> None:
        self.counts = [0] * len(LATENCY_BUCKETS)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.total += value
        self.n += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if value <= bound:
                self.counts[i] += 1
                break


class Metrics:
    """What ``GET /metrics`` shows."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, ...], int] = defaultdict(int)  # (key, model, route, status)
        self.errors: dict[tuple[str, ...], int] = defaultdict(int)  # (type,)
        self.fallbacks: dict[tuple[str, ...], int] = defaultdict(int)  # (from, to)
        self.tokens: dict[tuple[str, ...], int] = defaultdict(int)  # (key, model, route, kind)
        self.cost: dict[tuple[str, ...], float] = defaultdict(float)  # (key, model, route)
        self.latency: dict[tuple[str, ...], _Histogram] = defaultdict(_Histogram)  # (model,)
        self.ttft: dict[tuple[str, ...], _Histogram] = defaultdict(_Histogram)  # (model,)

    def record(self, *, key: str, model: str, route: str, status: int, latency_s: float,
               ttft_s: float | None, tokens: dict[str, int], cost: float, error: str | None) -> None:
        self.requests[(key, model, route, str(status))] += 1
        if error:
            self.errors[(error,)] += 1
        for kind, n in tokens.items():
            if n:
                self.tokens[(key, model, route, kind)] += n
        if cost:
            self.cost[(key, model, route)] += cost
        self.latency[(model,)].observe(latency_s)
        if ttft_s is not None:
            self.ttft[(model,)].observe(ttft_s)

    def fallback(self, from_model: str, to_model: str) -> None:
        self.fallbacks[(from_model, to_model)] += 1

    def render(self) -> str:
        out: list[str] = []
        _counter(out, "flotilla_gateway_requests_total", "Requests served.",
                 ("key", "model", "route", "status"), self.requests)
        _counter(out, "flotilla_gateway_errors_total", "Error responses by Anthropic error type.",
                 ("type",), self.errors)
        _counter(out, "flotilla_gateway_fallbacks_total", "Fallbacks taken before the first byte.",
                 ("from", "to"), self.fallbacks)
        _counter(out, "flotilla_gateway_tokens_total", "Tokens by kind (input, output, cache_read, cache_write).",
                 ("key", "model", "route", "kind"), self.tokens)
        _counter(out, "flotilla_gateway_cost_usd_total", "Cost in USD from the catalog's prices.",
                 ("key", "model", "route"), self.cost)
        _histogram(out, "flotilla_gateway_request_seconds", "Request latency.", self.latency)
        _histogram(out, "flotilla_gateway_ttft_seconds", "Time to the first upstream event.", self.ttft)
        return "\n".join(out) + "\n"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values))
    return "{" + pairs + "}" if pairs else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _counter(out: list[str], name: str, help_: str, names: tuple[str, ...], data: dict) -> None:
    out += [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
    out += [f"{name}{_labels(names, k)} {v}" for k, v in sorted(data.items())]


def _histogram(out: list[str], name: str, help_: str, data: dict[tuple[str, ...], _Histogram]) -> None:
    out += [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
    for (model,), h in sorted(data.items()):
        running = 0
        for bound, count in zip(LATENCY_BUCKETS, h.counts):
            running += count
            out.append(f'{name}_bucket{{model="{_escape(model)}",le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{model="{_escape(model)}",le="+Inf"}} {h.n}')
        out.append(f'{name}_sum{{model="{_escape(model)}"}} {h.total}')
        out.append(f'{name}_count{{model="{_escape(model)}"}} {h.n}')
