"""Helpers for component tests that drive the coordinator's parts on the in-thread backend.

`FakeClock` (a clock tests advance by hand) and `Gated` with its `Gate`: a sphere whose
first evaluation after the gate is armed blocks until it is released, so an island in a
thread can be made to hang on demand (the `gate` fixture in conftest.py registers it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

WAIT_S = 30.0  # a guard against hangs only: on a busy machine a thread may be slow to run


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Gate:
    armed: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    spec: str = ""


GATES: dict[str, Gate] = {}


class Gated:
    """Sphere; the first evaluate after `GATES[key].armed` blocks until `release` (once per key)."""

    def __init__(self, key: str, dim: int = 8) -> None:
        self.key = key
        self.genome_shape = (dim,)
        self.genome_dtype = np.float64
        self.individual_bytes = 8 * dim

    def random(self, rng, n):
        return rng.uniform(-5.0, 5.0, (n, *self.genome_shape))

    def evaluate(self, genomes):
        gate = GATES[self.key]
        if gate.armed.is_set() and not gate.entered.is_set():
            gate.entered.set()
            gate.release.wait(WAIT_S)
        return np.sum(np.asarray(genomes) ** 2, axis=1)
