"""One run: its transcript live, usage and cost per model and role, its subagent tree, and the actions
a person may take on it (steer, stop, resume, approve or reject a gate)."""

from __future__ import annotations

from typing import Any

from ..models.usage import rows_cost
from . import _data, transcript
from ._html import Safe, h, join
from ._layout import action, ago, badge, money, run_link, table

TRANSCRIPT_LIMIT = 5000


def run_head(run: dict[str, Any], state: str) -> Safe:
    parent = h(' · part of {link}', link=run_link(run["parent_id"])) if run.get("parent_id") else ""
    meta = run["meta"]
    who = " · ".join(x for x in (meta.get("agent"), meta.get("model") or meta.get("lead_model")) if x)
    return h('<h1>{title}</h1><p class="meta">run <code>{id}</code> · {kind}{who} · {badge} {reason} · started {ago}'
             '{parent}</p>', title=run["title"] or run["id"], id=run["id"], kind=run["kind"],
             who=f" · {who}" if who else "", badge=badge(state), reason=run["reason"] or "",
             ago=ago(run["created_at"]), parent=parent)


def actions(run: dict[str, Any], state: str) -> Safe:
    """What may be done to the run in its state: steer and stop a live one, resume a crashed one,
    answer the gate a run waits on (the topic it names in ``meta.gate``, default ``approve``)."""
    rid = run["id"]
    parts: list[Any] = []
    if state == "running":
        parts.append(h('<form method="post" action="/runs/{id}/steer" class="steer"><label for="steer-msg">steer</label>'
                       '<textarea id="steer-msg" name="message" rows="2" placeholder="a message for the agent, taken '
                       'before its next model call"></textarea><label><input type="checkbox" name="read_only" '
                       'value="1"> switch to read-only</label><button type="submit">send</button></form>', id=rid))
        parts.append(action(f"/runs/{rid}/stop", "stop", confirm=f"Stop run {rid} and its subagents?", cls="danger"))
    if run["meta"].get("state") == "awaiting approval" and run["kind"] != "pipeline":  # a pipeline's are by its plan
        gate = run["meta"].get("gate") or "approve"
        parts.append(action(f"/runs/{rid}/signal", "approve", fields={"topic": gate, "value": "yes"}))
        parts.append(action(f"/runs/{rid}/signal", "reject", fields={"topic": gate, "value": "no"},
                            confirm="Reject and end the run?", cls="danger"))
    if state == "crashed":
        parts.append(action(f"/runs/{rid}/resume", "resume", confirm=f"Resume run {rid} from its last finished step?"))
    return h('<div class="actions">{p}</div>', p=join(parts)) if parts else Safe("")


def usage_table(store: Any, catalog: Any, run: dict[str, Any]) -> Safe:
    rows = store.usage(store.family(run["id"]))
    if not rows:
        return Safe("")
    cells = [[run_link(u["run_id"]), u["role"], f"{u['provider']}:{u['model']}", u["calls"], f"{u['input_tokens']:,}",
              f"{u['output_tokens']:,}", f"{u['cache_read_tokens']:,}", f"{u['cache_write_tokens']:,}",
              money(rows_cost([u], catalog), u["input_tokens"] + u["output_tokens"])] for u in rows]
    total = rows_cost(rows, catalog)
    return h('<section><h2>usage by model and role</h2>{t}<p>total {total}</p></section>',
             t=table(["run", "role", "model", "calls", "input", "output", "cache read", "cache write", "cost"], cells),
             total=money(total, sum(u["input_tokens"] + u["output_tokens"] for u in rows)))


def tree_view(store: Any, run: dict[str, Any]) -> Safe:
    def nodes(children: list[dict[str, Any]]) -> Safe:
        return join(h('<li>{link} <span class="kind">{kind}</span> {badge} {title}{sub}</li>',
                      link=run_link(c["id"]), kind=c["kind"], badge=badge(_data.shown_status(c, store)), title=c["title"],
                      sub=h("<ul>{n}</ul>", n=nodes(c["children"])) if c["children"] else "") for c in children)

    top = _data.tree(store, run["id"])
    return h('<section><h2>runs under it</h2><ul class="tree">{n}</ul></section>', n=nodes(top)) if top else Safe("")


def region(store: Any, catalog: Any, run: dict[str, Any], board: Safe = Safe("")) -> Safe:
    """The part that live updates re-render: head, actions, the pattern's board, usage, the tree."""
    state = _data.shown_status(run, store)
    return join([run_head(run, state), actions(run, state), board, usage_table(store, catalog, run), tree_view(store, run)])


def run_body(store: Any, catalog: Any, run: dict[str, Any], *, board: Safe = Safe("")) -> tuple[Safe, int]:
    """The page body and the id of the last event it shows (where its live stream goes on from)."""
    before = store.last_event_id()
    events = store.events_after(0, run_ids=[run["id"]], limit=TRANSCRIPT_LIMIT)
    body = h('<section id="region" data-refresh="/runs/{id}?fragment=1">{region}</section>'
             '<section><h2>transcript</h2><div id="transcript" data-run="{id}">{t}</div></section>',
             id=run["id"], region=region(store, catalog, run, board),
             t=transcript.render(events) or Safe('<p class="empty">no messages yet</p>'))
    # The stream goes on from the store's tail as it was before the transcript was read (the page's script
    # skips an event it already shows), so a page of an old run never walks the store's later events;
    # from the last event shown when the transcript was cut at TRANSCRIPT_LIMIT.
    return body, events[-1]["id"] if len(events) == TRANSCRIPT_LIMIT else before

