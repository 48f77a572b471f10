"""memory.budget: size parsing, cgroup readers on fake trees, budget and slice arithmetic."""

from pathlib import Path

import pytest

from memory.budget import (
    GIB,
    MIB,
    BudgetError,
    cgroup_limit_bytes,
    compute_budget,
    default_reserve_bytes,
    format_bytes,
    island_slice_bytes,
    parse_size,
    physical_memory_bytes,
    total_memory_bytes,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 * MIB),
        ("8G", 8 * GIB),
        ("8GiB", 8 * GIB),
        ("8gb", 8 * GIB),
        ("1.5G", 3 * GIB // 2),
        ("700MB", 700 * MIB),
        ("100k", 100 * 1024),
        ("2T", 2 << 40),
        ("1048576", 1048576),
        (" 64 M ", 64 * MIB),
        (4096, 4096),
    ],
)
def test_parse_size_accepts_binary_units(text, expected):
    assert parse_size(text) == expected


def test_parse_size_rejects_garbage_with_one_clear_line():
    with pytest.raises(BudgetError) as info:
        parse_size("12 parsecs")
    assert str(info.value) == (
        "invalid size '12 parsecs': expected a number with an optional unit K, M, G or T, "
        "e.g. 512M or 8GiB"
    )


@pytest.mark.parametrize("text", ["", "G", "1.2.3G", "8 GiBs", "one gig", "1e9"])
def test_parse_size_rejects_malformed(text):
    with pytest.raises(BudgetError, match="expected a number with an optional unit"):
        parse_size(text)


@pytest.mark.parametrize("text", ["-5G", -1])
def test_parse_size_rejects_negative(text):
    with pytest.raises(BudgetError, match="cannot be negative"):
        parse_size(text)


def test_parse_size_zero_only_when_allowed():
    with pytest.raises(BudgetError, match="invalid size '0': a size must be greater than zero"):
        parse_size("0")
    assert parse_size("0", allow_zero=True) == 0


def test_negative_budget_is_one_clear_error():
    with pytest.raises(BudgetError) as info:
        compute_budget("-2G")
    assert str(info.value) == "memory budget: invalid size '-2G': a size cannot be negative"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.5, 1.01, 2])
def test_fraction_outside_unit_interval_rejected(fraction):
    with pytest.raises(BudgetError) as info:
        compute_budget(total_bytes=16 * GIB, fraction=fraction)
    assert str(info.value) == f"invalid memory fraction {fraction!r}: must be in (0, 1], e.g. 0.7"


def test_compute_budget_explicit_wins():
    assert compute_budget("512M", total_bytes=64 * GIB) == 512 * MIB
    assert compute_budget(123456) == 123456


