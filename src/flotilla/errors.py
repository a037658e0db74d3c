"""One error tree for all of flotilla.

    FlotillaError
    ├── UserError                 the user can fix it: config, flags, files, keys
    │   ├── ConfigError           names the file, the key and the fix
    │   ├── UnknownModel          names the models and providers that exist
    │   ├── MissingApiKey         names the environment variable to set
    │   ├── AgentFileError        names the agent file and the field at fault
    │   ├── RepositoryError       not a repository, dirty, bare, detached HEAD …
    │   ├── NothingToResume       ``resume`` of a run that finished, failed or was stopped (exit 1)
    │   └── SandboxUnavailable    the sandbox is required and cannot work here: why, and the fix
    └── RunError                  something went wrong while running
        ├── ProviderError         a model call failed: ``status``, ``retryable``, ``retry_after``
        ├── BudgetExceeded        a call would start over a USD or token cap
        ├── LimitsExceeded        max turns, wall clock, depth …
        ├── InvalidSubmission     a model gave no valid structured answer (``submit_plan`` …) in its tries
        └── Cancelled             stopped by the user (Ctrl-C, SIGTERM, ``flotilla stop``)

Vendor exceptions (``anthropic.*``, ``openai.*``, ``httpx.*``) are translated
into these at the adapter seam and never escape it.
"""

from __future__ import annotations


class FlotillaError(Exception):
    """Base of every error flotilla raises on purpose."""


class UserError(FlotillaError):
    """A mistake the user can fix; the message says how."""


class ConfigError(UserError):
    def __init__(self, file: str, key: str, problem: str, fix: str) -> None:
        self.file, self.key, self.problem, self.fix = file, key, problem, fix
        super().__init__(f"{file}: {key}: {problem}. Fix: {fix}")


class UnknownModel(UserError):
    def __init__(self, name: str, known: list[str], kind: str = "model") -> None:
        self.name, self.known = name, known
        guess = nearest(name, known)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; known: {', '.join(known) or 'none'}")


class MissingApiKey(UserError):
    def __init__(self, provider: str, env_var: str) -> None:
        self.provider, self.env_var = provider, env_var
        super().__init__(f"provider {provider!r} needs an API key: set the environment variable {env_var}")


class AgentFileError(UserError):
    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path, self.field, self.problem = path, field, problem
        super().__init__(f"{path}: field {field!r}: {problem}")


class RepositoryError(UserError):
    """The git repository is not in a state flotilla can work from."""


class SandboxUnavailable(UserError):
    """``--sandbox required`` (or ``[sandbox] mode``) where bubblewrap cannot confine commands."""


def nearest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to a misspelt ``name`` (``paralel`` → ``parallel``, ``gpt5`` →
    ``openai:gpt-5``), or None when nothing is close; a ``provider:`` prefix may be left out."""
    import difflib

    best, score = None, 0.0
    for candidate in candidates:
        for form in {candidate, candidate.rpartition(":")[2]}:
            ratio = difflib.SequenceMatcher(None, name.lower(), form.lower()).ratio()
            if ratio > score:
                best, score = candidate, ratio
    return best if score >= 0.75 else None


class RunError(FlotillaError):
    """Something failed while a run was going."""


class ProviderError(RunError):
    """A model call failed. ``status`` is the HTTP status, or None for timeouts and connection errors."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider: str = "",
        model: str = "",
        retryable: bool | None = None,
        retry_after: float | None = None,
        kind: str = "api_error",
    ) -> None:
        self.status, self.provider, self.model = status, provider, model
        self.retry_after, self.kind = retry_after, kind
        self.retryable = retryable if retryable is not None else _retryable(status)
        where = f"{provider}:{model}" if provider else model
        code = f" {status}" if status is not None else ""
        super().__init__(f"{where}{code} {kind}: {message}".strip())

    @property
    def overloaded(self) -> bool:
        return self.status == 529 or self.kind == "overloaded_error"


def _retryable(status: int | None) -> bool:
    return status is None or status in (408, 409, 429) or status >= 500


class BudgetExceeded(RunError):
    def __init__(self, spent_usd: float, cap_usd: float | None, spent_tokens: int = 0,
                 cap_tokens: int | None = None) -> None:
        self.spent_usd, self.cap_usd = spent_usd, cap_usd
        self.spent_tokens, self.cap_tokens = spent_tokens, cap_tokens
        parts = [f"spent ${spent_usd:.4f}" + (f" of ${cap_usd:.4f}" if cap_usd is not None else "")]
        if cap_tokens is not None:
            parts.append(f"{spent_tokens} of {cap_tokens} tokens")
        super().__init__("budget exceeded: " + ", ".join(parts))


class LimitsExceeded(RunError):
    def __init__(self, limit: str, detail: str) -> None:
        self.limit = limit
        super().__init__(f"{limit} limit reached: {detail}")


class InvalidSubmission(RunError):
    """A model called its submit tool with invalid input (or not at all) as often as it may."""


class Cancelled(RunError):
    """The user stopped the run."""


class NothingToResume(UserError):
    """``flotilla resume`` of a run that did not crash: the message says what state it is in."""
