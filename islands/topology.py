"""Migration topologies: who sends emigrants to whom, at which generation.

Covers: `TOPOLOGIES`, `Topology` (targets and sources of island i at generation g, like
pagmo's `get_connections`), `torus_grid`. The one place topologies are defined: the
coordinator's router asks for targets, an island in lockstep (sync) mode asks for its
sources, and config validation checks names against `TOPOLOGIES`.

Does not cover: when islands migrate (`islands.migration.should_migrate`), the migrant
bytes (`islands.migration`), moving them (the coordinator's router).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from islands.errors import InputError

TOPOLOGIES = ("ring", "full", "random", "torus")


def torus_grid(n_islands: int) -> tuple[int, int]:
    """(rows, columns) of the near-square grid: `ceil(sqrt(n))` columns, the last row may be short."""
    columns = math.ceil(math.sqrt(n_islands))
    return math.ceil(n_islands / columns), columns


def _torus(island: int, n_islands: int) -> list[int]:
    rows, columns = torus_grid(n_islands)
    row, column = divmod(island, columns)
    row_length = min(columns, n_islands - row * columns)
    right = row * columns + (column + 1) % row_length
    # Down: the next row that has this column, wrapping to the top (the last row may be short).
    column_height = rows if column < n_islands - (rows - 1) * columns else rows - 1
    down = ((row + 1) % column_height) * columns + column
    return [j for j in dict.fromkeys([right, down]) if j != island]


@dataclass(frozen=True)
class Topology:
    """A named topology over `n_islands` islands; `seed` drives the random one.

    ring: the next island; full: all others; random: one other, drawn from
    (seed, generation, island) so every run with that seed repeats it; torus: the right
    and down neighbours on a wrap-around near-square grid (`torus_grid`).
    """

    name: str
    n_islands: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in TOPOLOGIES:
            raise InputError(
                f"unknown topology {self.name!r}; valid topologies: {', '.join(TOPOLOGIES)}")
        if self.n_islands < 1:
            raise InputError(f"a topology needs at least 1 island, got {self.n_islands}")

    def targets(self, island: int, generation: int = 0) -> list[int]:
        """The islands `island` sends its emigrants of `generation` to; never itself."""
        n = self.n_islands
        if not 0 <= island < n:
            raise InputError(f"island {island} is not one of {n} islands")
        if n == 1:
            return []
        if self.name == "ring":
            return [(island + 1) % n]
        if self.name == "full":
            return [j for j in range(n) if j != island]
        if self.name == "random":
            rng = np.random.default_rng(
                [int(self.seed) & 0xFFFFFFFFFFFFFFFF, int(generation), int(island)])
            draw = int(rng.integers(0, n - 1))
            return [draw if draw < island else draw + 1]
        return _torus(island, n)

    def sources(self, island: int, generation: int = 0) -> list[int]:
        """The islands that send to `island` at `generation`, in ascending order."""
        return [s for s in range(self.n_islands)
                if s != island and island in self.targets(s, generation)]


def neighbours(topology: str, island: int, n_islands: int, *, generation: int = 0,
               seed: int = 0) -> list[int]:
    """`Topology(topology, n_islands, seed).targets(island, generation)` in one call."""
    if n_islands < 1:
        raise InputError(f"island {island} is not one of {n_islands} islands")
    return Topology(topology, n_islands, seed).targets(island, generation)


__all__ = ["TOPOLOGIES", "Topology", "neighbours", "torus_grid"]
