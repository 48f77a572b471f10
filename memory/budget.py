"""How much RAM the run may use: size parsing, machine/cgroup limits, the global budget, slices.

Covers: parsing user sizes (`512M`, `8GiB`), reading physical RAM and cgroup v1/v2 limits,
the default reserve, the global budget `(min(physical, cgroup) - reserve) * fraction`, the
per-island slice, short byte formatting for log lines, and `NamedIntEnum` (an IntEnum that
prints as its lowercase name, the base of `PressureLevel` and of enums outside this package).

Does not cover: measuring what processes use (`memory.probe`), turning measurements into
pressure levels (`memory.monitor`), or acting on islands (the coordinator's policy).

Units: every unit is binary (1024-based). `G`, `GB` and `GiB` all mean 2**30 bytes, because
people write "8G" for "8 GiB" of RAM and a budget a few percent larger than meant is the
dangerous direction. `format_bytes` prints the same binary units with short labels (MB, GB).
"""

from __future__ import annotations

import logging
import math
import re
from enum import IntEnum
from pathlib import Path

import psutil

_LOGGER = logging.getLogger("islands.memory")

GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10

# cgroup v1 reports "no limit" as a page-rounded huge number (9223372036854771712 usually);
# anything at or above 2**60 bytes (1 EiB) is treated as unlimited.
_CGROUP_V1_UNLIMITED = 1 << 60

_UNIT_FACTORS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)
_SIZE_HINT = "expected a number with an optional unit K, M, G or T, e.g. 512M or 8GiB"


class BudgetError(ValueError):
    """A bad size, budget, reserve or fraction: the message is one line naming the problem."""


def parse_size(text: str | int, *, allow_zero: bool = False) -> int:
    """Parse a size such as `512M`, `8G`, `8GiB`, `1.5G`, `700MB`, `100k`, `"1048576"` or an int.

    Units are binary: K/KB/KiB = 1024, M = 1024**2, G = 1024**3, T = 1024**4 (case-insensitive).
    A size must be positive unless `allow_zero`. Raises BudgetError with a one-line message.
    """
    if isinstance(text, bool):
        raise BudgetError(f"invalid size {text!r}: {_SIZE_HINT}")
    if isinstance(text, int):
        value = text
    elif isinstance(text, str):
        match = _SIZE_RE.match(text)
        if match is None:
            if text.strip().startswith("-"):
                raise BudgetError(f"invalid size '{text}': a size cannot be negative")
            raise BudgetError(f"invalid size '{text}': {_SIZE_HINT}")
        number, unit, _suffix = match.groups()
        value = math.floor(float(number) * _UNIT_FACTORS[unit.upper()])
    else:
        raise BudgetError(f"invalid size {text!r}: {_SIZE_HINT}")
    if value < 0:
        raise BudgetError(f"invalid size '{text}': a size cannot be negative")
    if value == 0 and not allow_zero:
        raise BudgetError(f"invalid size '{text}': a size must be greater than zero")
    return value


def format_bytes(n: int) -> str:
    """Short binary size for log lines: `512B`, `12KB`, `667MB`, `2.1GB`, `1.5TB`."""
    sign = "-" if n < 0 else ""
    n = abs(int(n))
    if n >= 1 << 40:
        return f"{sign}{n / (1 << 40):.1f}TB"
    if n >= GIB:
        return f"{sign}{n / GIB:.1f}GB"
    if n >= MIB:
        return f"{sign}{round(n / MIB)}MB"
    if n >= KIB:
        return f"{sign}{round(n / KIB)}KB"
    return f"{sign}{n}B"


def physical_memory_bytes() -> int:
    """Total physical RAM of the host (psutil)."""
    return int(psutil.virtual_memory().total)


