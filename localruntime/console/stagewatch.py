"""The stage under a running runtime: deleted (`make destroy-local`) and back (`make
deploy-local`), said once each, and the runtime's wiring put back when it returns.

Every 2 s the watch asks what is missing: the stage's own resources (bucket, queues,
tables), and the runtime's wiring into them (a bucket's notifications to the queues the
runtime polls). While a stage resource is missing the runtime waits, and says so once;
once they are all there and only wiring is missing, it reconnects (a recreated bucket has
no notifications; `chalice-local deploy` rewriting them at the same moment can drop one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from localruntime.log import Console

POLL_SECONDS = 2.0


class StageWatch:
    def __init__(self, stage_name: str, missing: Callable[[], tuple[list[str], list[str]]],
                 reconnect: Callable[[], None], console: Console, stop: threading.Event,
                 poll_seconds: float = POLL_SECONDS) -> None:
        """`missing()` answers (stage resources missing, wiring missing)."""
        self.stage_name = stage_name
        self.missing = missing
        self.reconnect = reconnect
        self.console = console
        self.stop = stop
        self.poll_seconds = poll_seconds
        self.gone = False
        self._last_error: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="stage-watch").start()

    def _run(self) -> None:
        while not self.stop.wait(self.poll_seconds):
            try:
                self.check()
                self._last_error = None
            except Exception as exc:  # noqa: BLE001 - the endpoint may be busy; ask again
                error = f"{type(exc).__name__}: {exc}"
                if not self.stop.is_set() and error != self._last_error:
                    self.console.info(f"stage watch: {error}")
                self._last_error = error

    def check(self) -> None:
        resources, wiring = self.missing()
        if resources:
            if not self.gone:
                self.gone = True
                self.console.info(
                    f"stage {self.stage_name} was deleted ({', '.join(resources)} gone; make "
                    f"destroy-local?): this runtime keeps running and waits for it. `make "
                    "deploy-local` brings it back (and the runtime reconnects); Ctrl-C stops")
            return
        if wiring:
            self.reconnect()
            self.console.info(f"stage {self.stage_name}" + (" is back" if self.gone else "")
                              + f": reconnected {', '.join(wiring)}")
        elif self.gone:
            self.console.info(f"stage {self.stage_name} is back")
        self.gone = False
