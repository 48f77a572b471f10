"""Watching a run while it goes on, and what is left for review at its end: `RunWatch`.

Covers: `RunWatch`, made once the run directory is known: it keeps `RUN_DIR/run.log`
(the whole `islands` log with timestamps, INFO and up whatever `--quiet` says, added
here and removed in `finish`), subscribes a `coordinator.view.RunView` to the bus,
publishes the persisted `islands` event (per-island state, population, migrants) at
most every SNAPSHOT_S of run time, and shows progress: the rich live view
(`coordinator.live`) when stderr is a terminal and neither `--quiet` nor `--json` was
given, else one plain summary line every `config.output.progress_interval` seconds, whatever
the island count. `finish(summary)` stops the live view, builds `report.html` and its
SVG plots (`coordinator.report`; a failure is a warning), records the run in the history
(`coordinator.history`; a failure is a warning) and logs how it compares with earlier
runs on the same instance, then closes run.log.

Does not cover: the events themselves (`coordinator.events`), the summary and its
closing lines (`coordinator.summary`), drawing (`coordinator.live`,
`coordinator.report_plots`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from coordinator.events import Event, EventBus
from coordinator.view import RunView

logger = logging.getLogger("islands.run")

SNAPSHOT_S = 1.0  # run seconds between persisted `islands` events
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class RunLogHandler(logging.FileHandler):
    """RUN_DIR/run.log; a disk that refuses a line stops the file, never the run."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8")
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.setLevel(logging.INFO)
        self.broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if not self.broken:
            self.broken = True
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"[GA] Could not write {self.baseFilename}; the rest of the "
                                 "log is not kept there\n")


def wants_live_view(config: Any, stream: Any = None) -> bool:
    """The live view only on a terminal, and not with --quiet or --json."""
    stream = sys.stderr if stream is None else stream
    try:
        terminal = bool(stream.isatty())
    except (AttributeError, ValueError):
        terminal = False
    return terminal and not config.output.quiet and not config.output.json


class RunWatch:
    """run.log, the view, progress lines or the live view, and the end-of-run review."""

    def __init__(self, config: Any, run_dir: Path, bus: EventBus, n_islands: int,
                 live: bool | None = None) -> None:
        self.config, self.run_dir, self.bus = config, Path(run_dir), bus
        self.view = RunView(n_islands, config.stop.time_limit, config.stop.generations)
        self.snapshot_at = -SNAPSHOT_S
        self.progress_at = 0.0
        self.interval = float(config.output.progress_interval or 10.0)
        self.stderr_fallback: logging.Handler | None = None
        self.log_handler, self.level_before = self._open_log()
        self.live: Any = None
        if wants_live_view(config) if live is None else live:
            from coordinator.live import LiveView

            self.live = LiveView(self.view)
        bus.subscribe(self.view)
        bus.subscribe(self)

    def _open_log(self) -> tuple[RunLogHandler | None, int | None]:
        islands_logger = logging.getLogger("islands")
        try:
            handler = RunLogHandler(self.run_dir / "run.log")
        except OSError as error:
            logger.warning("[GA] Could not open %s (%s); the log is not kept",
                           self.run_dir / "run.log", error)
            return None, None
        if not islands_logger.hasHandlers():
            # Used as a library with no logging set up: warnings went to stderr through
            # Python's last-resort handler, which a run.log handler would silence.
            self.stderr_fallback = logging.StreamHandler()
            self.stderr_fallback.setLevel(logging.WARNING)
            islands_logger.addHandler(self.stderr_fallback)
        islands_logger.addHandler(handler)
        level_before = None
        if islands_logger.getEffectiveLevel() > logging.INFO:  # run.log keeps INFO always
            level_before = islands_logger.level
            islands_logger.setLevel(logging.INFO)
        return handler, level_before

    def __call__(self, event: Event) -> None:
        kind, t = event["event"], float(event.get("t", 0.0))
        if kind == "config" and self.live is not None and self.live.live is None:
            self.live.start()
            self.bus.subscribe(self.live)
        elif kind == "summary" and self.live is not None:
            self.live.stop()  # the closing lines come next, below the last frame
        if kind != "telemetry":
            return
        if t - self.snapshot_at >= SNAPSHOT_S:
            self.snapshot_at = t
            self.bus.publish("islands", islands=self.view.snapshot())
        if self.live is None and t - self.progress_at >= self.interval:
            self.progress_at = t
            logger.info(self.view.progress_line())

    def finish(self, summary: dict[str, Any]) -> None:
        """The end of the run: live view off, report, history, run.log closed."""
        try:
            if self.live is not None:
                with contextlib.suppress(Exception):
                    self.live.stop()
            self._report()
            if summary:
                self._record(summary)
        finally:
            self.close_log()

    def _report(self) -> None:
        try:
            from coordinator.report import build_report

            report = build_report(self.run_dir)
        except Exception as error:  # the run's result stands without its report
            logger.warning("[GA] Could not build the report in %s (%s: %s); try again with "
                           "`islands report %s`", self.run_dir, type(error).__name__, error,
                           self.run_dir)
            return
        logger.info("[GA] Report: %s", report)

    def _record(self, summary: dict[str, Any]) -> None:
        if not self.config.output.record_history:
            return
        from coordinator.history import HistoryError, history_path, record_run

        path = history_path(self.config.output.history)
        try:
            config_text = (self.run_dir / "config.toml").read_text(encoding="utf-8")
        except OSError:
            config_text = ""
        try:
            comparison = record_run(path, summary, config_text)
        except (HistoryError, OSError) as error:
            logger.warning("[GA] The run was not recorded in the history: %s", error)
            return
        if comparison:
            logger.info("[GA] Compared with earlier runs on this instance: %s", comparison)

    def close_log(self) -> None:
        islands_logger = logging.getLogger("islands")
        if self.log_handler is not None:
            islands_logger.removeHandler(self.log_handler)
            with contextlib.suppress(OSError, ValueError):
                self.log_handler.close()
            self.log_handler = None
        if self.stderr_fallback is not None:
            islands_logger.removeHandler(self.stderr_fallback)
            self.stderr_fallback = None
        if self.level_before is not None:
            islands_logger.setLevel(self.level_before)
            self.level_before = None


__all__ = ["SNAPSHOT_S", "RunLogHandler", "RunWatch", "wants_live_view"]
