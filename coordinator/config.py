"""The resolved configuration of one run: loading, merging and writing `RunConfig`.

Covers: defaults < TOML file (`--config FILE.toml`) < command-line flags (or
`islands.run` options); TOML tables `[stop]`, `[search]`, `[memory]`, `[output]` and
`[problem]` (`spec = "rastrigin"` plus the problem's parameters), and the older flat
top-level keys (`time_limit = 60`, as in run directories written before the tables),
which land in their table; keys with dashes or underscores; an unknown key is one
`InputError` line naming the file and the key, with "did you mean" when one is close; a
wrong type is one line naming the key (types are checked by msgspec against
`coordinator.config_model`); `to_toml()` for `RUN_DIR/config.toml`.

Does not cover: the model itself, help texts and range checks
(`coordinator.config_model`), command-line flags (`coordinator.flags`), choosing island
count, population and chunk size (`coordinator.autoconfig`), parsing sizes
(`memory.budget.parse_size`).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from coordinator.config_model import (
    BACKENDS,
    FLAT_NAMES,
    GROUPS,
    THRESHOLD_KEYS,
    RunConfig,
    check_ranges,
)
from islands.errors import InputError, read_user_text
from islands.problem import ProblemSpecError, parse_spec
from islands.topology import TOPOLOGIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (known keys: {', '.join(known)})"


def _key(text: str) -> str:
    return text.replace("-", "_")


def nest(raw: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Flat keys into their tables, tables checked for unknown keys ("did you mean")."""
    nested: dict[str, Any] = {}
    top_known = sorted(set(FLAT_NAMES) | set(GROUPS) | {"problem"})
    for key, value in raw.items():
        name = _key(key)
        if name in GROUPS and isinstance(value, Mapping):
            table_known = sorted(
                field for flat, (group, field) in FLAT_NAMES.items() if group == name)
            for inner, inner_value in value.items():
                inner_name = _key(inner)
                if inner_name not in table_known:
                    raise InputError(f"{source}: unknown key {inner!r} in [{name}]"
                                     + _did_you_mean(inner_name, table_known))
                _put(nested, name, inner_name, inner_value, source)
        elif name == "problem" and isinstance(value, Mapping):
            nested["problem"] = _problem_table(value, source)
        elif name in FLAT_NAMES:
            group, field = FLAT_NAMES[name]
            _put(nested, group, field, value, source)
        else:
            raise InputError(f"{source}: unknown key {key!r}" + _did_you_mean(name, top_known))
    return nested


def _put(nested: dict[str, Any], group: str | None, field: str, value: Any, source: str) -> None:
    place = nested if group is None else nested.setdefault(group, {})
    if field in place:
        where = field if group is None else f"[{group}] {field}"
        raise InputError(f"{source}: {where} is given twice (as a flat key and in its table)")
    if field == "budget" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # plain bytes
    place[field] = value


def _problem_table(table: Mapping[str, Any], source: str) -> str:
    """`[problem]` with `spec` and the problem's parameters -> one spec text."""
    params = {_key(k): v for k, v in table.items() if _key(k) != "spec"}
    spec = table.get("spec")
    if not isinstance(spec, str):
        raise InputError(f"{source}: [problem] needs spec = \"NAME\" (e.g. spec = \"rastrigin\")")
    for key, value in params.items():
        if isinstance(value, (Mapping, list)):
            raise InputError(f"{source}: [problem] {key} must be a number, string or boolean")
    return merge_params(spec, params, source)


def merge_params(spec: str, params: Mapping[str, Any], source: str) -> str:
    """`spec` with `params` added (parameters written in the spec itself win)."""
    if not params:
        return spec
    try:
        parsed = parse_spec(spec)
    except ProblemSpecError as error:
        raise InputError(f"{source}: {error}") from None
    return spec_text(parsed.name, {**params, **parsed.params})


