"""The ``_sync`` twins of ``Session``'s async methods, for scripts: each runs its method on an event loop
of its own, with the Session started for it, and turns SIGTERM and SIGHUP into a cancellation as Ctrl-C
does (a person stopping the work: recorded as cancelled, branches kept, never resumed)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import Cancelled

T = TypeVar("T")


class SyncTwins:
    """Mixed into ``Session``; what it needs of it: ``start``, ``close``, ``_started`` and the async methods."""

    _started: bool
    start: Callable[..., None]
    close: Callable[[], None]

    def ask_sync(self, *args: Any, **kwargs: Any) -> Any:
        return self._sync(lambda: self.ask(*args, **kwargs))

    def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        return self._sync(lambda: self.run(*args, **kwargs))

    def race_sync(self, *args: Any, **kwargs: Any) -> Any:
        return self._sync(lambda: self.race(*args, **kwargs))

    def eval_sync(self, *args: Any, **kwargs: Any) -> Any:
        return self._sync(lambda: self.eval(*args, **kwargs))

    def fanout_sync(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._sync(lambda: self.fanout(*args, **kwargs))

    def review_sync(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._sync(lambda: self.review(*args, **kwargs))

    def pipeline_sync(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._sync(lambda: self.pipeline(*args, **kwargs))

    def ledger_sync(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._sync(lambda: self.ledger(*args, **kwargs))

    def resume_sync(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._sync(lambda: self.resume(*args, **kwargs))

    def _sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Runs a method on its own event loop, the Session started for it; SIGTERM and SIGHUP cancel it
        as Ctrl-C does (a person stopping the work, not a crash to resume)."""
        caught: list[str] = []

        async def main() -> T:
            task = asyncio.current_task()
            loop = asyncio.get_running_loop()

            def stop(sig: signal.Signals) -> None:
                caught.append(sig.name)
                task.cancel()  # type: ignore[union-attr]

            for sig in (signal.SIGTERM, signal.SIGHUP):
                try:
                    loop.add_signal_handler(sig, stop, sig)
                except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals
                    pass
            own = not self._started
            if own:
                self.start()
            try:
                return await make()
            finally:
                if own:
                    self.close()

        try:
            return asyncio.run(main())
        except asyncio.CancelledError:
            if caught:
                raise Cancelled(f"stopped by {caught[0]}: recorded as cancelled, work kept on its branches") from None
            raise
