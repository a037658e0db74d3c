"""The dashboard's Starlette application: pages, fragments for live re-renders, the event stream, actions.

Pages are rendered on the server (``_html`` escapes every value); ``static/flotilla.js`` follows the
stream and appends transcript fragments or re-fetches a page's ``?fragment=1`` region. A strict
Content-Security-Policy (scripts from this server only) makes markup that slipped through inert too.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import FlotillaError, UserError
from . import (actions, eval_page, fanout_page, ledger_page, live, pipeline_page, race_page, review_page, run_page,
               runs_page, usage_page)
from ._html import Safe, h
from ._layout import page
from .security import Guard

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_STATIC = {"flotilla.js": "text/javascript; charset=utf-8", "flotilla.css": "text/css; charset=utf-8"}


class Dashboard:
    """What the routes share: the store, the catalog and the Session whose functions the actions call."""

    def __init__(self, session: Any) -> None:
        self.session, self.store, self.catalog = session, session.store, session.catalog
        self.stopping = asyncio.Event()

    def runs(self, request: Request) -> Response:  # page handlers are sync: Starlette runs them in threads
        q = request.query_params
        kind, status = q.get("kind", ""), q.get("status", "")
        number = int(q["page"]) if q.get("page", "").isdigit() else 0
        after = self.store.last_event_id()
        region = runs_page.runs_region(self.store, self.catalog, kind=kind, status=status, page=number)
        if q.get("fragment"):
            return _html(region)
        body = runs_page.runs_body(region, kind=kind, status=status, page=number)
        return _html(page("runs", body, stream=f"/events?after={after}", said=q.get("said", "")))

    def run(self, request: Request) -> Response:
        run = self.store.get_run(request.path_params["run_id"])
        board = _board(run, self.store)
        if request.query_params.get("fragment"):
            return _html(run_page.region(self.store, self.catalog, run, board))
        body, after = run_page.run_body(self.store, self.catalog, run, board=board)
        return _html(page(run["title"] or run["id"], body, stream=f"/events?{urlencode({'run': run['id'], 'after': after})}",
                          said=request.query_params.get("said", "")))

    def usage(self, request: Request) -> Response:
        return _html(page("usage", usage_page.usage_body(self.store)))

    def diff(self, request: Request) -> Response:
        race = self.store.get_run(request.path_params["run_id"])
        q = request.query_params
        names = [q["attempt"]] if q.get("attempt") else [n for n in (q.get("a"), q.get("b")) if n]
        if race["kind"] != "race" or not names:
            raise UserError("a diff is of a race's attempt: /runs/RACE/diff?attempt=a1")
        body = race_page.diff_body(race, names)
        return _html(page(f"diff {' vs '.join(names)}", body))

    async def events(self, request: Request) -> Response:
        run_id = request.query_params.get("run")
        if run_id:
            run_id = self.store.get_run(run_id)["id"]
        after = live.last_id(request.headers.get("last-event-id"), request.query_params.get("after"))
        return StreamingResponse(live.stream(self.store, after=after, run_id=run_id, stopping=self.stopping),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def act(self, request: Request) -> Response:
        name, run_id = request.path_params["action"], request.path_params["run_id"]
        if name not in actions.RUN_ACTIONS:
            return _html(page("not found", h("<p>no action {n}</p>", n=name)), 404)
        form = await _form(request)
        back = f"/runs/{run_id}"
        try:
            said = await asyncio.to_thread(actions.RUN_ACTIONS[name], self.session, run_id, form)
        except FlotillaError as exc:  # said on the page, as the CLI says it on stderr
            said = f"not done: {exc}"
        return RedirectResponse(f"{back}?{urlencode({'said': said})}", status_code=303)

    async def gc(self, request: Request) -> Response:
        form = await _form(request)
        try:
            said = await asyncio.to_thread(actions.gc, self.session, form)
        except FlotillaError as exc:
            said = f"not done: {exc}"
        return RedirectResponse(f"/?{urlencode({'said': said})}", status_code=303)

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", 404)
        text = resources.files(__package__).joinpath("static", name).read_text()
        return Response(text, media_type=_STATIC[name], headers={"cache-control": "no-cache"})


def _board(run: dict[str, Any], store: Any) -> Safe:
    """The pattern's own part of a run's page (one layout per pattern, the same components)."""
    if run["kind"] == "race":
        return race_page.board(run, store)
    if run["kind"] == "fanout":
        return fanout_page.board(run)
    if run["kind"] == "ledger":
        return ledger_page.board(run)
    if run["kind"] == "review":
        return review_page.board(run)
    if run["kind"] == "pipeline":
        return pipeline_page.board(run, store)
    if run["kind"] == "eval" and (run["result"] or {}).get("summary"):
        return eval_page.board(run)
    if run["result"]:  # ask, …: the stored result as it is, until they have a layout of their own
        return h('<details class="result"><summary>result</summary><pre>{r}</pre></details>',
                 r=json.dumps(run["result"], indent=2, default=str)[:200_000])
    return Safe("")


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the pages' forms), without a multipart parser."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in fields.items()}


def _html(body: Safe, status: int = 200) -> HTMLResponse:
    return HTMLResponse(str(body), status, headers={"content-security-policy": CSP, "x-content-type-options": "nosniff",
                                                    "referrer-policy": "same-origin"})


def create_app(session: Any, *, host: str = "127.0.0.1", token_sha256: str | None = None) -> Any:
    """The dashboard as an ASGI app over ``session``'s store. Off loopback, ``token_sha256`` is required."""
    board = Dashboard(session)

    async def user_error(request: Request, exc: Exception) -> Response:
        return _html(page("error", h('<p class="error">{e}</p><p><a href="/">all runs</a></p>', e=str(exc))), 400)

    app = Starlette(routes=[
        Route("/", board.runs), Route("/runs/{run_id}", board.run), Route("/runs/{run_id}/diff", board.diff),
        Route("/runs/{run_id}/compare", board.diff), Route("/events", board.events), Route("/usage", board.usage),
        Route("/static/{name}", board.static), Route("/gc", board.gc, methods=["POST"]),
        Route("/runs/{run_id}/{action}", board.act, methods=["POST"]),
    ], exception_handlers={UserError: user_error})
    app.state.dashboard = board
    return Guard(app, host=host, token_sha256=token_sha256)
