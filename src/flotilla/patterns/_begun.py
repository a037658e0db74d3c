"""What every pattern's ``begin`` returns: its run checked and recorded, nothing run yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import RunStarted


@dataclass
class Begun:
    """A pattern's run in the store: its id, its kind, the job its task takes, and warnings said before
    it starts (a reviewer from the writer's lab, …)."""

    run_id: str
    kind: str
    job: dict[str, Any]
    title: str
    warnings: list[str] = field(default_factory=list)

    def started_event(self) -> RunStarted:
        return RunStarted(run_id=self.run_id, kind=self.kind, title=self.title[:80])
