"""Child processes for the probe benchmarks: started from code, told when to stop.

Covers: `start_ready(argvs)` (one `python -c CODE ARGS...` child per argv list; returns once
each has printed "ready") and `stop_all(children)` (closes their stdin, which their code
reads as "stop", and waits for them). The children's code, and what they hold, belong to
the benchmarks that use them (benchmarks/probe_cost.py, benchmarks/probe_accuracy.py).

Does not cover: islands runs (benchmarks/fault_tools.py launches real `islands` commands).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def start_ready(argvs: Sequence[Sequence[object]]) -> list[subprocess.Popen]:
    """Start `python -c CODE ARGS...` per argv (`[CODE, *ARGS]`); wait for each one's "ready"."""
    children = [
        subprocess.Popen([sys.executable, "-c", *(str(part) for part in argv)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            stop_all(children)
            raise RuntimeError(f"child {child.pid} failed to start")
    return children


def stop_all(children: Sequence[subprocess.Popen]) -> None:
    """Close every child's stdin (their signal to stop), then wait for each."""
    for child in children:
        if child.stdin is not None and not child.stdin.closed:
            child.stdin.close()
    for child in children:
        child.wait(30)
