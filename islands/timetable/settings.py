"""How the timetable search is tuned: `SearchSettings` and the `CoolingSchedule` of `improve`.

Covers: the tuning parameters of a `timetable:` problem spec (names, defaults, types and
their one-line `InputError`s) as one frozen `SearchSettings`, and the annealing
temperature that successive `improve()` calls of one island share (`CoolingSchedule`:
pacing by `anneal_s` or by the run's time budget, reheating after each cycle).

Does not cover: the search itself (`islands.timetable.problem`, which owns one of each,
and the compiled loops in `islands.timetable.kernels`) or the instance
(`islands.timetable.model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from islands.errors import InputError

# Seconds of improve() calls one cooling cycle lasts when the run sets no time budget.
DEFAULT_ANNEAL_S = 30.0
# Temperature at and below which a trajectory goes on from a better immigrant.
DEFAULT_ADOPT_BELOW = 0.1
# First call of a cycle-continuing schedule: it cools by this share of the cycle.
FIRST_CALL_SHARE = 0.01
# Share of a cycle an island's search may go without a better best before it reheats.
DEFAULT_REHEAT_AFTER = 0.0


def _bounded(name: str, value: object, lowest: float, highest: float, bounds: str) -> float:
    """`value` as a float in [lowest, highest], or one `InputError` line naming `name`."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not lowest <= number <= highest:  # nan too
        raise InputError(f"timetable: {name} must be a number {bounds}, got {value!r}")
    return number


@dataclass(frozen=True)
class Neighbourhoods:
    """Shares of the annealing's iterations that try a stronger move instead of a random
    move or swap (spec parameters of these names; `kernels.anneal`):

    - course_room_prob: all lectures of a course into one room (room stability);
    - kempe_ls_prob: a Kempe-chain swap of two periods;
    - mwd_prob: a lecture of a course short of its minimum working days to a day it does
      not use;
    - compact_prob: a lecture isolated in its curriculum next to another of its lectures.

    Each >= 0, their sum <= 1; converted to float (one `InputError` line otherwise).
    """

    course_room_prob: float = 0.0
    kempe_ls_prob: float = 0.0
    mwd_prob: float = 0.0
    compact_prob: float = 0.0

    def __post_init__(self) -> None:
        names = ("course_room_prob", "kempe_ls_prob", "mwd_prob", "compact_prob")
        shares = [float(getattr(self, name)) for name in names]
        if min(shares) < 0 or sum(shares) > 1:
            raise InputError(
                "timetable: course_room_prob, kempe_ls_prob, mwd_prob and compact_prob must be"
                " >= 0 with a sum <= 1"
            )
        for name, value in zip(names, shares, strict=True):
            object.__setattr__(self, name, value)


# The plain numeric parameters and their types (adopt_below and reheat_after check
# themselves: their messages say the range too).
_NUMBER_FIELDS: dict[str, type] = {
    "ls_moves": int, "t_start": float, "t_end": float, "ls_hard_weight": float,
    "period_only": float, "room_only": float, "mutate_changes": int, "kempe_prob": float,
    "population": int, "anneal_s": float, "repair_moves": int, "crossover_share": float,
}


@dataclass(frozen=True)
class SearchSettings:
    """The tuning parameters of a `timetable:` spec (all spec parameters of that name).

    - ls_moves: move evaluations per genome per `improve` call (effort of the local search).
    - t_start, t_end: annealing temperatures.
    - anneal_s: how `improve()` cools (see `CoolingSchedule`). 0: every call anneals from
      t_start to t_end. > 0: the calls of one island form one long annealing, a cycle
      lasting anneal_s seconds of calls. None (unset): 30 s, or the island's whole
      remaining time when the run has a time limit.
    - ls_hard_weight: weight of a hard violation inside the annealing (the reported
      fitness always uses the problem's HARD_WEIGHT).
    - period_only, room_only: shares of candidate moves that keep the room / the period.
    - mutate_changes, kempe_prob: size of a mutation and the share of Kempe-chain moves.
    - neighbourhoods: how often the annealing tries its stronger moves (`Neighbourhoods`).
    - population: the preferred population per island. Small (2): each member is one
      annealing trajectory, and the island's moves are shared among them.
    - crossover_share: share of courses a child takes from its second parent (the rest
      from the first; a timetable annealed to a low cost survives a few foreign courses
      better than a half-and-half mix, which the repair and a cool search cannot mend).
    - adopt_below: temperature at and below which a trajectory restarts from its member's
      genome when that is better than anything the trajectory found (an immigrant);
      hotter trajectories go on where they stopped, so islands search independently
      until they cool (inf: adopt at every migration; 0: never).
    - reheat_after: share of a cooling cycle an island's own search may go without
      finding a better best; then each member restarts from its best genome at twice the
      temperature of the last improvement, cooling over the cycle's time left (0, the
      default: never). Why: on some instances (comp05) the last third of a cycle finds
      nothing; off by default because 0.1 measured no better (docs/timetabling.md).
    - repair_moves: effort of the hard-constraints-only annealing that `random()` runs on
      constructed timetables that are not feasible (0: none).

    Values are converted to their field's type (int or float) on construction; a
    value out of range raises one `InputError` line.
    """

    ls_moves: int = 200_000
    t_start: float = 3.0
    t_end: float = 0.08
    ls_hard_weight: float = 40.0
    period_only: float = 0.35
    room_only: float = 0.1
    mutate_changes: int = 3
    kempe_prob: float = 0.3
    population: int = 1
    anneal_s: float | None = None
    repair_moves: int = 300_000
    crossover_share: float = 0.2
    adopt_below: float = DEFAULT_ADOPT_BELOW
    reheat_after: float = DEFAULT_REHEAT_AFTER
    neighbourhoods: Neighbourhoods = Neighbourhoods()

    def __post_init__(self) -> None:
        self._convert_numbers()
        # Range checks in this order, so a spec with several faults reports the same one
        # as it always has.
        if self.ls_moves < 0 or self.t_start <= 0 or self.t_end <= 0 or self.population < 1:
            raise InputError(
                "timetable: ls_moves must be >= 0, t_start and t_end > 0, population >= 1"
            )
        if not 0 <= self.period_only + self.room_only <= 1:
            raise InputError("timetable: period_only + room_only must lie in [0, 1]")
        if self.anneal_s is not None and self.anneal_s < 0:
            raise InputError("timetable: anneal_s must be >= 0")
        if not 0 <= self.crossover_share <= 1:
            raise InputError("timetable: crossover_share must lie in [0, 1]")
        object.__setattr__(self, "adopt_below", _bounded(
            "adopt_below", self.adopt_below, 0.0, float("inf"), ">= 0 (inf: always)"))
        object.__setattr__(self, "reheat_after", _bounded(
            "reheat_after", self.reheat_after, 0.0, 1.0, "in [0, 1]"))

    def _convert_numbers(self) -> None:
        """Each plain numeric parameter as its type, or one `InputError` line naming the
        first that is not a number."""
        for name, kind in _NUMBER_FIELDS.items():
            value = getattr(self, name)
            if value is None and name == "anneal_s":
                continue
            try:
                object.__setattr__(self, name, kind(value))
            except (TypeError, ValueError):
                what = "a whole number" if kind is int else "a number"
                raise InputError(f"timetable: {name} must be {what}, got {value!r}") from None


