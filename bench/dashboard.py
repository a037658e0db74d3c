"""Dashboard benchmark: how soon an event shows in the page, whether any is lost, and the runs list's time.

1. Event commit → page: 50 agent runs (scripted models, a 20 ms model call, 30 turns each) write
   their events at once under one race, in a process of their own; `flotilla ui` serves the race's
   page, and one attempt's transcript page, to headless Chromium, whose script notes when each event arrives. Latency is arrival minus
   the event's own timestamp (taken just before its commit; one clock, one machine): p50, p99.
   Beside it, the same stream read by a plain HTTP client (no browser). Dropped: events the page
   should have had (the stream's own rule) that never came. Targets: p50 <= 100 ms, 0 dropped.
2. Runs list with 1,000 runs (each with two attempts and usage rows): the page's round trip on
   loopback, median and p99 of 30, beside the CLI's way (`flotilla runs`: a family walk and a usage
   query per run) for the same 50 rows. Target <= 100 ms.

Run: .venv/bin/python bench/dashboard.py   (needs /usr/bin/chromium and playwright)
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from flotilla.events import ModelCalled, RunStarted
from flotilla.store import SQLiteStore

WRITERS, TURNS, MODEL_MS = 50, 30, 20
WRITER = '''
import asyncio, sys
from pathlib import Path
from flotilla.agents import AgentSpec, run_agent
from flotilla.agents.tools.base import ToolOutput
from flotilla.config import Settings
from flotilla.messages import MessagesResponse, TextBlock, ToolUseBlock, Usage
from flotilla.store import SQLiteStore
from flotilla.testing import FunctionModel

store_path, parent, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
TURNS, MODEL_MS = int(sys.argv[4]), int(sys.argv[5])

class Noop:
    name, description, read_only = "Noop", "does nothing", True
    input_schema = {"type": "object", "properties": {}}
    async def call(self, input, context):
        return ToolOutput("ok")

def model():
    count = 0
    async def answer(request):
        nonlocal count
        count += 1
        await asyncio.sleep(MODEL_MS / 1000)
        usage = Usage(input_tokens=500, output_tokens=20)
        if count < TURNS:
            return MessagesResponse(id=f"m{count}", model="bench", stop_reason="tool_use", usage=usage,
                                    content=[TextBlock(text="step"), ToolUseBlock(id=f"t{count}", name="Noop", input={})])
        return MessagesResponse(id="end", model="bench", stop_reason="end_turn", usage=usage, content=[TextBlock(text="done")])
    return FunctionModel(answer, name="scripted:bench")

async def main():
    store = SQLiteStore(store_path)
    spec = AgentSpec(name="bench", system_prompt="Benchmark.", tools=["Noop"])
    root = Path(store_path).parent
    await asyncio.gather(*(run_agent(spec, f"task {i}", root, store=store, settings=Settings({"model": "scripted:bench"}, {}, root),
                                     agents={"bench": spec}, tools={"Noop": Noop()}, run_id=rid, parent_run_id=parent,
                                     model_factory=lambda name: model()) for i, rid in enumerate(ids)))

asyncio.run(main())
'''
LISTEN = """window.__got = [];
document.addEventListener("flotilla:event", (e) => window.__got.push([e.detail.id, e.detail.at, Date.now() / 1000]));"""


def ui(store: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([str(Path(sys.executable).parent / "flotilla"), "ui", "--port", "0", "--store", str(store)],
                            cwd=store.parent, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    return proc, re.search(r"(http://\S+)", proc.stderr.readline()).group(1)


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))]


def latency(folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    from flotilla.web import live

    store_path = folder / "live.db"
    store = SQLiteStore(store_path)
    ids = [f"w{i:03d}" for i in range(WRITERS)]
    parent = store.create_run("race", "bench race", meta={"attempts": [
        {"name": f"a{i + 1}", "agent": "bench", "model": "scripted:bench", "run_id": rid} for i, rid in enumerate(ids)]})
    store.create_run("agent", "the followed attempt", parent_id=parent, run_id=ids[0])  # its page exists before it runs
    proc, url = ui(store_path)
    plain: list[tuple[int, float, float]] = []
    stop = threading.Event()

    def follow() -> None:  # the same stream, read without a browser
        with httpx.stream("GET", f"{url}events", params={"run": parent, "after": store.last_event_id()},
                          timeout=None) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    plain.append((event["id"], event["at"], time.time()))
                if stop.is_set():
                    return

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page, one = browser.new_page(), browser.new_page()
            for tab, run in ((page, parent), (one, ids[0])):  # the race's page, and one attempt's transcript
                tab.add_init_script(LISTEN)
                tab.goto(f"{url}runs/{run}")
                tab.wait_for_selector("#live.on")
            threading.Thread(target=follow, daemon=True).start()
            start_id = store.last_event_id()
            began = time.time()
            subprocess.run([sys.executable, "-c", WRITER, str(store_path), parent, ",".join(ids), str(TURNS),
                            str(MODEL_MS)], check=True)
            wrote = time.time() - began
            family = set(store.family(parent))
            expected = {e["id"] for e in store.events_after(start_id, limit=10**7)
                        if live._payload(e, parent, family) is not None}
            deadline = time.time() + 30
            while time.time() < deadline and not expected <= {g[0] for g in page.evaluate("window.__got")}:
                time.sleep(0.2)
            got = page.evaluate("window.__got")
            own = {e["id"] for e in store.events_after(start_id, run_ids=[ids[0]], limit=10**7)
                   if live._payload(e, ids[0], {ids[0]}) is not None}
            while time.time() < deadline and not own <= {g[0] for g in one.evaluate("window.__got")}:
                time.sleep(0.2)
            transcript = one.evaluate("window.__got")
            shown = one.locator("#transcript [data-event]").count()
            browser.close()
        stop.set()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    seen = {g[0] for g in got}
    ms = [(now - at) * 1000 for _id, at, now in got if _id in expected]
    plain_ms = [(now - at) * 1000 for _id, at, now in plain if _id in expected]
    print(f"event commit -> page, {WRITERS} runs writing at once ({len(expected):,} events in {wrote:.1f}s, "
          f"{len(expected) / wrote:,.0f}/s)")
    print(f"  browser (Chromium, the page's script): p50 {statistics.median(ms):6.1f} ms   p99 {pct(ms, 0.99):6.1f} ms"
          f"   dropped {len(expected - seen)}")
    one_ms = [(now - at) * 1000 for _id, at, now in transcript if _id in own]
    print(f"  one attempt's transcript page ({len(own)} events, appended as HTML): p50 {statistics.median(one_ms):6.1f} ms"
          f"   p99 {pct(one_ms, 0.99):6.1f} ms   dropped {len(own - {t[0] for t in transcript})}   transcript entries shown {shown}")
    if plain_ms:
        print(f"  plain HTTP client, same stream       : p50 {statistics.median(plain_ms):6.1f} ms   "
              f"p99 {pct(plain_ms, 0.99):6.1f} ms   (the stream polls the store every {live.POLL_S * 1000:.0f} ms)")


def runs_list(folder: Path) -> None:
    from flotilla.cli.run_cmd import _family_cost
    from flotilla.models.catalog import Catalog

    store_path = folder / "list.db"
    store = SQLiteStore(store_path)
    for i in range(1000):
        race = store.create_run("race", f"race {i}", meta={"attempts": []})
        for a in range(2):
            child = store.create_run("attempt", f"a{a}", parent_id=race)
            store.emit(RunStarted(run_id=child, kind="agent", parent_id=race))
            store.emit(ModelCalled(run_id=child, provider="anthropic", model="claude-sonnet-4-5", input_tokens=900,
                                   output_tokens=80, cost_usd=0.004))
        store.finish_run(race, "done")
    proc, url = ui(store_path)
    try:
        with httpx.Client() as client:
            client.get(url)
            times = []
            for _ in range(30):
                t = time.perf_counter()
                assert client.get(url).status_code == 200
                times.append((time.perf_counter() - t) * 1000)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    catalog = Catalog.load({})
    t = time.perf_counter()
    for r in store.list_runs(limit=50, top_level=True):
        _family_cost(store, r, catalog)
    cli_ms = (time.perf_counter() - t) * 1000
    print("runs list, 1,000 runs (2,000 attempts, 2,000 usage rows in the store), 50 rows a page")
    print(f"  the page (one family-usage query): median {statistics.median(times):6.1f} ms   p99 {pct(times, 0.99):6.1f} ms"
          " (round trip on loopback)")
    print(f"  the CLI's way (a walk and a query per run), same 50 rows: {cli_ms:6.1f} ms (in process, no HTTP)")


if __name__ == "__main__":
    try:
        import playwright  # noqa: F401
    except ImportError:
        playwright = None
    if playwright is None or not Path("/usr/bin/chromium").exists():  # `make bench` goes on with the others
        print("skipped: bench/dashboard.py needs /usr/bin/chromium (apt-get install chromium) and playwright")
        sys.exit(0)
    with tempfile.TemporaryDirectory() as tmp:
        runs_list(Path(tmp))
        latency(Path(tmp))
