"""``flotilla gateway``, ``flotilla keys …`` and ``flotilla usage``."""

from __future__ import annotations

import os
import re
import time
from typing import Optional

import typer
from rich.table import Table

from ..errors import UserError
from ..gateway.config import GatewayConfig
from ._console import make_console, setting

out = make_console()


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="Gateway keys: create, list, show, revoke.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @app.command("gateway")
    def gateway(
        host: Optional[str] = typer.Option(
            None, help=f"Address to listen on (default: {setting('gateway', 'host', GatewayConfig)})."),
        port: Optional[int] = typer.Option(None, help=f"Port (default: {setting('gateway', 'port', GatewayConfig)})."),
        store: Optional[str] = typer.Option(None, help="Run store path (default FLOTILLA_STORE or .flotilla/flotilla.db)."),
        log_level: str = typer.Option("warning", help="uvicorn's log level."),
    ) -> None:
        """Serve the Anthropic-compatible gateway (point ANTHROPIC_BASE_URL at it)."""
        from ..gateway.server import build_gateway, check_bind, serve, startup_warnings
        from ..store import open_store

        gw = build_gateway(open_store(store))
        cfg = gw.live.current.config
        host_, port_ = host or cfg.host, port or cfg.port
        check_bind(host_, gw)
        out.print(f"flotilla gateway on http://{host_}:{port_}  (ANTHROPIC_BASE_URL=http://{host_}:{port_})",
                  highlight=False)
        out.print(f"auth: {gw.auth.mode}", highlight=False, markup=False)
        for warning in startup_warnings(gw):
            make_console(stderr=True).print(f"warning: {warning}", highlight=False, markup=False)
        serve(gw, host_, port_, log_level=log_level)

    @keys.command("create")
    def create(
        name: str = typer.Option(..., "--name", help="A name for the key (shown in usage and metrics)."),
        budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="Spending cap in USD."),
        models: Optional[str] = typer.Option(None, "--models", help="Comma-separated models it may use."),
        allow_unpriced: bool = typer.Option(False, "--allow-unpriced",
                                            help="With a budget: may use models the catalog has no price for "
                                                 "(their calls count as $0)."),
        store: Optional[str] = typer.Option(None, help="Run store path."),
    ) -> None:
        """Create a key and print it: this is the only time it is shown."""
        allowed = [m.strip() for m in (models or "").split(",") if m.strip()]
        secret = _keys(store).create(name, budget_usd=budget_usd, models=allowed, allow_unpriced=allow_unpriced)
        out.print(secret, highlight=False, soft_wrap=True)
        make_console(stderr=True).print(f"key {name!r} created; store it now, it cannot be shown again")

    @keys.command("list")
    def list_(store: Optional[str] = typer.Option(None, help="Run store path.")) -> None:
        """List keys (names, prefixes, budgets, spend; never the keys)."""
        table = Table("name", "prefix", "models", "budget $", "spent $", "revoked", "created")
        for k in _keys(store).list():
            table.add_row(k["name"], k["prefix"] + "…", ",".join(k["models"]) or "any",
                          "-" if k["budget_usd"] is None else f"{k['budget_usd']:.2f}", f"{k['spent_usd']:.4f}",
                          "yes" if k["revoked"] else "", time.strftime("%Y-%m-%d %H:%M", time.localtime(k["created_at"])))
        out.print(table)

    @keys.command("show")
    def show(name: str, store: Optional[str] = typer.Option(None, help="Run store path.")) -> None:
        """Show one key's settings and spend."""
        for field, value in _keys(store).show(name).items():
            out.print(f"{field:>13}: {value}", highlight=False)

    @keys.command("revoke")
    def revoke(name: str, store: Optional[str] = typer.Option(None, help="Run store path.")) -> None:
        """Revoke a key: requests with it get 401 from then on."""
        _keys(store).revoke(name)
        out.print(f"key {name!r} revoked")

    @app.command("usage")
    def usage(
        by: str = typer.Option("key", "--by", help="Group by key, model or route."),
        since: Optional[str] = typer.Option(None, "--since", help="Only requests since: 30m, 12h, 7d or YYYY-MM-DD."),
        store: Optional[str] = typer.Option(None, help="Run store path."),
    ) -> None:
        """Gateway requests, tokens and cost, grouped; "estimated" counts requests charged from what was
        relayed (a stream the client left, or one cut) because the upstream never said its usage."""
        rows = _keys(store).usage(by, parse_since(since) if since else None)
        table = Table(by, "requests", "errors", "input", "output", "cache read", "cache write", "cost $",
                      "estimated", "avg ms", "avg ttft ms")
        for r in rows:
            table.add_row(str(r["name"]), str(r["requests"]), str(r["errors"] or 0), str(r["input_tokens"] or 0),
                          str(r["output_tokens"] or 0), str(r["cache_read_tokens"] or 0),
                          str(r["cache_write_tokens"] or 0), f"{r['cost_usd'] or 0:.4f}", str(r["estimated"] or 0),
                          f"{r['avg_latency_ms'] or 0:.1f}", f"{r['avg_ttft_ms'] or 0:.1f}")
        out.print(table)


def _keys(store: str | None):  # type: ignore[no-untyped-def]
    from ..gateway.keys import KeyStore
    from ..gateway.server import MASTER_ENV
    from ..store import open_store

    return KeyStore(open_store(store), master_key=os.environ.get(MASTER_ENV) or None)


def parse_since(text: str, now: float | None = None) -> float:
    """``30m``/``12h``/``7d`` ago, or a ``YYYY-MM-DD`` date, as a Unix time."""
    now = time.time() if now is None else now
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%d"))
    except ValueError:
        raise UserError(f"--since {text!r}: use a duration like 30m, 12h, 7d or a date YYYY-MM-DD") from None
