"""``flotilla.Session``: the public API. Every front end (the CLI, the dashboard, a script) calls it.

A Session holds what every run needs: the project's settings and model catalog, the run store,
model resolution (``provider:model`` names, aliases, and ``Model`` objects a library user passes
in), the agent files, the budget meters, live observers, and the executor: durable (the default:
every step recorded, a crash resumes with ``resume``) or in memory. ::

    from flotilla import Session

    async with Session(project=".") as s:
        r = await s.run("implementer", "Add a --verbose flag", model="sonnet", budget_usd=1.0)
        race = await s.race("Fix the flaky test", models=["opus", "openai:gpt-5"], check="pytest -q")
        print(race.winner.name if race.winner else None, race.merged)

Each async method has a ``_sync`` twin for scripts (``s.race_sync(...)``). In the twins, SIGTERM
and SIGHUP stop the work as Ctrl-C does: recorded as cancelled, branches kept, never resumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .errors import Cancelled, NothingToResume, UserError
from .events import FanOut
from ._session_sync import SyncTwins
from .kernel.executor import TASKS, InMemoryExecutor
from .messages import Message, MessagesRequest
from .models.meter import Meter
from .models.catalog import Catalog
from .protocols import EventSink, Model
from .store import SQLiteStore, default_store_path, new_id

_OWNER: Session | None = None
"""The Session that launched durable execution in this process (DBOS is one per process)."""


class Session(SyncTwins):
    """One project's settings, store, models and executor; the methods below are what flotilla does."""

    def __init__(self, project: str | Path = ".", *, durable: bool = True, store: Any = None,
                 settings: Settings | None = None, models: Mapping[str, Any] | None = None,
                 database_url: str | None = None, home: Path | None = None, worker_remote: str | None = None,
                 sink: EventSink | None = None) -> None:
        """``project``: the repository (or folder) to work in. ``store``: a RunStore or a path (default
        ``.flotilla/flotilla.db`` of the project, or ``FLOTILLA_STORE``). ``models``: names mapped to
        ``Model`` objects, or to zero-argument factories that make a fresh one per run (scripted
        models keep state). ``home`` replaces the user's home for agent files (tests, demos).
        ``sink`` receives every event of every run this Session starts."""
        import os

        self.project = Path(project).resolve()
        self.durable = durable
        self.settings = settings or load_settings(cwd=self.project)
        self.catalog = Catalog.load(self.settings.data)
        if store is None or isinstance(store, (str, Path)):
            store = SQLiteStore(store or os.environ.get("FLOTILLA_STORE") or default_store_path(self.project))
        self.store = store
        self.database_url = database_url
        self.home = home
        self.worker_remote = worker_remote
        self.sink = sink
        self._models: dict[str, Any] = dict(models or {})
        self._meters: dict[str, Meter] = {}
        self._observers: dict[str, EventSink] = {}
        self._agents: dict[Path, dict[str, Any]] = {}
        self._executor: Any = None
        self._started = False

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def start(self, *, listen: list[str] | None = None, adopt: bool = False, dead_after: float | None = None) -> None:
        """Launches the executor (durable execution for a durable Session). ``listen``/``adopt`` are
        for workers: the queues this process takes work from, and adopting dead workers' queued work."""
        global _OWNER
        if self._started:
            return
        if self.durable:
            from . import durable

            if _OWNER is not None:
                raise UserError("another durable Session is open in this process; close it first")
            load_tasks()
            durable.register_tasks(TASKS, _session_for)
            url = self.database_url or _durable_url(self.store)
            # Nothing is adopted behind the user's back: `resume` adopts its run, a worker queued attempts.
            durable.launch(url, listen=listen or [], adopt=adopt, recover=adopt,
                           **({"dead_after": dead_after} if dead_after else {}))
            _OWNER = self
            self._executor = durable.DurableExecutor(self)
        else:
            load_tasks()
            self._executor = InMemoryExecutor(self)
        self._started = True

    def close(self) -> None:
        global _OWNER
        if not self._started:
            return
        self._started = False
        if self.durable:
            from . import durable

            durable.shutdown()
            _OWNER = None

    @property
    def executor(self) -> Any:
        if not self._started:
            raise UserError("the Session is not started: use `async with Session(...) as s`, or a *_sync method")
        return self._executor

    # -- collaborators (what tasks use) --------------------------------------------------------

    def model_name(self, model: str | Model | None) -> str | None:
        """A model's ``provider:model`` name; a ``Model`` object is kept here under its name."""
        if model is None or isinstance(model, str):
            return model
        name = getattr(model, "name", None) or f"object:{id(model):x}"
        self._models[name] = model
        return name

    def build_model(self, name: str, settings: Settings | None = None) -> Model:
        """The model for a name: one this Session was given, else the adapter of the provider configured
        in ``settings`` (default the Session's; a worker passes the settings of the clone it works in)."""
        given = self._models.get(name)
        if given is not None:
            return given if hasattr(given, "request") else given()
        from .models.providers import build_model

        if settings is None or settings is self.settings:
            return build_model(name, settings=self.settings, catalog=self.catalog)
        return build_model(name, settings=settings)

    def settings_for(self, path: Path) -> Settings:
        """The settings of the project at ``path``: the Session's own for its project, else that folder's
        (a worker's clone of another machine's repository)."""
        path = Path(path).resolve()
        return self.settings if path == self.project else load_settings(cwd=path)

    def agents_for(self, root: Path) -> dict[str, Any]:
        """The agent files visible from ``root`` (read once per Session)."""
        root = Path(root).resolve()
        if root not in self._agents:
            from .agents.loader import load_agents

            self._agents[root], _errors = load_agents(root, home=self.home)
        return self._agents[root]

    def limits(self, **overrides: Any) -> Any:
        """A run's limits as the call sets them; the agent loop fills the rest from the agent file and
        ``[limits]`` (``flotilla.agents.limits``)."""
        from .agents.result import Limits

        return Limits(**{k: v for k, v in overrides.items() if v is not None})

    def meter(self, scope: str) -> Meter:
        """The budget meter of run ``scope`` and everything under it, shared by this process's runs of
        that scope. It starts from what the store records as spent, so a resumed run goes on from the
        same total instead of from zero."""
        meter = self._meters.get(scope)
        if meter is None:
            meter = self._meters[scope] = Meter.seeded(self.store.usage(self.store.family(scope)))
        return meter

    def observer(self, run_id: str) -> EventSink:
        """Where a run's events go besides the store: the Session's sink and the caller's."""
        return FanOut(self.sink, self._observers.get(run_id))

    def emit(self, event: Any) -> None:
        self.store.emit(event)
        self.observer(event.run_id or "").emit(event)

    def sibling(self, project: str | Path) -> Session:
        """A Session in memory for another repository (an eval's task), sharing this one's store,
        settings, models and agent home."""
        return Session(project, durable=False, store=self.store, settings=self.settings, models=self._models,
                       home=self.home)

    # -- what flotilla does --------------------------------------------------------------------

    async def ask(self, model: str | Model, prompt: str, *, system: str | None = None, max_tokens: int = 1024,
                  fallback: list[str] | tuple[str, ...] = (), samples: int = 1, aggregate: str = "self-moa",
                  aggregator: str | Model | None = None, window: int = 3, parallel: int = 4) -> Any:
        """One call through the whole model stack (usage, retry, ``fallback``), recorded in the store;
        returns the ``MessagesResponse``.

        With ``samples=N`` (N > 1), best-of-N (Self-MoA): N samples at most ``parallel`` at once, then
        ``aggregate``: ``self-moa`` (the aggregator, default the same model, synthesises one answer),
        ``seq`` (the same in sliding windows of ``window``) or ``judge`` (it picks one sample and says
        why). Returns a ``SampledAnswer`` (``.text``, ``.samples``, ``.aggregation``, ``.cost_usd``)."""
        from .agents.wiring import stacked_model

        name = self.catalog.resolve(self.model_name(model) or self.settings.model)
        if aggregator is not None and samples == 1:
            raise UserError("an aggregator aggregates samples: pass samples=N (N of 2 or more)")
        if samples != 1:
            from .patterns.best_of_n import ask_sampled

            return await ask_sampled(self, name, prompt, samples=samples, aggregate=aggregate,
                                     aggregator=self.model_name(aggregator), system=system, max_tokens=max_tokens,
                                     fallback=list(fallback), window=window, parallel=parallel)
        run_id = self.store.create_run("ask", prompt[:80], meta={"model": name})
        stack = stacked_model(self.build_model, name, list(fallback), catalog=self.catalog,
                              sink=FanOut(self.store, self.sink),
                              run_id=run_id, role="executor", meter=Meter(), budget_usd=None)
        response = await stack.request(MessagesRequest(model=name, system=system, max_tokens=max_tokens,
                                                       messages=[Message(role="user", content=prompt)]))
        self.store.finish_run(run_id, "done", result={"text": response.text()})
        return response

    async def run(self, agent: str, task: str, *, model: str | Model | None = None, advisor: str | Model | None = None,
                  fallback: list[str] | tuple[str, ...] = (), budget_usd: float | None = None,
                  max_turns: int | None = None, timeout_s: float | None = None, read_only: bool | None = None,
                  approve_asks: bool = False, cwd: str | Path | None = None, sink: EventSink | None = None,
                  run_id: str | None = None) -> Any:
        """Runs one agent on a task in ``cwd`` (default the project) and returns its ``AgentResult``.
        ``approve_asks`` lets through the calls an ``ask`` permission rule holds for a person (``--yes``)."""
        from .agents.loader import get_agent
        from .kernel.agent_run import result_from_json

        workspace = Path(cwd or self.project).resolve()
        if not workspace.is_dir():
            raise UserError(f"{workspace} is not a folder")
        get_agent(agent, self.settings_for(workspace).root, home=self.home,
                  agents=self.agents_for(self.settings_for(workspace).root))  # a clear error before anything runs
        run_id = run_id or new_id()
        job = {"agent": agent, "task": task, "workspace": str(workspace), "run_id": run_id,
               "model": self.model_name(model), "advisor": self.model_name(advisor), "fallback": list(fallback),
               "budget_usd": budget_usd, "max_turns": max_turns, "timeout_s": timeout_s, "read_only": read_only,
               "approve_asks": approve_asks}
        return result_from_json(await self._top("flotilla.agent", job, run_id, sink))

    async def race(self, spec: str, *, models: list[str | Model] | tuple[str | Model, ...] = (), check: str | None = None,
                   sink: EventSink | None = None, **options: Any) -> Any:
        """Races ``spec`` across ``models`` in worktrees, verifies with ``check``, ranks, merges the winner.

        ``options`` are ``patterns.race.begin``'s (``n``: attempts per model, best-of-N with one model;
        ``select``: ``checks``, ``checks+judge``, ``pairwise`` or ``vote``; ``agent``, ``parallel``, ``judge``, ``pick``,
        ``budget_usd``, ``max_turns``, ``attempt_timeout_s``, ``setup``, ``base``, ``allow_dirty``,
        ``keep``, ``fallback``, ``queue``, ``remote``, ``approve_asks``); ``review_with=MODEL`` sends the winner
        through the findings loop before it is offered for merge (``outcome.review``). Returns a ``RaceOutcome``.
        """
        from .patterns import race as racing

        review_with = self.model_name(options.pop("review_with", None))
        if review_with:  # the winner is reviewed before it is offered for merge: never merged by the race
            options["pick"] = "manual"
        begun = racing.begin(self, spec, models=[self.model_name(m) or "" for m in models], check=check, **options)
        result = await self._pattern("flotilla.race", begun.run_id, begun, sink, racing.record_cancelled)
        outcome = racing.RaceOutcome.from_dict(result)
        if review_with:
            from .patterns.review import review_winner

            return await review_winner(self, outcome, review_with)
        return outcome

    async def eval(self, tasks: str | Path, configs: list[str | Path], *, n: int | None = None,
                   budget_usd: float | None = None, resume: str | None = None, on_result: Any = None) -> Any:
        """Runs a task set with hidden checks through race configurations (TOML files) and returns an
        ``EvalReport``: per configuration pass@1, any@N, selected@N, selector loss, cost and time per
        task. ``resume`` an eval's id to go on where it stopped; ``on_result`` gets each pair's result."""
        from .patterns.eval import run_eval

        return await run_eval(self, Path(tasks), [Path(c) for c in configs], n=n, budget_usd=budget_usd,
                              resume=resume, sink=on_result)

    async def fanout(self, job: str, *, lead: str | Model | None = None, models: list[str | Model] | tuple[str | Model, ...] = (),
                     approve: Callable[[list[dict[str, Any]]], bool] | None = None, sink: EventSink | None = None,
                     **options: Any) -> dict[str, Any]:
        """A read-only lead splits ``job`` into slices, workers do and prove each in its own worktree,
        proven slices merge one at a time through an integration branch; returns the report as JSON.

        ``options`` are ``patterns.fanout.begin``'s (``agent``, ``max_slices``, ``parallel``, ``check``,
        ``budget_usd``, ``slice_budget_usd``, ``plan_only``, ``yes``, ``pick``, ``base``, …). Unless
        ``yes`` or ``plan_only``, the run waits for approval of its plan: ``approve(slices)`` is asked
        when given, else it waits (durably) for ``signal(run_id, "approve", True)``."""
        from .patterns import fanout as fanning

        begun = fanning.begin(self, job, lead=self.model_name(lead),
                              models=[self.model_name(m) or "" for m in models], **options)
        asking = asyncio.create_task(self._ask_approval(begun.run_id, approve)) if approve else None
        try:
            return await self._pattern("flotilla.fanout", begun.run_id, begun, sink, fanning.record_cancelled)
        finally:
            if asking is not None:
                asking.cancel()

    async def review(self, task: str | None = None, *, reviewer: str | Model, writer: str | Model | None = None,
                     sink: EventSink | None = None, **options: Any) -> dict[str, Any]:
        """The writer implements ``task`` (or ``branch=B`` is reviewed as it is), the reviewer reviews the
        diff, the writer fixes the blocking findings, until clean or ``rounds``; returns the report as
        JSON. ``options`` are ``patterns.review.begin``'s. Nothing is merged (``merge(run_id)`` is yours)."""
        from .patterns import review as reviewing

        begun = reviewing.begin(self, task, reviewer=self.model_name(reviewer) or "",
                                writer=self.model_name(writer), **options)
        return await self._pattern("flotilla.review", begun.run_id, begun, sink, reviewing.record_cancelled)

    async def pipeline(self, task: str, *, name: str = "default", model: str | Model | None = None,
                       models: Mapping[str, str | Model] | None = None, detach: bool = False,
                       sink: EventSink | None = None, **options: Any) -> dict[str, Any]:
        """Runs pipeline ``name`` (``.flotilla/pipelines/NAME.toml``, or the built-in ``default``) on
        ``task``; ``models`` by stage name, ``model`` for the rest. Unless ``yes=True`` it waits at its
        gate for ``approve(run_id)`` / ``reject(run_id, reason)``; ``detach=True`` returns once it waits
        there (durably: this process may exit). ``options`` are ``patterns.pipeline.begin``'s."""
        from .patterns import pipeline as piping

        begun = piping.begin(self, task, name=name, model=self.model_name(model),
                             models={k: self.model_name(v) or "" for k, v in (models or {}).items()}, **options)
        if detach and not options.get("yes"):
            from .patterns._gate import until_gate

            if sink is not None:
                sink.emit(begun.started_event())
            done = await until_gate(self, "flotilla.pipeline", begun.run_id, begun.job)
            return done if done is not None else piping.waiting(self, begun)
        return await self._pattern("flotilla.pipeline", begun.run_id, begun, sink, piping.record_cancelled)

    def approve(self, run_id: str, note: str = "") -> str:
        """Approves what a run waits for at its gate (a pipeline's plan, a fan-out's); returns its id."""
        from .patterns._gate import answer

        return answer(self, run_id, True, note)["id"]

    def reject(self, run_id: str, reason: str = "") -> str:
        """Refuses it: the run ends, nothing more is spent."""
        from .patterns._gate import answer

        return answer(self, run_id, False, reason)["id"]

    async def _pattern(self, name: str, run_id: str, begun: Any, sink: EventSink | None,
                       cancelled: Callable[[Any, dict[str, Any]], None]) -> dict[str, Any]:
        if sink is not None:
            sink.emit(begun.started_event())
        try:
            return await self._top(name, begun.job, run_id, sink, on_cancel=lambda: cancelled(self, begun.job))
        except Cancelled:
            cancelled(self, begun.job)
            raise

    async def ledger(self, action: str = "work", goal: str | None = None, *, sink: EventSink | None = None,
                     **options: Any) -> dict[str, Any]:
        """The long-horizon ledger (``patterns.ledger``): ``"init"`` plans ``goal`` into features.json and
        PROGRESS.md; ``"work"`` runs fresh worker sessions, each proven by flotilla (``sessions``,
        ``until_done``, ``budget_usd``, ``max_dry``, ``model``, ``agent``); ``"status"``; ``"add"`` (``goal``
        is the feature's name; ``verify``, ``description``). Returns JSON."""
        from .patterns import ledger

        if action in ("status", "add"):
            return ledger.status(self) if action == "status" else await ledger.add_feature(self, goal or "", **options)
        name, job, run_id, cancelled = ledger.begin(self, action, goal, **options)
        try:
            return await self._top(name, job, run_id, sink, on_cancel=cancelled)
        except Cancelled:
            cancelled()
            raise

    async def _ask_approval(self, run_id: str, approve: Callable[[list[dict[str, Any]]], bool]) -> None:
        while (self.store.get_run(run_id)["meta"].get("state") != "awaiting approval"):
            await asyncio.sleep(0.1)
        yes = await asyncio.to_thread(approve, self.store.get_run(run_id)["meta"]["plan"])
        self.signal(run_id, "approve", bool(yes))

    async def resume(self, run_id: str, *, sink: EventSink | None = None) -> dict[str, Any]:
        """Continues a crashed durable run from its last finished step; returns its result as JSON.
        A run that did not crash raises ``NothingToResume`` saying what state it is in."""
        from . import durable

        if not self.durable:
            raise UserError("resume needs a durable Session (durable=True, the default)")
        from .store import why_not_resumable

        record = self.store.get_run(run_id)
        why = why_not_resumable(record)
        if why:  # finished, failed or stopped: say so (the CLI exits 1), never run it again
            raise NothingToResume(why)
        self.executor  # started?
        if sink is not None:
            self._observers[record["id"]] = sink
        state = {w.id: w.state for w in durable.workflows(ids=[record["id"]])}.get(record["id"])
        if state == "cancelled":  # Ctrl-C, SIGTERM or `flotilla stop`: a person's decision, never undone
            raise NothingToResume(f"run {record['id']}: nothing to resume, it was stopped ({record['reason'] or 'cancelled'}); "
                                  "a stopped run stays stopped: start it again to redo it")
        return await self.executor.result(durable.resume(record["id"]))

    def steer(self, run_id: str, message: str = "", *, read_only: bool = False) -> str:
        """Puts a message (and/or a switch to read-only) in a running run's inbox; a switch to read-only
        reaches its running subagents too, so that it cannot leak out through a child."""
        if not message and not read_only:
            raise UserError("give a message, read_only=True (--read-only), or both")
        run = self._running(run_id)
        self.store.send_steering(run["id"], message, read_only=read_only)
        if read_only:
            for child in self.store.family(run["id"])[1:]:
                if self.store.get_run(child)["status"] == "running":
                    self.store.send_steering(child, read_only=True)
        return run["id"]

    def stop(self, run_id: str) -> list[str]:
        """Asks a running run and its running subagents to end cleanly before their next model call."""
        run = self._running(run_id)
        targets = [i for i in self.store.family(run["id"]) if self.store.get_run(i)["status"] == "running"]
        for target in targets:
            self.store.send_steering(target, stop=True)
        return targets

    def signal(self, run_id: str, topic: str, value: Any = True) -> None:
        """Answers a run waiting for a person (an approval gate): ``topic`` is what it waits on."""
        self.store.send_signal(f"{run_id}:{topic}", value)

    def merge(self, race_id: str, attempt: str | None = None, *, squash: bool = False) -> str:
        """Merges a race's winner (or a named attempt whose check passed) into its base branch; for a
        fan-out run with ``pick="manual"``, its integration branch."""
        from .patterns.race import merge_attempt

        if self.store.get_run(race_id)["kind"] in ("review", "pipeline"):
            from .patterns.review import merge_review

            return merge_review(self, race_id)
        if self.store.get_run(race_id)["kind"] == "fanout":
            from .patterns.fanout import merge_integration

            return merge_integration(self, race_id)

        return merge_attempt(self, race_id, attempt, squash=squash)

    def gc(self, *, dry_run: bool = False) -> Any:
        """Removes worktrees, branches and locks left by crashed runs; gives those runs up for good."""
        from .patterns.race import collect

        return collect(self, dry_run=dry_run)

    async def work(self, *, concurrency: int | None = None, dead_after: float | None = None,
                   stop: asyncio.Event | None = None) -> None:
        """Runs queued attempts (``race(..., queue=True)``) until ``stop`` is set; adopts dead workers'
        queued attempts (never a race itself: a race resumes only where its repository is)."""
        from . import durable
        from .patterns.race import ATTEMPTS_QUEUE, worker_config

        config = worker_config(self.settings)
        self.start(listen=[ATTEMPTS_QUEUE], adopt=True, dead_after=dead_after or config.dead_after_s)
        durable.register_queue(ATTEMPTS_QUEUE, concurrency=config.global_concurrency,
                               worker_concurrency=concurrency or config.concurrency, polling_interval=0.2)
        await (stop or asyncio.Event()).wait()

    # -- internals ---------------------------------------------------------------------------------

    async def _top(self, name: str, job: dict[str, Any], run_id: str, sink: EventSink | None,
                   on_cancel: Callable[[], None] | None = None) -> dict[str, Any]:
        if sink is not None:
            self._observers[run_id] = sink
        handle = await self.executor.spawn(name, job, id=run_id)
        try:
            return await self.executor.result(handle)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(run_id))
            if on_cancel is not None:
                on_cancel()
            raise
        finally:
            self._observers.pop(run_id, None)

    async def _cancel(self, run_id: str) -> None:
        """Stops a run and its children for good, and waits until they have recorded their end."""
        await self.executor.cancel(run_id)
        for _ in range(400):
            if all(self.store.get_run(i)["status"] != "running" for i in self.store.family(run_id)[1:]):
                break
            await asyncio.sleep(0.05)

    def _running(self, run_id: str) -> dict[str, Any]:
        run = self.store.get_run(run_id)
        if run["status"] != "running":
            raise UserError(f"run {run['id']} is not running (it is {run['status']}: {run['reason']})")
        return run


def load_tasks() -> None:
    """Imports the modules that register tasks (a durable run's code must be known before launch)."""
    from .kernel import agent_run, unit  # noqa: F401
    from .patterns import fanout, ledger, pipeline, race, review  # noqa: F401


def _session_for(job: dict[str, Any]) -> Session:
    if _OWNER is None:
        raise RuntimeError("a durable task ran with no Session open in this process")
    return _OWNER


def _durable_url(store: Any) -> str | None:
    """The durable database: ``FLOTILLA_DATABASE_URL`` when set (``launch`` reads it), else the run
    store's own SQLite file, so that runs and their steps live together."""
    import os

    path = getattr(store, "path", ":memory:")
    if os.environ.get("FLOTILLA_DATABASE_URL") or path == ":memory:":
        return None
    return f"sqlite:///{Path(path).resolve()}"