def spec_text(name: str, params: Mapping[str, Any]) -> str:
    """`name:k=v,...`, or `module:Class,k=v,...` for a class named by where it lives."""
    if not params:
        return name
    separator = "," if ":" in name else ":"
    return name + separator + ",".join(f"{key}={_spec_value(v)}" for key, v in params.items())


def _spec_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def build(values: Mapping[str, Any], *, source: str) -> RunConfig:
    """A checked RunConfig from nested values (types by msgspec, then ranges)."""
    try:
        config = msgspec.convert(dict(values), RunConfig)
    except msgspec.ValidationError as error:
        raise InputError(f"{source}: {_type_error(str(error), values)}") from None
    check_ranges(config, source)
    return config


TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string",
              "bool": "true or false", "object": "a table"}


def _type_error(message: str, values: Mapping[str, Any]) -> str:
    """msgspec's "Expected `int | null`, got `str` - at `$.stop.generations`" in words."""
    text, _, where = message.partition(" - at `$")
    path = [part for part in where.rstrip("`").split(".") if part]
    key = " ".join([f"[{path[0]}]", *path[1:]]) if len(path) > 1 else (path or ["config"])[0]
    if not text.startswith("Expected `"):
        return f"key {key!r}: {text[0].lower()}{text[1:]}"
    expected = text.split("`")[1].split(" | ")
    words = [TYPE_WORDS.get(kind, kind) for kind in expected if kind != "null"]
    if "a number" in words and "an integer" in words:
        words.remove("an integer")
    value: Any = values
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return f"key {key!r} must be {' or '.join(words)}, got {value!r}"


def load_toml(path: str | Path) -> dict[str, Any]:
    """A config file's values, nested by table; one-line InputError on any problem."""
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
    """Flat or nested values checked for unknown keys and types (nested result)."""
    nested = nest(raw, source=source)
    build(nested, source=source)
    return nested


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key in GROUPS:
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


def resolve_config(
    *, toml_path: str | Path | None = None, flags: Mapping[str, Any] | None = None,
    flags_source: str = "configuration",
) -> RunConfig:
    """Defaults < TOML file < flags (flat names; `None` means not given)."""
    source = str(toml_path) if toml_path is not None else flags_source
    values: dict[str, Any] = load_toml(toml_path) if toml_path is not None else {}
    given = {key: value for key, value in (flags or {}).items() if value is not None}
    values = _merge(values, nest(given, source=flags_source))
    return build(values, source=source)


def flat_config(**flat: Any) -> RunConfig:
    """A RunConfig from flat names (`flat_config(problem="sphere", time_limit=5.0)`)."""
    return resolve_config(flags=flat)


def with_flat(config: RunConfig, **flat: Any) -> RunConfig:
    """A copy with some fields replaced, by flat name (`time_limit=60`)."""
    values = msgspec.to_builtins(config)
    return build(_merge(values, nest(flat, source="configuration")), source="configuration")


def to_toml(config: RunConfig) -> str:
    """The config as TOML tables (`None` left out: TOML has no null); the problem as a
    `[problem]` table of its spec name and parameters."""
    data = msgspec.to_builtins(config)
    problem = data.pop("problem", None)
    clean = {key: value for key, value in data.items()
             if value is not None and not (key in GROUPS and not value)}
    for group in GROUPS:
        clean[group] = {k: v for k, v in data[group].items()
                        if v is not None and not (k == "thresholds" and not v)}
    if problem:
        try:
            parsed = parse_spec(problem)
            clean = {"problem": {"spec": parsed.name, **parsed.params}, **clean}
        except ProblemSpecError:
            clean = {"problem": problem, **clean}
    return tomli_w.dumps(clean)


def to_builtins(config: RunConfig) -> dict[str, Any]:
    """Plain nested dicts (for checkpoints)."""
    return msgspec.to_builtins(config)


__all__ = ["BACKENDS", "THRESHOLD_KEYS", "TOPOLOGIES", "RunConfig", "build", "check_values", "flat_config",
           "load_toml", "merge_params", "nest", "resolve_config", "spec_text", "to_builtins", "to_toml",
           "with_flat"]