def _read_limit(path: Path) -> int | None:
    """A cgroup limit file's value in bytes, or None for "max", huge values and missing files."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    if value <= 0 or value >= _CGROUP_V1_UNLIMITED:
        return None
    return value


def _own_cgroup_paths(proc_cgroup: str | Path) -> tuple[str | None, str | None]:
    """(v2 path, v1 memory-controller path) of this process from /proc/self/cgroup."""
    v2_path = v1_path = None
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hierarchy, controllers, path = parts
        if controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    return v2_path, v1_path


def _dirs_from_root_to(base: Path, cgroup_path: str | None) -> list[Path]:
    """`base` and each directory from it down to `base/cgroup_path` that exists.

    A limit set on any ancestor cgroup applies to this process too, so all are read.
    """
    dirs = [base]
    if cgroup_path:
        current = base
        for part in Path(cgroup_path.lstrip("/")).parts:
            current = current / part
            if current.is_dir():
                dirs.append(current)
    return dirs


def cgroup_limit_bytes(
    root: str | Path = "/sys/fs/cgroup", *, proc_cgroup: str | Path = "/proc/self/cgroup"
) -> int | None:
    """The tightest cgroup memory limit on this process in bytes, or None when unlimited.

    cgroup v2: `memory.max` and `memory.high` ("max" = none) in `root` and in the process's
    own cgroup directory (from `proc_cgroup`) and its ancestors under `root`.
    cgroup v1: `memory/memory.limit_in_bytes` likewise (huge values = none).
    `root` and `proc_cgroup` exist so tests can feed fake trees.
    """
    root = Path(root)
    v2_path, v1_path = _own_cgroup_paths(proc_cgroup)
    limits: list[int] = []
    for directory in _dirs_from_root_to(root, v2_path):
        for name in ("memory.max", "memory.high"):
            value = _read_limit(directory / name)
            if value is not None:
                limits.append(value)
    v1_root = root / "memory"
    if v1_root.is_dir():
        for directory in _dirs_from_root_to(v1_root, v1_path):
            value = _read_limit(directory / "memory.limit_in_bytes")
            if value is not None:
                limits.append(value)
    return min(limits) if limits else None


def total_memory_bytes(cgroup_root: str | Path = "/sys/fs/cgroup") -> int:
    """RAM this process may use: min(physical RAM, cgroup limit)."""
    physical = physical_memory_bytes()
    limit = cgroup_limit_bytes(cgroup_root)
    return physical if limit is None else min(physical, limit)


def default_reserve_bytes(total_bytes: int) -> int:
    """RAM left to the OS and other programs: 2 GiB, but at most 10 % of total on small machines."""
    return min(2 * GIB, total_bytes // 10)


def compute_budget(
    explicit: int | str | None = None,
    *,
    total_bytes: int | None = None,
    reserve_bytes: int | None = None,
    fraction: float = 0.7,
) -> int:
    """The global memory budget in bytes.

    An explicit size (`--memory-budget`) wins, but never exceeds `total - reserve`: what
    the machine and its cgroup can give (capped with one warning line). Otherwise
    `(total - reserve) * fraction` with total = min(physical, cgroup limit) and reserve =
    `default_reserve_bytes(total)`.
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise BudgetError(f"invalid memory fraction {fraction!r}: must be in (0, 1], e.g. 0.7")
    if total_bytes is None:
        total_bytes = total_memory_bytes()
    if explicit is not None:
        try:
            asked = parse_size(explicit)
        except BudgetError as error:
            raise BudgetError(f"memory budget: {error}") from None
        reserve = default_reserve_bytes(total_bytes) if reserve_bytes is None else reserve_bytes
        ceiling = max(total_bytes - reserve, 1)
        if asked > ceiling:
            _LOGGER.warning(
                "[MEMORY] Memory budget %s is more than this machine and its cgroup can give "
                "(%s, less a reserve of %s): using %s", format_bytes(asked),
                format_bytes(total_bytes), format_bytes(reserve), format_bytes(ceiling))
            return ceiling
        return asked
    if total_bytes <= 0:
        raise BudgetError(f"invalid total memory {total_bytes}: must be positive")
    if reserve_bytes is None:
        reserve_bytes = default_reserve_bytes(total_bytes)
    if reserve_bytes < 0:
        raise BudgetError(f"invalid memory reserve {reserve_bytes}: cannot be negative")
    budget = int((total_bytes - reserve_bytes) * fraction)
    if budget <= 0:
        raise BudgetError(
            f"memory reserve {format_bytes(reserve_bytes)} leaves no budget out of "
            f"{format_bytes(total_bytes)} total"
        )
    return budget


def island_slice_bytes(
    budget_bytes: int, n_islands: int, *, coordinator_bytes: int, shared_bytes: int
) -> int:
    """Bytes each island may use: (budget - coordinator - shared data) // n_islands."""
    if n_islands < 1:
        raise BudgetError(f"invalid island count {n_islands}: need at least 1 island")
    if coordinator_bytes < 0 or shared_bytes < 0:
        raise BudgetError(
            f"invalid coordinator ({coordinator_bytes}) or shared data ({shared_bytes}) "
            "size: cannot be negative"
        )
    slice_bytes = (budget_bytes - coordinator_bytes - shared_bytes) // n_islands
    if slice_bytes <= 0:
        raise BudgetError(
            f"memory budget {format_bytes(budget_bytes)} leaves nothing for {n_islands} "
            f"island{'s' if n_islands != 1 else ''} after the coordinator "
            f"({format_bytes(coordinator_bytes)}) and shared data ({format_bytes(shared_bytes)})"
        )
    return slice_bytes


class NamedIntEnum(IntEnum):
    """An IntEnum whose str() and f-string form is its lowercase name (log lines, JSON)."""

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


__all__ = [
    "BudgetError",
    "NamedIntEnum",
    "cgroup_limit_bytes",
    "compute_budget",
    "default_reserve_bytes",
    "format_bytes",
    "island_slice_bytes",
    "parse_size",
    "physical_memory_bytes",
    "total_memory_bytes",
]
