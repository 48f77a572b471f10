"""The typed configuration model of one run: its groups, types, defaults and help texts.

Covers: `RunConfig` and its tables `StopSettings` (`[stop]`), `SearchSettings`
(`[search]`: population, genetic operators, migration), `MemorySettings` (`[memory]`)
and `OutputSettings` (`[output]`), declared as msgspec Structs (types checked by msgspec
on load, unknown keys refused); every field's help text (`help_of`); the flat names
(`FLAT_NAMES`: the flag and old top-level TOML key of each field, `time_limit` for
`[stop] time_limit`) and their inverse; the range checks (`check_ranges`).

Does not cover: reading and writing TOML, "did you mean" and merging defaults < file <
flags (`coordinator.config`), turning the model into command-line flags
(`coordinator.flags`), choosing islands, population and budget (`coordinator.autoconfig`).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from islands.errors import InputError, check_seed
from islands.topology import TOPOLOGIES

BACKENDS = ("local", "ray")
START_METHODS = ("fork", "forkserver", "spawn")
THRESHOLD_KEYS = ("elevated", "high", "critical", "emergency")


def doc(text: str) -> Meta:
    return Meta(description=text)


class Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A TOML table of the run config (unknown keys are errors)."""


class StopSettings(Table):
    generations: Annotated[int | None, doc("stop after G generations")] = None
    time_limit: Annotated[float | None, doc("stop after this many seconds of search")] = None
    evaluations: Annotated[int | None, doc("stop after E evaluations over all islands")] = None
    target: Annotated[float | None, doc("stop at this fitness or better")] = None
    stagnation: Annotated[int | None, doc("stop after G generations without improvement")] = None


class SearchSettings(Table):
    population: Annotated[int | None, doc("population per island (default: from the budget)")] = None
    tournament_size: Annotated[int, doc("entrants per selection tournament")] = 2
    crossover_rate: Annotated[float, doc("share of children made by crossover (0 to 1)")] = 0.9
    elite_count: Annotated[int, doc("best members kept unchanged each generation")] = 1
    topology: Annotated[str, doc("migration topology: " + ", ".join(TOPOLOGIES))] = "ring"
    migration_interval: Annotated[int, doc("generations between migrations")] = 5
    migrants: Annotated[int, doc("elites sent per migration")] = 2
    migration_period: Annotated[float, doc(
        "least seconds between two migrations of an island, without --sync (0: every "
        "interval); cheap problems run thousands of generations a second")] = 0.05
    sync: Annotated[bool, doc("migrate in lockstep: a run is reproducible from its seed")] = False
    sync_timeout: Annotated[float, doc("seconds a --sync island waits for its sources")] = 60.0


class MemorySettings(Table):
    budget: Annotated[str | int | None, doc(
        "global RAM budget, e.g. 700M, 8G, 8GiB (default: from available memory and cgroup)")] = None
    streaming: Annotated[bool, doc(
        "evaluate in bounded chunks (--no-streaming: whole generations, memory-hungry)")] = True
    chunk_size: Annotated[int | None, doc("phenotypes alive at once (default: from the slice, at most 32 MB of them)")] = None
    min_population: Annotated[int, doc("shrinking under pressure stops here")] = 4
    cache_entries: Annotated[int, doc("fitness-cache entries per island (0: off)")] = 10_000
    monitor_interval: Annotated[float, doc("seconds between full memory readings")] = 0.5
    thresholds: Annotated[dict[str, float], doc(
        "pressure levels as fractions of the budget: " + ", ".join(THRESHOLD_KEYS))] = {}


class OutputSettings(Table):
    json: Annotated[bool, doc("print the summary as one JSON object on stdout")] = False
    quiet: Annotated[bool, doc("warnings and errors only")] = False
    progress_interval: Annotated[float, doc("seconds between plain progress lines")] = 10.0
    history: Annotated[str | None, doc(
        "run-history SQLite file (default: under the user's data directory)")] = None
    record_history: Annotated[bool, doc("record the run in the run history")] = True