def test_compute_budget_default_formula():
    # 16 GiB box: reserve 1.6 GiB (10 % < 2 GiB), 70 % of the rest.
    total = 16 * GIB
    assert default_reserve_bytes(total) == total // 10
    assert compute_budget(total_bytes=total) == int((total - total // 10) * 0.7)
    # 64 GiB box: reserve capped at 2 GiB.
    assert default_reserve_bytes(64 * GIB) == 2 * GIB
    assert compute_budget(total_bytes=64 * GIB, fraction=0.5) == 31 * GIB
    assert compute_budget(total_bytes=10 * GIB, reserve_bytes=0, fraction=1.0) == 10 * GIB


def test_compute_budget_rejects_bad_reserve():
    with pytest.raises(BudgetError, match="invalid memory reserve -1: cannot be negative"):
        compute_budget(total_bytes=GIB, reserve_bytes=-1)
    with pytest.raises(BudgetError, match="memory reserve 2.0GB leaves no budget out of 1.0GB"):
        compute_budget(total_bytes=GIB, reserve_bytes=2 * GIB)


def test_real_machine_numbers_are_sane():
    physical = physical_memory_bytes()
    total = total_memory_bytes()
    assert 0 < total <= physical
    assert 0 < compute_budget() < total


def test_island_slice():
    assert (
        island_slice_bytes(1000 * MIB, 4, coordinator_bytes=80 * MIB, shared_bytes=120 * MIB)
        == 200 * MIB
    )


def test_island_slice_leaves_nothing_message():
    with pytest.raises(BudgetError) as info:
        island_slice_bytes(100 * MIB, 4, coordinator_bytes=80 * MIB, shared_bytes=30 * MIB)
    assert str(info.value) == (
        "memory budget 100MB leaves nothing for 4 islands after the coordinator (80MB) "
        "and shared data (30MB)"
    )
    with pytest.raises(BudgetError, match="need at least 1 island"):
        island_slice_bytes(GIB, 0, coordinator_bytes=0, shared_bytes=0)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (512, "512B"),
        (12 * 1024, "12KB"),
        (667 * MIB, "667MB"),
        (int(2.1 * GIB), "2.1GB"),
        (3 << 40, "3.0TB"),
        (-5 * MIB, "-5MB"),
    ],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


# --- cgroup readers on fake trees --------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v2_limit_in_own_cgroup(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "cpu memory")
    _write(root / "memory.max", "max")
    _write(root / "user.slice" / "job" / "memory.max", str(4 * GIB))
    _write(root / "user.slice" / "job" / "memory.high", "max")
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/user.slice/job")
    assert cgroup_limit_bytes(root, proc_cgroup=proc) == 4 * GIB


def test_cgroup_v2_high_and_ancestor_limits_take_the_tightest(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "a" / "memory.max", str(8 * GIB))
    _write(root / "a" / "b" / "memory.max", "max")
    _write(root / "a" / "b" / "memory.high", str(6 * GIB))
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/a/b")
    assert cgroup_limit_bytes(root, proc_cgroup=proc) == 6 * GIB


def test_cgroup_v2_max_means_no_limit(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "memory.max", "max")
    _write(root / "job" / "memory.max", "max")
    _write(root / "job" / "memory.high", "max")
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/job")
    assert cgroup_limit_bytes(root, proc_cgroup=proc) is None


def test_cgroup_v2_limit_at_root_when_own_dir_is_not_visible(tmp_path):
    # Inside a container the cgroup namespace shows the container's cgroup as the root.
    root = tmp_path / "cgroup"
    _write(root / "memory.max", str(2 * GIB))
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/kubepods/pod1234/container")
    assert cgroup_limit_bytes(root, proc_cgroup=proc) == 2 * GIB


def test_cgroup_v1_limit(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712")
    _write(root / "memory" / "docker" / "abc" / "memory.limit_in_bytes", str(3 * GIB))
    proc = tmp_path / "proc_cgroup"
    _write(proc, "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/")
    assert cgroup_limit_bytes(root, proc_cgroup=proc) == 3 * GIB


def test_cgroup_v1_huge_value_means_no_limit(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712")
    proc = tmp_path / "proc_cgroup"
    _write(proc, "4:memory:/")
    assert cgroup_limit_bytes(root, proc_cgroup=proc) is None


def test_no_cgroup_at_all(tmp_path):
    assert cgroup_limit_bytes(tmp_path / "missing", proc_cgroup=tmp_path / "missing_too") is None


def test_total_memory_is_min_of_physical_and_cgroup(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "memory.max", str(256 * MIB))
    assert total_memory_bytes(root) == min(256 * MIB, physical_memory_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert total_memory_bytes(empty) == physical_memory_bytes()


def test_an_explicit_budget_above_what_the_machine_can_give_is_capped_with_a_warning(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="islands.memory"):
        assert compute_budget("64G", total_bytes=8 * GIB, reserve_bytes=GIB) == 7 * GIB
    assert "more than this machine and its cgroup can give" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="islands.memory"):
        assert compute_budget("6G", total_bytes=8 * GIB, reserve_bytes=GIB) == 6 * GIB
    assert caplog.text == ""
