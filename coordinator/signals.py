"""Graceful stops on signals: Ctrl-C, SIGTERM and SIGHUP ask the run to stop.

Covers: `GracefulStop`, a context manager installed (from the main thread) around the
whole run, set-up and warm-up included: the first SIGINT, SIGTERM or SIGHUP records
`stop_requested` ("interrupted", "terminated", "hangup") in the run's stop map, which
the warm-up wait and the run loop read; a second one raises KeyboardInterrupt (stop at
once; the periodic checkpoints stay); one that arrives once the islands are stopped
(summary and checkpoint being written) is ignored. `STOP_EXIT_CODES`: the exit code of
each signal stop (128 + the signal number, as shells report it).

Does not cover: what stopping does (`coordinator.run`), the islands' own handlers
(`coordinator.local`), exit codes of other ends (`coordinator.cli`).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

logger = logging.getLogger("islands.run")

STOP_REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated",
                signal.SIGHUP: "hangup"}
STOP_EXIT_CODES = {"interrupted": 130, "terminated": 143, "hangup": 129}


class GracefulStop:
    """First signal asks the run to stop (see the module docstring); a second stops at once."""

    def __init__(self, stop: dict[str, Any]) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_REASONS:
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum: int, frame: Any) -> None:
        if self.stop.get("stopped_by") is not None:
            return  # islands already stopped: the summary and checkpoint are being written
        if self.stop.get("stop_requested"):
            raise KeyboardInterrupt
        self.stop["stop_requested"] = STOP_REASONS.get(signum, "terminated")
        logger.warning("[GA] Stopping (%s): finishing islands and writing the best solution "
                       "(press Ctrl-C again to stop at once)", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


__all__ = ["STOP_EXIT_CODES", "STOP_REASONS", "GracefulStop"]
