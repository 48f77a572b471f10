"""The resolved configuration of one run: `RunConfig`, TOML loading and writing.

Covers: every setting of `islands run`, resolved as defaults < TOML file (`--config
FILE.toml`) < command-line flags, validation of TOML keys and types (unknown keys and
wrong types raise `islands.errors.InputError` naming the file and the key), and
`to_toml()` that every run writes to `RUN_DIR/config.toml`.

Does not cover: choosing island count, population and chunk size from the memory
budget (`coordinator.autoconfig`), parsing the command line (`coordinator.cli`) or
parsing sizes (`memory.budget.parse_size`).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from islands.errors import InputError, check_seed, read_user_text
from islands.topology import TOPOLOGIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

BACKENDS = ("local", "ray")
THRESHOLD_KEYS = ("elevated", "high", "critical", "emergency")


@dataclass
class RunConfig:
    """Everything one run needs; `None` means "decide automatically" or "no limit"."""

    problem: str | None = None
    islands: int | None = None
    population: int | None = None
    generations: int | None = None
    time_limit: float | None = None
    evaluations: int | None = None
    target: float | None = None
    stagnation: int | None = None
    memory_budget: str | None = None
    seed: int = 0
    topology: str = "ring"
    migration_interval: int = 5
    migrants: int = 2
    sync: bool = False
    streaming: bool = True
    backend: str = "local"
    address: str | None = None  # the Ray cluster for --backend ray (None: start a local one)
    out: str | None = None
    json: bool = False
    quiet: bool = False
    history: str | None = None  # run-history SQLite file (None: the default under the user's data dir)
    record_history: bool = True
    progress_interval: float = 10.0  # seconds between plain progress lines (no live view)
    overwrite: bool = False  # a new run may replace a stopped or finished one in `out`
    workdir: str | None = None  # where the run started: relative paths resolve there on resume
    monitor_interval: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)
    checkpoint_interval: float = 10.0  # seconds between periodic checkpoints
    chunk_size: int | None = None
    min_population: int = 4
    sync_timeout: float = 60.0
    cache_entries: int = 10_000  # fitness-cache entries per island

    def to_toml(self) -> str:
        """The config as TOML text (keys that are `None` are left out: TOML has no null)."""
        data = {
            key: value
            for key, value in dataclasses.asdict(self).items()
            if value is not None and not (key == "thresholds" and not value)
        }
        return tomli_w.dumps(data)

    def validate(self, source: str = "configuration") -> RunConfig:
        """Check value ranges; raise InputError naming the bad setting."""
        positive_ints = ("islands", "population", "generations", "evaluations", "stagnation",
                         "migration_interval", "chunk_size")
        for name in positive_ints:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"{source}: {name.replace('_', '-')} must be at least 1, got {value}")
        if self.cache_entries < 0:
            raise InputError(f"{source}: cache-entries must be 0 or more, got {self.cache_entries}")
        if self.migrants < 0:
            raise InputError(f"{source}: migrants must be 0 or more, got {self.migrants}")
        check_seed(self.seed, f"{source}: seed")
        if self.min_population < 2:
            raise InputError(f"{source}: min-population must be at least 2, got {self.min_population}")
        for name in ("time_limit", "monitor_interval", "sync_timeout", "checkpoint_interval",
                     "progress_interval"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"{source}: {name.replace('_', '-')} must be positive, got {value}")
        if self.topology not in TOPOLOGIES:
            raise InputError(
                f"{source}: unknown topology {self.topology!r} (choose from {', '.join(TOPOLOGIES)})"
            )
        if self.backend not in BACKENDS:
            raise InputError(
                f"{source}: unknown backend {self.backend!r} (choose from {', '.join(BACKENDS)})"
            )
        for key in self.thresholds:
            if key not in THRESHOLD_KEYS:
                raise InputError(
                    f"{source}: unknown threshold {key!r} (known: {', '.join(THRESHOLD_KEYS)})"
                )
        return self


def _field_types() -> dict[str, tuple[type, ...]]:
    """Accepted TOML value types per field (ints are fine where floats are expected)."""
    accepted: dict[str, tuple[type, ...]] = {}
    for item in fields(RunConfig):
        annotation = str(item.type)
        if annotation.startswith("dict"):
            accepted[item.name] = (dict,)
        elif "bool" in annotation:
            accepted[item.name] = (bool,)
        elif "float" in annotation:
            accepted[item.name] = (int, float)
        elif "int" in annotation:
            accepted[item.name] = (int,)
        else:
            accepted[item.name] = (str,) if item.name != "memory_budget" else (str, int)
    return accepted


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file into RunConfig field values; one-line InputError on any problem.

    Keys may use dashes or underscores (`time-limit` = `time_limit`).
    """
    path = Path(path)
    text = read_user_text(path, "config file")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = _toml_error_line(str(error))
        message = str(error).split(" (at line")[0]
        raise InputError(f"invalid TOML: {message}", path=path, line=line) from None
    return check_values(raw, source=str(path))


def _toml_error_line(message: str) -> int | None:
    marker = "(at line "
    if marker not in message:
        return None
    try:
        return int(message.split(marker, 1)[1].split(",")[0].rstrip(")"))
    except ValueError:
        return None


def check_values(raw: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Normalise keys and check types of config values from `source`."""
    accepted = _field_types()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in accepted:
            raise InputError(
                f"{source}: unknown key {key!r} (known keys: {', '.join(sorted(accepted))})"
            )
        types = accepted[name]
        # bool is an int subclass: `islands = true` must not pass as 1.
        if isinstance(value, bool) and bool not in types:
            raise InputError(f"{source}: key {key!r} must be {_type_words(types)}, got {value!r}")
        if not isinstance(value, types):
            raise InputError(f"{source}: key {key!r} must be {_type_words(types)}, got {value!r}")
        if name == "thresholds":
            for level, fraction in value.items():
                if level not in THRESHOLD_KEYS:
                    raise InputError(f"{source}: unknown threshold {level!r} in [thresholds]")
                if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
                    raise InputError(f"{source}: threshold {level!r} must be a number")
            value = {level: float(fraction) for level, fraction in value.items()}
        if float in types and int in types and not isinstance(value, bool):
            value = float(value)
        if name == "memory_budget":
            value = str(value)
        values[name] = value
    return values


def _type_words(types: tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "a table"}
    if float in types:
        return "a number"
    return " or ".join(names[t] for t in types)


def resolve_config(
    *, toml_path: str | Path | None = None, flags: Mapping[str, Any] | None = None
) -> RunConfig:
    """Defaults < TOML file < flags (flags that are `None` were not given)."""
    values: dict[str, Any] = {}
    if toml_path is not None:
        values.update(load_toml(toml_path))
    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = value
    config = RunConfig(**values)
    return config.validate(str(toml_path) if toml_path is not None else "configuration")
