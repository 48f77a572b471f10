"""Hostile input, fuzzed: mutated real `.ctt` files and random TOML configs.

Every case must end in a valid result or one clean `InputError` (one line, naming the
file): never another exception. CI runs 1000 cases each (the `ci` hypothesis profile in
conftest.py). Random migrant bytes are fuzzed beside their codec (tests/test_migration.py).
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import tomli_w
from conftest import ITC2007_DIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.config import RunConfig, resolve_config, to_toml
from coordinator.config_model import FLAT_NAMES, GROUPS
from islands.errors import InputError
from islands.timetable.instance import read_ctt

FUZZ_FILE_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _seed_texts() -> list[str]:
    names = ["comp01.ctt", "comp11.ctt"]
    paths = [ITC2007_DIR / name for name in names]
    if not all(path.exists() for path in paths):
        pytest.skip(f"ITC-2007 instances not found at {ITC2007_DIR}")
    return [path.read_text() for path in paths]


@st.composite
def mutated_ctt(draw: st.DrawFn, seeds: list[str]) -> bytes:
    lines = draw(st.sampled_from(seeds)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "token", "truncate", "swap", "junk"]))
        if kind == "delete":
            del lines[index]
        elif kind == "duplicate":
            lines.insert(index, lines[index])
        elif kind == "token":
            tokens = lines[index].split()
            if tokens:
                position = draw(st.integers(0, len(tokens) - 1))
                tokens[position] = draw(
                    st.sampled_from(["-1", "0", "99999999999999999999", "x", "", "3.5", "NaN",
                                     tokens[position] + "0", "Courses:", "END."])
                )
                lines[index] = " ".join(tokens)
        elif kind == "truncate":
            lines = lines[:index]
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines[index] = draw(st.text(string.printable, max_size=30))
    text = "\n".join(lines)
    if draw(st.booleans()):
        return text.encode()
    # Occasionally not UTF-8 at all.
    return text.encode() + draw(st.binary(max_size=8))


def test_mutated_ctt_files_give_an_instance_or_one_clean_error(tmp_path: Path) -> None:
    seeds = _seed_texts()
    target = tmp_path / "fuzzed.ctt"

    @settings(suppress_health_check=FUZZ_FILE_CHECKS)
    @given(mutated_ctt(seeds))
    def check(data: bytes) -> None:
        target.write_bytes(data)
        try:
            instance = read_ctt(target)
        except InputError as error:
            message = str(error)
            assert "\n" not in message and "fuzzed.ctt" in message
        else:
            assert instance.n_lectures >= 0

    check()


TOML_KEYS = [*FLAT_NAMES, *GROUPS, "time-limit", "memory-budget", "bogus", "Islands"]
toml_scalars = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=12), st.sampled_from(["512M", "8G", "0", "-1G", "ring", "torus", "x"]),
)
toml_values = st.one_of(
    toml_scalars,
    st.lists(toml_scalars, max_size=3),
    st.dictionaries(st.sampled_from(["elevated", "high", "critical", "emergency", "odd"]),
                    toml_scalars, max_size=4),
)


@st.composite
def toml_documents(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    table = draw(st.dictionaries(st.sampled_from(TOML_KEYS), toml_values, max_size=8))
    try:
        return tomli_w.dumps(table).encode()
    except (TypeError, ValueError):
        return repr(table).encode()


def test_random_toml_configs_give_a_config_or_one_clean_error(tmp_path: Path) -> None:
    target = tmp_path / "fuzzed.toml"

    @settings(suppress_health_check=FUZZ_FILE_CHECKS)
    @given(toml_documents())
    def check(data: bytes) -> None:
        target.write_bytes(data)
        try:
            config = resolve_config(toml_path=target)
        except InputError as error:
            assert "\n" not in str(error)
        else:
            assert isinstance(config, RunConfig)
            # A config that validates must survive its own round trip through config.toml.
            target.write_text(to_toml(config))
            assert resolve_config(toml_path=target) == config

    check()


@pytest.mark.parametrize(
    "days, periods, fragment",
    [("99999999999999999999", "6", "Days must be <= "), ("9999", "6", "more than 10000")],
)
def test_absurd_header_sizes_are_refused_before_allocating(
    tmp_path: Path, days: str, periods: str, fragment: str
) -> None:
    # Found by the fuzzer above: a huge Days value used to reach numpy as an array size.
    target = tmp_path / "huge.ctt"
    target.write_text(f"Name: x\nCourses: 1\nRooms: 1\nDays: {days}\nPeriods_per_day: {periods}\n"
                      "Curricula: 0\nConstraints: 0\n")
    with pytest.raises(InputError, match=fragment):
        read_ctt(target)
