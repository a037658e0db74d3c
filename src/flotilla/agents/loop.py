"""The agent loop: model call → the tool calls it asked for → results → again.

``run_agent`` is the only way flotilla runs an agent; every pattern reuses it.
It reads top to bottom: set up the run (``_Run.__init__``), then ``_Run.go``
loops until the model ends its turn or a limit ends the run. Every model call
and every tool call goes through ``self.steps`` (the seam for durable runs);
every transcript message is emitted as a ``MessageAdded`` event as it happens,
so the store holds the run even if the process dies.

Permissions are the runtime's, not the prompt's: a tool the agent may not use,
or a writing tool in a read-only run, is refused here before it is called.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings
from ..errors import BudgetExceeded, Cancelled, FlotillaError, InvalidSubmission
from ..events import FanOut, MessageAdded, RunFinished, RunStarted, SteeringReceived, ToolCalled, ToolDenied
from ..messages import Message, MessagesRequest, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock, Usage
from ..models.budget import Meter
from ..models.catalog import Catalog
from ..protocols import EventSink, Model, RunStore, Steps
from ..store import SQLiteStore, new_id
from ..workspaces.sandbox import sandbox_for
from . import advisor as advising
from .environment import Environment
from .hooks import Hooks
from .limits import effective_limits
from .permissions import parse_rule
from .result import RUN_STATUS, AgentResult, Limits
from .seam import InMemorySteps
from .spec import AgentSpec
from .steering import MID_SYSTEM_KINDS, read_only_notice, steering_message
from .submit import Submission
from .subagents import Subagents
from .tools.agent_tool import SUBAGENTS, AgentTool
from .tools.base import ToolContext, ToolOutput
from .wiring import default_factory, provider_kind, resolve_model_name, stacked_model

log = logging.getLogger(__name__)

MAX_STOP_HOOK_CONTINUATIONS = 3
"""How often a Stop hook may send the agent back to work before the run ends anyway."""


async def run_agent(spec: AgentSpec, task: str, workspace: Path, *, model: str | None = None,
                    fallback: Sequence[str] = (), advisor: str | None = None, limits: Limits | None = None,
                    store: RunStore | None = None, sink: EventSink | None = None,
                    settings: Settings | None = None, model_factory: Callable[[str], Model] | None = None,
                    run_id: str | None = None, parent_run_id: str | None = None,
                    read_only: bool | None = None, parent_model: str | None = None, depth: int = 0,
                    meter: Meter | None = None, agents: dict[str, AgentSpec] | None = None,
                    tools: dict[str, Any] | None = None, steps: Steps | None = None,
                    environment: Environment | None = None, submit: Submission | None = None) -> AgentResult:
    """Runs ``spec`` on ``task`` in ``workspace`` until it ends its turn or a limit ends it.

    ``model``/``fallback``/``advisor`` override the agent file. Without a
    ``store`` the run lives in an in-memory store. ``model_factory`` turns a
    ``provider:model`` name into a model (default: the configured providers).
    ``read_only`` overrides the agent's own permission. The rest are for the
    runtime itself: subagents pass ``parent_model``, ``depth``, the shared
    ``meter`` and the ``agents`` they may call; ``tools`` replaces the default
    tool set; ``steps`` replaces the seam; ``environment`` is the parent's memory, skills, MCP
    servers and permission rules (a top-level run reads its own from the workspace). ``submit``
    offers a tool whose validated input ends the run as ``AgentResult.submitted`` (``agents.submit``).

    Returns an ``AgentResult``; a run ends with a result whatever its stop
    reason, except task cancellation (Ctrl-C), which is recorded and re-raised.
    """
    run = _Run(spec, Path(workspace).resolve(), model=model, fallback=fallback, advisor=advisor,
               limits=limits or Limits(), store=store, sink=sink, settings=settings,
               model_factory=model_factory, run_id=run_id, parent_run_id=parent_run_id, read_only=read_only,
               parent_model=parent_model, depth=depth, meter=meter, agents=agents, tools=tools, steps=steps,
               environment=environment)
    run.submit = submit
    return await run.go(task)


class _Run:
    def __init__(self, spec: AgentSpec, workspace: Path, *, model: str | None, fallback: Sequence[str],
                 advisor: str | None, limits: Limits, store: RunStore | None, sink: EventSink | None,
                 settings: Settings | None, model_factory: Callable[[str], Model] | None, run_id: str | None,
                 parent_run_id: str | None, read_only: bool | None, parent_model: str | None, depth: int,
                 meter: Meter | None, agents: dict[str, AgentSpec] | None, tools: dict[str, Any] | None,
                 steps: Steps | None, environment: Environment | None) -> None:
        self.spec, self.workspace, self.limits, self.depth = spec, workspace, limits, depth
        self.settings = settings or load_settings(cwd=workspace)
        self.store: RunStore = store if store is not None else SQLiteStore(":memory:")
        self.run_id = run_id or new_id()
        self.parent_run_id = parent_run_id
        self.sink: EventSink = FanOut(self.store, sink)
        self.steps = steps or InMemorySteps()
        self.read_only = spec.read_only if read_only is None else read_only
        # Unset bounds take the agent file's maxTurns, then [limits]: no run is unbounded by default.
        self.limits = limits = effective_limits(limits, self.settings, agent_max_turns=spec.max_turns)
        self.max_turns = limits.max_turns

        self.meter = meter or Meter()
        self.budget = limits.budget_usd if limits.budget_usd is not None else spec.budget_usd
        factory = self._build_models(model, list(fallback) or spec.fallback_model, advisor or spec.advisor,
                                     model_factory, parent_model)

        # Tools, hooks and the subagent runner.
        self.agents = agents if agents is not None else _load_agents(workspace, self.settings)
        self.tools = dict(tools) if tools is not None else _default_tools()
        self.tools.setdefault("Agent", AgentTool({n: a.description for n, a in self.agents.items()}))
        self.allowed = set(spec.allowed_tools())
        self.hooks = Hooks.load(workspace, self.settings, self.run_id)
        self.owns_environment = environment is None  # a top-level run: it starts the project's servers
        self.environment = environment or Environment.load(workspace, self.settings)
        if limits.deny and self.owns_environment:  # a child shares the parent's environment, rules and all
            self.environment.permissions.rules["deny"] += [
                parse_rule(text, "the runtime (flotilla)", f"deny[{i}]", workspace) for i, text in enumerate(limits.deny)]
        self.own_servers: list[Any] = []  # the MCP servers this run started, and stops
        self.sandbox = sandbox_for(self.settings)  # what the Bash tool's commands are confined by
        # A child's turns and clock are its own: its agent file's maxTurns, else [limits] (run_agent fills them).
        child_limits = Limits(max_turns=None, wall_clock_s=None, budget_usd=self.budget, max_depth=limits.max_depth,
                              max_parallel_subagents=limits.max_parallel_subagents, approve_asks=limits.approve_asks)

        async def run_child(child: AgentSpec, prompt: str, read_only: bool) -> AgentResult:
            return await run_agent(
                child, prompt, workspace, limits=child_limits, store=self.store, sink=sink, settings=self.settings,
                model_factory=factory, parent_run_id=self.run_id, parent_model=self.model_name, depth=depth + 1,
                meter=self.meter, agents=self.agents, tools=tools, environment=self.environment,
                read_only=True if read_only else None)  # a subagent of a read-only run must not be a way around it

        self.subagents = Subagents(self.agents, depth, limits.max_depth, limits.max_parallel_subagents, run_child)

        # State of the conversation.
        self.messages: list[Message] = []
        self.usage = Usage()
        self.turns = self.tool_calls = self.stop_hook_continuations = 0
        self.final_text = ""
        self.files: list[str] = []
        self.denials: list[str] = []
        self.submit: Submission | None = None
        self.submitted: dict[str, Any] | None = None
        self.submit_tries = 0

    def _build_models(self, override: str | None, fallback: list[str], advisor: str | None,
                      model_factory: Callable[[str], Model] | None, parent_model: str | None) -> Callable[[str], Model]:
        """The executor's model stack and the advisor's; they share one meter, and so one budget."""
        catalog = Catalog.load(self.settings.data)
        factory = model_factory or default_factory(self.settings, catalog)
        self.model_name = resolve_model_name(self.spec, self.settings, catalog, override=override,
                                             parent_model=parent_model)
        # Steering takes the form every model of the chain accepts (a fallback may speak another API).
        kinds = [provider_kind(self.settings, catalog.resolve(n)) for n in (self.model_name, *fallback)]
        self.kind = next((k for k in kinds if k not in MID_SYSTEM_KINDS), kinds[0])
        self.model = stacked_model(factory, self.model_name, fallback, catalog=catalog, sink=self.sink,
                                   run_id=self.run_id, role="executor", meter=self.meter, budget_usd=self.budget)
        info = catalog.info(self.model_name)
        self.max_tokens = min(int(self.settings.get("max_tokens", 8192)), info.max_output if info else 8192)
        self.advisor: advising.Advisor | None = None
        if advisor:
            advisor_model = stacked_model(factory, catalog.resolve(advisor), [], catalog=catalog, sink=self.sink,
                                          run_id=self.run_id, role="advisor", meter=self.meter,
                                          budget_usd=self.budget)
            self.advisor = advising.Advisor(advisor_model, self.steps, self.sink, self.run_id,
                                            self.settings.section("advisor", advising.AdvisorSettings))
        return factory

    # -- the run --------------------------------------------------------------

    async def go(self, task: str) -> AgentResult:
        title = f"{self.spec.name}: {' '.join(task.split())[:80]}"
        self.store.create_run("agent", title, parent_id=self.parent_run_id, run_id=self.run_id, exist_ok=True, meta={
            "agent": self.spec.name, "model": self.model_name, "workspace": str(self.workspace),
            "read_only": self.read_only, "depth": self.depth,
            "advisor": self.advisor.model.name if self.advisor else None,
            "sandbox": self.sandbox.record()})
        self.sink.emit(RunStarted(run_id=self.run_id, kind="agent", title=title, parent_id=self.parent_run_id))
        self._add(Message(role="user", content=task))
        error: str | None = None
        try:
            async with asyncio.timeout(self.limits.wall_clock_s) as clock:
                await self._start_environment()
                stop = await self._loop()
            if stop == "max_turns":
                error = (f"{self.max_turns} model calls made, the most this run may make (--max-turns, the "
                         "agent file's maxTurns, or max_turns in the [limits] table of flotilla.toml)")
        except TimeoutError as exc:
            if not clock.expired():
                stop, error = "error", f"TimeoutError: {exc}"
            else:
                stop, error = "timeout", (f"wall clock of {self.limits.wall_clock_s:g}s reached (--timeout, or "
                                          "wall_clock_s in the [limits] table of flotilla.toml)")
        except BudgetExceeded as exc:
            stop, error = "budget", str(exc)
        except Cancelled as exc:
            stop, error = "cancelled", str(exc) or None
        except asyncio.CancelledError:
            self._finish("cancelled", "the run's task was cancelled (Ctrl-C)")
            raise
        except FlotillaError as exc:
            stop, error = "error", str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must still end the run with its reason recorded
            log.exception("run %s failed", self.run_id)
            stop, error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            await Environment.stop(self.own_servers)
        return self._finish(stop, error)

    async def _start_environment(self) -> None:
        """Starts the MCP servers this run owns and adds the Skill and MCP tools the agent may use."""
        self.own_servers = await self.environment.start(self.spec, self.sink, self.run_id,
                                                        project=self.owns_environment, sandbox=self.sandbox)
        extra = self.environment.tools(self.spec, self.own_servers)
        self.tools = {**extra, **self.tools}
        self.allowed |= self.environment.allowed(self.spec, extra)

    async def _loop(self) -> str:
        while True:
            if await self._steering():
                return "stopped"
            if self.max_turns is not None and self.turns >= self.max_turns:
                return "max_turns"
            request = self._request()
            self.model.reset()  # a fallback lasts the turn: each model call tries the primary first
            response = await self.steps.model_call(f"turn:{self.turns + 1}", lambda: self.model.request(request))
            self.turns += 1
            self.usage = self.usage + response.usage
            self._add(Message(role="assistant", content=response.content))
            if response.text():
                self.final_text = response.text()
            calls = response.tool_uses()
            if not calls:
                if self.submit is not None:
                    self._remind_to_submit()
                    continue
                if await self._keep_going():
                    continue
                return "end_turn"
            notes = await self._advise_before_first_change(calls)
            # Fix the step order of concurrent calls before any runs, so a replay matches each to its record.
            self.steps.reserve_tool_calls([c.id for c in calls])
            outputs = await _all(self._tool(call) for call in calls)
            notes += await self._advise_on_repeats(calls, outputs)
            results = [ToolResultBlock(tool_use_id=c.id, content=o.content, is_error=o.is_error or None)
                       for c, o in zip(calls, outputs)]
            self._add(Message(role="user", content=[*results, *notes]))
            if self.submit is not None and self._submitted(calls, outputs):
                return "end_turn"

    def _request(self) -> MessagesRequest:
        tools = [ToolSpec(name=t.name, description=t.description, input_schema=t.input_schema)
                 for name, t in self.tools.items()
                 if name in self.allowed and (t.read_only or not self.read_only) and self.environment.offered(name)]
        if self.advisor is not None:
            tools.append(advising.TOOL)
        if self.submit is not None:
            tools.append(self.submit.spec())
        return MessagesRequest(model=self.model_name, system=self._system(), messages=self.messages,
                               tools=tools or None, max_tokens=self.max_tokens)

    def _system(self) -> str:
        where = (f"\n\nYou are working in the directory {self.workspace}; tool paths are relative to it "
                 "and may not leave it.")
        if self.read_only:
            where += " This run is read-only: you may read and search, not change files."
        environment = self.environment.prompt(self.spec)
        return (self.spec.system_prompt or "You are a helpful coding agent.") + where \
            + (f"\n\n{environment}" if environment else "")

    # -- tools ------------------------------------------------------------------

    async def _tool(self, call: ToolUseBlock) -> ToolOutput:
        """One tool call: permissions, PreToolUse hooks, the call through the seam, PostToolUse hooks."""
        if call.name == advising.TOOL.name and self.advisor is not None:
            question = str(call.input.get("question", "")) or "What should I do next?"
            advice = await self.advisor.consult("tool", self.messages, detail=question)
            return ToolOutput(advice or "The advisor is not available (its cap for this run is reached).")
        if self.submit is not None and call.name == self.submit.name:
            errors = self.submit.errors(call.input)
            return ToolOutput(self.submit.refusal(errors), is_error=True) if errors else ToolOutput("Accepted.")
        tool = self.tools.get(call.name)
        refusal = self._refusal(call.name, tool)
        if refusal:
            return self._deny(call, refusal)
        input = call.input
        if self.hooks.any_for("PreToolUse"):
            verdict = await self.hooks.run("PreToolUse", {
                "tool_name": call.name, "tool_input": input, "tool_use_id": call.id,
                "permission_mode": "plan" if self.read_only else "default"}, call.name)
            if verdict.blocked:
                return self._deny(call, f"Blocked by a PreToolUse hook: {verdict.reason}")
            if verdict.updated_input is not None:
                input = verdict.updated_input
        refusal = self.environment.refusal(call.name, input, approve_asks=self.limits.approve_asks)
        if refusal:  # the permission rules judge the input that would run, after any hook changed it
            return self._deny(call, refusal)
        context = ToolContext(root=self.workspace, run_id=self.run_id, read_only=self.read_only,
                              sink=self.sink, sandbox=self.sandbox, extras={SUBAGENTS: self.subagents})

        async def call_tool() -> ToolOutput:
            started = time.perf_counter()
            try:
                output = await tool.call(input, context)
            except (BudgetExceeded, Cancelled):
                raise
            except Exception as exc:  # noqa: BLE001 - a tool's failure is the model's to read, not the run's end
                output = ToolOutput(f"{call.name} failed: {type(exc).__name__}: {exc}", is_error=True)
            output.content = self.environment.screen(call.name, output.content, approve_asks=self.limits.approve_asks)
            self.sink.emit(ToolCalled(run_id=self.run_id, tool=call.name, tool_use_id=call.id, input=input,
                                      is_error=output.is_error, output_preview=output.content[:300],
                                      duration_ms=(time.perf_counter() - started) * 1000))
            return output

        output = await self.steps.tool_call(call.id, call_tool)
        self.tool_calls += 1
        for path in output.files_changed:
            if path not in self.files:
                self.files.append(path)
        if self.hooks.any_for("PostToolUse"):
            verdict = await self.hooks.run("PostToolUse", {
                "tool_name": call.name, "tool_input": input, "tool_use_id": call.id,
                "tool_response": {"content": output.content, "is_error": output.is_error}}, call.name)
            feedback = ([f"PostToolUse hook: {verdict.reason}"] if verdict.blocked else []) + verdict.context
            if feedback:
                output.content += "\n\n" + "\n".join(feedback)
        return output

    def _refusal(self, name: str, tool: Any) -> str | None:
        """Why the runtime refuses a call, or None when it may go ahead."""
        if tool is None:
            offered = ", ".join(sorted(n for n in self.tools if n in self.allowed)) or "none"
            return f"There is no tool named {name!r}. Tools you may use: {offered}."
        if name not in self.allowed:
            return (f"{name} is not allowed for agent {self.spec.name!r}; "
                    f"it may use: {', '.join(sorted(self.allowed & set(self.tools))) or 'no tools'}.")
        if self.read_only and not tool.read_only:
            return f"{name} is not allowed: this run is read-only and may not change files."
        return None

    def _deny(self, call: ToolUseBlock, reason: str) -> ToolOutput:
        self.denials.append(reason)
        self.sink.emit(ToolDenied(run_id=self.run_id, tool=call.name, tool_use_id=call.id, reason=reason))
        return ToolOutput(reason, is_error=True)

    # -- the submit tool ------------------------------------------------------------

    def _submitted(self, calls: list[ToolUseBlock], outputs: list[ToolOutput]) -> bool:
        """Whether a valid submit call came (its input is then the run's answer); bounds the invalid ones."""
        assert self.submit is not None
        for call, output in zip(calls, outputs):
            if call.name != self.submit.name:
                continue
            if not output.is_error:
                self.submitted = dict(call.input)
                return True
            self._count_submit_try(output.content)
        return False

    def _remind_to_submit(self) -> None:
        assert self.submit is not None
        self._count_submit_try(f"it ended its turn without calling {self.submit.name}")
        self._add(Message(role="user", content=self.submit.reminder()))

    def _count_submit_try(self, why: str) -> None:
        assert self.submit is not None
        self.submit_tries += 1
        if self.submit_tries >= self.submit.max_attempts:
            raise InvalidSubmission(f"no valid {self.submit.name} after {self.submit_tries} tries; the last: {why}")

    # -- the advisor, Stop hooks and steering -------------------------------------

    async def _advise_before_first_change(self, calls: list[ToolUseBlock]) -> list[TextBlock]:
        if self.advisor is None or not self.advisor.wants("first_change"):
            return []
        writes = [c for c in calls if (t := self.tools.get(c.name)) is not None and not t.read_only
                  and self._refusal(c.name, t) is None]
        if not writes:
            return []
        detail = "\n".join(f"{c.name} {json.dumps(c.input)[:500]}" for c in writes)
        advice = await self.advisor.consult("first_change", self.messages, detail=detail)
        return [TextBlock(text=f"[Advisor, before your first change]\n{advice}")] if advice else []

    async def _advise_on_repeats(self, calls: list[ToolUseBlock], outputs: list[ToolOutput]) -> list[TextBlock]:
        if self.advisor is None:
            return []
        repeats = [r for c, o in zip(calls, outputs) if o.is_error and o.content not in self.denials
                   and (r := self.advisor.repeated(c.name, c.input, o.content))]
        if not repeats or not self.advisor.available:
            return []
        advice = await self.advisor.consult("repeated_error", self.messages, detail="\n".join(repeats))
        return [TextBlock(text=f"[Advisor, on a repeated failure]\n{advice}")] if advice else []

    async def _keep_going(self) -> bool:
        """Before the run ends its turn: the advisor's check, then the Stop hooks, may send it back to work."""
        if self.advisor is not None and self.advisor.wants("before_done"):
            advice = await self.advisor.consult("before_done", self.messages)
            if advice:
                self._add(Message(role="user", content=(
                    f"[Advisor, before you finish]\n{advice}\n\nIf anything is missing, continue the work; "
                    "otherwise give your final report again.")))
                return True
        event = "SubagentStop" if self.depth > 0 else "Stop"
        if self.stop_hook_continuations < MAX_STOP_HOOK_CONTINUATIONS and self.hooks.any_for(event):
            verdict = await self.hooks.run(event, {"stop_hook_active": self.stop_hook_continuations > 0,
                                                   "last_assistant_message": self.final_text})
            if verdict.blocked:
                self.stop_hook_continuations += 1
                self._add(Message(role="user", content=f"[{event} hook] {verdict.reason}"))
                return True
        return False

    async def _steering(self) -> bool:
        """Adds what the steering inbox holds to the conversation; True when it says stop.

        Taking the inbox empties it, so it is taken in a step: a durable replay sees what was taken."""
        async def take() -> list[dict[str, Any]]:
            return self.store.take_steering(self.run_id)

        items = await self.steps.step(f"steering:{self.turns}", take)
        stop = False
        for item in items:
            if item.get("message"):
                self._add(steering_message(item["message"], self.kind))
            if item.get("read_only") and not self.read_only:
                self.read_only = True
                self._add(read_only_notice(self.kind))
            self.sink.emit(SteeringReceived(run_id=self.run_id, message=item.get("message", ""),
                                            read_only=bool(item.get("read_only"))))
            stop = stop or bool(item.get("stop"))
        return stop

    # -- bookkeeping ----------------------------------------------------------------

    def _add(self, message: Message) -> None:
        self.messages.append(message)
        self.sink.emit(MessageAdded(run_id=self.run_id, message=message.wire()))

    def _finish(self, stop: str, error: str | None) -> AgentResult:
        self._close_open_calls(stop)
        files = self.files + [f for f in self.subagents.files_changed if f not in self.files]
        # The store's usage rows are the record of spend: complete however often the run resumed.
        result = AgentResult(text=self.final_text, stop_reason=stop, usage=self.usage,
                             cost_usd=self.store.cost(self.store.family(self.run_id)), files_changed=files,
                             run_id=self.run_id, turns=self.turns, error=error, tool_calls=self.tool_calls,
                             denials=list(self.denials), submitted=self.submitted)
        reason = stop if not error else f"{stop}: {error}"
        self.store.finish_run(self.run_id, RUN_STATUS[stop], reason, result={
            "text": result.text, "stop_reason": stop, "error": error, "usage": self.usage.wire(),
            "cost_usd": result.cost_usd, "files_changed": files, "turns": self.turns,
            "tool_calls": self.tool_calls, "submitted": self.submitted})
        self.sink.emit(RunFinished(run_id=self.run_id, status=RUN_STATUS[stop], reason=reason))
        return result

    def _close_open_calls(self, stop: str) -> None:
        """Answers tool calls a limit cut off, so the stored transcript stays well-formed."""
        last = self.messages[-1] if self.messages else None
        if last is None or last.role != "assistant":
            return
        pending = [b for b in last.blocks() if isinstance(b, ToolUseBlock)]
        if pending:
            self._add(Message(role="user", content=[
                ToolResultBlock(tool_use_id=b.id, content=f"Not run: the run ended ({stop}).", is_error=True)
                for b in pending]))


async def _all(calls: Any) -> list[ToolOutput]:
    """Runs tool calls concurrently; when one raises (budget, cancellation), the others are cancelled too."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _default_tools() -> dict[str, Any]:
    from .tools import default_tools

    return dict(default_tools())


def _load_agents(workspace: Path, settings: Settings) -> dict[str, AgentSpec]:
    from .loader import load_agents

    agents, _errors = load_agents(settings.root if settings.root else workspace)
    return agents