class RunConfig(Table):
    """Everything one run needs; `None` means "decide automatically" or "no limit"."""

    problem: Annotated[str | None, doc("problem spec, e.g. rastrigin:dim=50 or term.ctt")] = None
    islands: Annotated[int | None, doc("island processes (default: usable cores)")] = None
    seed: Annotated[int, doc("random seed of the run")] = 0
    backend: Annotated[str, doc("where islands run: " + ", ".join(BACKENDS))] = "local"
    address: Annotated[str | None, doc(
        "the Ray cluster for --backend ray, auto or HOST:PORT (default: a local Ray)")] = None
    start_method: Annotated[str, doc(
        "how local island processes start: fork (they share the coordinator's loaded "
        "modules: about half the memory), spawn (fresh interpreters), forkserver")] = "fork"
    out: Annotated[str | None, doc("run directory (default: runs/<problem>-<time>)")] = None
    overwrite: Annotated[bool, doc(
        "start a new run in a RUN_DIR holding a stopped or finished one (its files are "
        "replaced; refused without this flag)")] = False
    checkpoint_interval: Annotated[float, doc("seconds between periodic checkpoints")] = 10.0
    workdir: Annotated[str | None, doc(
        "where the run started: relative paths resolve there on resume")] = None
    stop: StopSettings = msgspec.field(default_factory=StopSettings)
    search: SearchSettings = msgspec.field(default_factory=SearchSettings)
    memory: MemorySettings = msgspec.field(default_factory=MemorySettings)
    output: OutputSettings = msgspec.field(default_factory=OutputSettings)


GROUPS: dict[str, type[Table]] = {"stop": StopSettings, "search": SearchSettings,
                                  "memory": MemorySettings, "output": OutputSettings}
RENAMED = {("memory", "budget"): "memory_budget"}  # flat names that are not the field name


def _flat_names() -> dict[str, tuple[str | None, str]]:
    names: dict[str, tuple[str | None, str]] = {}
    for info in msgspec.structs.fields(RunConfig):
        if info.name not in GROUPS:
            names[info.name] = (None, info.name)
    for group, table in GROUPS.items():
        for info in msgspec.structs.fields(table):
            names[RENAMED.get((group, info.name), info.name)] = (group, info.name)
    return names


FLAT_NAMES = _flat_names()  # flat name (flag, old top-level key) -> (table or None, field)


def help_of(flat_name: str) -> str:
    """The help text of a field, from its declaration."""
    group, name = FLAT_NAMES[flat_name]
    table = RunConfig if group is None else GROUPS[group]
    info = next(i for i in msgspec.structs.fields(table) if i.name == name)
    metadata = getattr(info.type, "__metadata__", ())
    return next((m.description for m in metadata if isinstance(m, Meta) and m.description), "")


def default_of(flat_name: str) -> Any:
    group, name = FLAT_NAMES[flat_name]
    table = RunConfig() if group is None else GROUPS[group]()
    return getattr(table, name)


def get_value(config: RunConfig, flat_name: str) -> Any:
    group, name = FLAT_NAMES[flat_name]
    return getattr(config if group is None else getattr(config, group), name)


def check_ranges(config: RunConfig, source: str) -> None:
    """InputError naming the first setting out of its range."""

    def bad(name: str, rule: str, value: Any) -> InputError:
        return InputError(f"{source}: {name.replace('_', '-')} must be {rule}, got {value}")

    at_least_one = ("islands", "population", "generations", "evaluations", "stagnation",
                    "migration_interval", "chunk_size", "tournament_size")
    for name in at_least_one:
        value = get_value(config, name)
        if value is not None and value < 1:
            raise bad(name, "at least 1", value)
    for name in ("cache_entries", "migrants", "elite_count", "migration_period"):
        if get_value(config, name) < 0:
            raise bad(name, "0 or more", get_value(config, name))
    if not 0.0 <= config.search.crossover_rate <= 1.0:
        raise bad("crossover_rate", "between 0 and 1", config.search.crossover_rate)
    check_seed(config.seed, f"{source}: seed")
    if config.memory.min_population < 2:
        raise bad("min_population", "at least 2", config.memory.min_population)
    for name in ("time_limit", "monitor_interval", "sync_timeout", "checkpoint_interval",
                 "progress_interval"):
        value = get_value(config, name)
        if value is not None and not value > 0:
            raise bad(name, "positive", value)
    for name, known in (("topology", TOPOLOGIES), ("backend", BACKENDS),
                        ("start_method", START_METHODS)):
        if get_value(config, name) not in known:
            raise InputError(f"{source}: unknown {name} {get_value(config, name)!r} "
                             f"(choose from {', '.join(known)})")
    for key in config.memory.thresholds:
        if key not in THRESHOLD_KEYS:
            raise InputError(f"{source}: unknown threshold {key!r} (known: "
                             f"{', '.join(THRESHOLD_KEYS)})")


__all__ = ["BACKENDS", "START_METHODS", "FLAT_NAMES", "GROUPS", "THRESHOLD_KEYS", "MemorySettings",
           "OutputSettings", "RunConfig", "SearchSettings", "StopSettings", "check_ranges",
           "default_of", "get_value", "help_of"]
