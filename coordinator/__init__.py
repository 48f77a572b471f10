"""The coordinator side of `islands`: the parent process of a run, in parts.

Covers: run configuration (`config`), auto-configuration from the memory budget and
cores (`autoconfig`), putting a run together (`setup`) and its short loop (`run`), the
parts it wires: `supervisor` (start, restart, liveness), `router` (migrants, source
news), `pressure` (memory samples -> `policy` -> commands, per domain: `pressure_domains`),
`best` (best solution),
`state` (run directory, lock, coordinator checkpoint, resume), `events` (the bus and
`events.jsonl`), `observers` (summary recorder), `summary`; watching and reviewing a
run: `watch` (run.log, progress lines, end-of-run report and history), `view` and
`live` (what is shown, the rich live view), `report`, `report_plots` and
`timetable_report` (report.html, its plots, CSV), `history` (the SQLite run history),
`review_cli` (`islands report`, `history`, `export`); the Backend
protocol and the in-thread backend (`backend`), island processes on this machine
(`local`), and the command line (`cli`, console script `islands`, also
`python -m coordinator`).

Does not cover: evolution, the island worker loop and the messages (`islands`),
measuring memory and shared arrays (`memory`). Imports point `coordinator -> islands ->
memory`, never back.
"""