class CoolingSchedule:
    """The temperature successive `improve()` calls of one island continue from.

    Each call anneals from `temperature` down to a `low` that covers the share of the
    cycle the previous call took (the first call: 1 %); the next call starts at that
    `low`. Once a call reaches t_end, the schedule reheats to half of t_start and cools
    again. A cycle lasts `cycle_s` seconds of calls: 30 s unless the settings name it,
    or most of the island's remaining time once `set_time_budget` is called. `reheat()`
    starts a new stretch of the cycle from a given temperature, cooling to t_end over the
    cycle's time left (`anneal_s`: the current stretch's seconds).
    With `anneal_s == 0` there is no schedule (`active` is False).

    Why: short calls from a hot start would undo what the last calls found; continuing
    the schedule lets the population anneal together.
    """

    def __init__(self, t_start: float, t_end: float, anneal_s: float | None) -> None:
        self.t_start = float(t_start)
        self.t_end = float(t_end)
        self.anneal_s_given = anneal_s is not None
        self.anneal_s = DEFAULT_ANNEAL_S if anneal_s is None else float(anneal_s)
        self.temperature = self.t_start
        self.cycle_start_temperature = self.t_start
        self.last_call_share = FIRST_CALL_SHARE
        self.deadline: float | None = None  # time.monotonic() the time budget ends at
        self.cycle_s = self.anneal_s
        self.cycle_elapsed_s = 0.0  # seconds of calls in this cycle so far

    @property
    def active(self) -> bool:
        return self.anneal_s > 0

    def set_time_budget(self, seconds: float) -> None:
        """Pace one cooling over the island's remaining time, unless anneal_s was given."""
        if not self.anneal_s_given and seconds > 0:
            self.anneal_s = self.cycle_s = max(1.0, 0.98 * float(seconds))
            self.deadline = time.monotonic() + float(seconds)

    def next_range(self) -> tuple[float, float]:
        """(high, low) temperatures of the next call."""
        if self.deadline is not None:
            # The first call comes after the construction: pace the cooling from now,
            # so it still ends cold when the time is up.
            self.anneal_s = self.cycle_s = max(1.0, 0.98 * (self.deadline - time.monotonic()))
            self.deadline = None
        high = self.temperature
        share = self.last_call_share
        low = max(high * (self.t_end / self.cycle_start_temperature) ** share, self.t_end)
        return high, low

    def advance(self, low: float, seconds: float) -> None:
        """A call that cooled down to `low` took `seconds`: move the schedule on."""
        self.last_call_share = min(seconds / self.anneal_s, 1.0)
        self.cycle_elapsed_s += seconds
        if low <= self.t_end * 1.0001:
            self.cycle_start_temperature = self.t_start / 2  # reheat
            self.temperature = self.cycle_start_temperature
            self.anneal_s = self.cycle_s
            self.cycle_elapsed_s = 0.0
        else:
            self.temperature = low

    @property
    def left_s(self) -> float:
        """Seconds of calls left in this cycle."""
        return max(self.cycle_s - self.cycle_elapsed_s, 0.0)

    def reheat(self, temperature: float) -> None:
        """Go on from `temperature` (at most t_start), cooling to t_end in the cycle's time left."""
        last_call_s = self.last_call_share * self.anneal_s
        self.temperature = self.cycle_start_temperature = min(float(temperature), self.t_start)
        self.anneal_s = max(self.left_s, 1e-3)
        self.last_call_share = min(last_call_s / self.anneal_s, 1.0)
