"""Gateway benchmark: direct vs flotilla vs LiteLLM proxy vs claude-code-router, in one run.

All three gateways translate Anthropic Messages in to OpenAI Chat Completions out,
against the same bare ASGI fake upstream (plain JSON, and SSE with about 20
text chunks). The gateway under test is pinned to one core; the load generator
and the upstream share the other.

    python bench/gateway.py                                # everything, a 30 s soak each
    python bench/gateway.py --soak 600 --soak-targets flotilla   # the full 10-minute soak of ours
    python bench/gateway.py --only flotilla,flotilla-sdk   # ours, on its fast path and on the SDK
    python bench/gateway.py --only flotilla --fronts       # ours, Messages beside its other front doors

With ``--fronts`` the flotilla gateway is also measured through its other front doors (Chat
Completions in → OpenAI out, Responses in → Anthropic out, Gemini in → OpenAI out), beside Messages.
Prints, plain and streamed: latency added over direct at concurrency 1 (p50,
p99), time to first byte, requests/s at 50 and 200 concurrent, CPU time per
request, resident memory after the run and across the soak. All gateways run
at once (idle but one); concurrency-1 requests go to each in turn, so load
from elsewhere on the machine falls on all of them alike. Peers are installed
on first use under the work directory (LiteLLM in its own virtualenv,
claude-code-router with npm), never into the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "gateway_peers"))

import loadgen  # noqa: E402
import peers  # noqa: E402

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
PRIORITY = -10 if os.geteuid() == 0 else 0
"""Everything measured runs at a raised priority (when allowed), so other work on a shared machine
disturbs the figures less; every target gets the same."""
PROMPT = [{"role": "user", "content": "Say hello in about twenty words."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / TICK


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def start(cmd: list[str], cwd: Path, env: dict[str, str], core: int | None, log: Path) -> subprocess.Popen:
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    if PRIORITY:
        cmd = ["nice", "-n", str(PRIORITY), *cmd]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def ready(port: int, raw: bytes, proc: subprocess.Popen, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        conn = loadgen.Connection("127.0.0.1", port)
        try:
            status, _, _ = await conn.send(raw)
            if status == 200:
                return None
            last = f"HTTP {status}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            last = repr(exc)
        finally:
            conn.close()
        await asyncio.sleep(0.5)
    return f"not ready after {timeout:g} s ({last})"


def bodies(port: int, path: str, openai: bool, extra: dict[str, str] | None = None) -> dict[str, bytes]:
    out = {}
    for mode in ("plain", "stream"):
        if openai:
            body = {"model": peers.MODEL, "messages": PROMPT, "max_tokens": 256, "stream": mode == "stream"}
            if mode == "stream":
                body["stream_options"] = {"include_usage": True}
            headers = {"Authorization": "Bearer sk-bench"}
        else:
            body = {"model": "claude-sonnet-5-5", "max_tokens": 256, "messages": PROMPT, "stream": mode == "stream"}
            headers = {"anthropic-version": "2023-06-01", "x-api-key": "sk-bench"}
        headers.update(extra or {})
        out[mode] = loadgen.build("127.0.0.1", port, path, json.dumps(body).encode(), headers)
    return out


async def latency_interleaved(targets: dict[str, tuple[int, dict[str, bytes]]], mode: str,
                              args: argparse.Namespace) -> dict[str, dict]:
    """Concurrency-1 latency, one request to each target in turn, round after round.

    Interleaving spreads whatever else the machine is doing evenly over all
    targets, so the differences between them stay meaningful on a busy host. The order
    turns by one each round: the target after a slow peer (LiteLLM's work on the shared
    core goes on after it answers) is a different one each time, not always ours.
    """
    conns = {name: loadgen.Connection("127.0.0.1", port) for name, (port, _) in targets.items()}
    got: dict[str, loadgen.Result] = {name: loadgen.Result() for name in targets}
    end = time.monotonic() + args.c1_seconds
    try:
        for _ in range(args.warmup // 10):
            for name, (port, raw) in targets.items():
                await conns[name].send(raw[mode])
        order = list(targets.items())
        for i in range(args.requests):
            if time.monotonic() > end:
                break
            for name, (port, raw) in order[i % len(order):] + order[:i % len(order)]:
                try:
                    status, ttfb, total = await conns[name].send(raw[mode])
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    got[name].errors += 1
                    got[name].error_sample = got[name].error_sample or repr(exc)
                    conns[name].close()
                    continue
                if status != 200:
                    got[name].errors += 1
                    got[name].error_sample = got[name].error_sample or f"HTTP {status}"
                    continue
                got[name].latencies.append(total)
                got[name].ttfbs.append(ttfb)
    finally:
        for conn in conns.values():
            conn.close()
    return {name: {"p50": r.pct(50), "p99": r.pct(99), "ttfb": r.pct(50, r.ttfbs), "n1": r.done,
                   "errors": r.errors, "error": r.error_sample} for name, r in got.items()}


async def throughput(name: str, port: int, raw: dict[str, bytes], pid: int | None, args: argparse.Namespace,
                     into: dict) -> None:
    for mode in ("plain", "stream"):
        r = into[mode]
        await loadgen.run("127.0.0.1", port, raw[mode], concurrency=50, duration=1.0)  # warm the pools
        cpu0, done = cpu_seconds(pid) if pid else 0.0, 0
        for conc in (50, 200):
            t = await loadgen.run("127.0.0.1", port, raw[mode], concurrency=conc, duration=args.duration)
            r[f"rps{conc}"] = t.rps
            r["errors"] += t.errors
            r["error"] = r["error"] or t.error_sample
            done += t.done
        if pid:
            r["cpu_ms"] = (cpu_seconds(pid) - cpu0) / max(done, 1) * 1000
        print(f"  {name:<19} {mode:<6} p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  "
              f"ttfb {r['ttfb']:7.2f} ms  rps@50 {r['rps50']:7.0f}  rps@200 {r['rps200']:7.0f}"
              + (f"  cpu {r['cpu_ms']:.2f} ms/req" if pid else "")
              + (f"  errors {r['errors']} ({r['error']})" if r["errors"] else ""), flush=True)
    if pid:
        into["rss_after"] = rss_mb(pid)


async def soak(port: int, raw: dict[str, bytes], pid: int, seconds: float) -> dict:
    """Mixed plain and streamed load at 20 concurrent for ``seconds``; RSS sampled along the way."""
    samples = [rss_mb(pid)]
    end = time.monotonic() + seconds
    step = max(1.0, seconds / 20)
    n = 0
    while time.monotonic() < end:
        chunk = min(step, end - time.monotonic())
        a, b = await asyncio.gather(
            loadgen.run("127.0.0.1", port, raw["plain"], concurrency=10, duration=chunk),
            loadgen.run("127.0.0.1", port, raw["stream"], concurrency=10, duration=chunk))
        n += a.done + b.done
        samples.append(rss_mb(pid))
    return {"start": samples[0], "end": samples[-1], "max": max(samples), "requests": n,
            "seconds": seconds}


def table(results: dict[str, dict], skipped: dict[str, str]) -> None:
    names = [n for n in results if n != "direct"]
    direct = results["direct"]
    width = 20
    print()
    print(f"{'':<34}" + "".join(f"{n:>{width}}" for n in ["direct", *names]))
    for mode in ("plain", "stream"):
        d = direct[mode]
        rows = [
            ("added p50 @1 (ms)", lambda r: r[mode]["p50"] - d["p50"], "{:.2f}", True),
            ("added p99 @1 (ms)", lambda r: r[mode]["p99"] - d["p99"], "{:.2f}", True),
            ("p50 @1 (ms)", lambda r: r[mode]["p50"], "{:.2f}", False),
            ("TTFB p50 @1 (ms)", lambda r: r[mode]["ttfb"], "{:.2f}", False),
            ("req/s @50", lambda r: r[mode]["rps50"], "{:.0f}", False),
            ("req/s @200", lambda r: r[mode]["rps200"], "{:.0f}", False),
            ("CPU per request (ms)", lambda r: r[mode].get("cpu_ms", float("nan")), "{:.2f}", True),
        ]
        for label, fn, fmt, skip_direct in rows:
            cells = ["-" if skip_direct else fmt.format(fn(direct))] + [fmt.format(fn(results[n])) for n in names]
            print(f"{mode + ' ' + label:<34}" + "".join(f"{c:>{width}}" for c in cells))
    cells = ["-"] + [f"{results[n].get('rss_after', float('nan')):.0f}" for n in names]
    print(f"{'RSS after the run (MB)':<34}" + "".join(f"{c:>{width}}" for c in cells))
    soaked = [n for n in names if "soak" in results[n]]
    if soaked:
        cells = ["-"] + [f"{results[n]['soak']['start']:.0f}→{results[n]['soak']['end']:.0f} "
                         f"(max {results[n]['soak']['max']:.0f})" if n in soaked else "-" for n in names]
        soak_s = results[soaked[0]]["soak"]["seconds"]
        print(f"{f'RSS over a {soak_s:g} s soak (MB)':<34}" + "".join(f"{c:>{width}}" for c in cells))
    if "flotilla" in results:
        f = results["flotilla"]
        print()
        for mode in ("plain", "stream"):
            for peer in names:
                if peer != "flotilla":
                    p = results[peer][mode]
                    ratios = [f[mode][f"rps{c}"] / p[f"rps{c}"] if p[f"rps{c}"] else float("inf") for c in (50, 200)]
                    print(f"{mode:<6} flotilla/{peer} throughput: {ratios[0]:.2f}x @50, {ratios[1]:.2f}x @200")
    for name, why in skipped.items():
        print(f"not run: {name}: {why}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="flotilla,claude-code-router,litellm",
                        help="targets, comma-separated: flotilla, flotilla-sdk (ours on the OpenAI SDK: "
                             "the figures before the fast path), claude-code-router, litellm")
    parser.add_argument("--fronts", action="store_true",
                        help="also measure flotilla's Chat Completions, Responses and Gemini front doors")
    parser.add_argument("--baseline", metavar="REF",
                        help="also run ours as of these git refs (comma-separated; e.g. a commit before a change), side by side")
    parser.add_argument("--soak", type=float, default=30.0, help="soak seconds (600 for the full 10 minutes)")
    parser.add_argument("--soak-targets", default="all", help="which targets to soak (comma-separated, or all)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    parser.add_argument("--requests", type=int, default=2000, help="requests at concurrency 1")
    parser.add_argument("--c1-seconds", type=float, default=30.0, help="time cap per concurrency-1 run")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "flotilla-bench"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cores = sorted(os.sched_getaffinity(0))
    gw_core, load_core = (cores[0], cores[1]) if len(cores) > 1 else (None, None)
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})
    if PRIORITY:
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine skews latency figures)")
    print(f"cores: gateway on {gw_core}, load generator and upstream on {load_core}; work dir {work}")

    up_port = free_port()
    upstream = start([sys.executable, "-m", "uvicorn", "upstream:app", "--port", str(up_port), "--log-level",
                      "warning", "--no-access-log"], HERE / "gateway_peers", dict(os.environ), load_core,
                     work / "upstream.log")
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    procs: dict[str, subprocess.Popen] = {}
    live: dict[str, tuple[int, dict[str, bytes]]] = {}
    procs_of: dict[str, subprocess.Popen] = {}
    """Targets served by another target's process (the front doors: flotilla's)."""
    try:
        direct_raw = bodies(up_port, "/v1/chat/completions", openai=True)
        why = await ready(up_port, direct_raw["plain"], upstream, 20)
        if why:
            raise SystemExit(f"the fake upstream did not start: {why}")
        live["direct"] = (up_port, direct_raw)
        makers = {"flotilla": peers.flotilla, "flotilla-sdk": peers.flotilla_sdk,
                  "claude-code-router": peers.claude_code_router, "litellm": peers.litellm}
        names = args.only.split(",")
        for ref in reversed(args.baseline.split(",") if args.baseline else []):
            makers[f"flotilla@{ref}"] = lambda w, p, u, ref=ref: peers.flotilla(w, p, u, baseline=ref)
            names.insert(names.index("flotilla") + 1 if "flotilla" in names else 0, f"flotilla@{ref}")
        for name in names:
            target = makers[name](work, free_port(), up_port)
            if isinstance(target, str):
                skipped[name] = target
                print(f"  {name}: skipped ({target})", flush=True)
                continue
            procs[name] = start(target.cmd, target.cwd, peers.environment(target), gw_core, work / f"{target.cwd.name}.log")
            raw = bodies(target.port, target.path, openai=False, extra=target.headers)
            why = await ready(target.port, raw["plain"], procs[name], 180)
            if why:
                skipped[name] = f"{why}; see {work / (target.cwd.name + '.log')}"
                print(f"  {name}: skipped ({skipped[name]})", flush=True)
                stop(procs.pop(name))
                continue
            live[name] = (target.port, raw)
            if name == "flotilla" and args.fronts:  # the same process, through its other front doors
                for door in peers.FRONT_DOORS:
                    raw_door = {}
                    for mode in ("plain", "stream"):
                        path, body, headers = peers.front_request(door, mode == "stream")
                        raw_door[mode] = loadgen.build("127.0.0.1", target.port, path, json.dumps(body).encode(),
                                                       headers)
                    live[f"front:{door}"] = (target.port, raw_door)
                    procs_of[f"front:{door}"] = procs[name]
        print(f"measuring {', '.join(live)} (concurrency 1 interleaved, then each alone):", flush=True)
        for mode in ("plain", "stream"):
            for name, figures in (await latency_interleaved(live, mode, args)).items():
                results.setdefault(name, {})[mode] = figures
        for name, (port, raw) in live.items():
            proc = procs.get(name) or procs_of.get(name)
            await throughput(name, port, raw, proc.pid if proc else None, args, results[name])
        for name, (port, raw) in live.items():
            if name in procs and args.soak > 0 and (args.soak_targets == "all" or name in args.soak_targets.split(",")):
                print(f"  soaking {name} for {args.soak:g} s", flush=True)
                got = results[name]["soak"] = await soak(port, raw, procs[name].pid, args.soak)
                print(f"  {name}: {got['requests']} requests in the soak, RSS {got['start']:.0f} → "
                      f"{got['end']:.0f} MB (max {got['max']:.0f})", flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
        stop(upstream)
    table(results, skipped)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
