"""Odd input as users give it: byte-order marks, repeated `.sol` entries, out-of-range
seeds and output paths that cannot be written. Real files, real `islands` subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_timetable_fixtures import TINY_CTT

from coordinator.config import flat_config, load_toml, resolve_config
from islands.errors import SEED_MAX, InputError, check_seed
from islands.island import derive_seed
from islands.timetable.instance import read_ctt
from islands.timetable.problem import TimetableProblem
from islands.timetable.solution import entries_to_genome, read_sol, read_sol_lines
from islands.timetable.validate import check_files, evaluate_entries, repeated_entries

REPO_ROOT = Path(__file__).resolve().parent.parent
BOM = b"\xef\xbb\xbf"
# A clean solution of TINY_CTT: no hard violations, soft cost 27 (see test_timetable_validate).
GOOD_SOL = "cX rB 0 0\ncX rB 0 1\ncY rA 0 2\ncY rA 1 0\ncZ rA 1 1\n"


def islands(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args], capture_output=True, text=True,
        timeout=timeout, cwd=REPO_ROOT,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("islands: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.ctt"
    path.write_text(TINY_CTT)
    return path


# --- UTF-8 byte-order mark -------------------------------------------------------------

def test_bom_ctt_and_sol_read_as_if_absent(tmp_path, tiny):
    plain = read_ctt(tiny)
    bom_ctt = tmp_path / "bom.ctt"
    bom_ctt.write_bytes(BOM + TINY_CTT.encode())
    assert read_ctt(bom_ctt).equals(plain)
    assert read_ctt(bom_ctt).name == "Tiny"

    sol, bom_sol = tmp_path / "plain.sol", tmp_path / "bom.sol"
    sol.write_text(GOOD_SOL)
    bom_sol.write_bytes(BOM + GOOD_SOL.encode())
    assert np.array_equal(read_sol(bom_sol, plain), read_sol(sol, plain))


def test_bom_files_validate_from_the_command_line(tmp_path):
    ctt, sol = tmp_path / "bom.ctt", tmp_path / "bom.sol"
    # Windows line ends too, as a Windows editor that writes a BOM would.
    ctt.write_bytes(BOM + TINY_CTT.replace("\n", "\r\n").encode())
    sol.write_bytes(BOM + GOOD_SOL.replace("\n", "\r\n").encode())
    result = islands("validate", str(ctt), str(sol))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "violations=0 cost=27"
    assert result.stderr == ""


def test_bom_toml_config_is_accepted(tmp_path):
    config = tmp_path / "run.toml"
    config.write_bytes(BOM + b"islands = 3\nseed = 7\n")
    assert load_toml(config) == {"islands": 3, "seed": 7}
    assert resolve_config(toml_path=config).seed == 7


def test_a_bom_is_dropped_only_at_the_start(tmp_path, tiny):
    # A BOM in the middle of a line is a character of a name, not a marker: unknown course.
    sol = tmp_path / "mid.sol"
    sol.write_bytes(GOOD_SOL.encode() + BOM + b"cX rB 1 1\n")
    with pytest.raises(InputError, match=rf"{sol}:6: unknown course"):
        read_sol(sol, read_ctt(tiny))


def test_non_utf8_file_is_one_line(tmp_path, tiny):
    sol = tmp_path / "latin1.sol"
    sol.write_bytes("cX rB 0 0 \u00e9\n".encode("latin-1"))
    result = islands("validate", str(tiny), str(sol))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not UTF-8 text" in result.stderr and result.stderr.count("\n") == 1


# --- repeated and extra .sol entries ---------------------------------------------------

def test_repeated_entries_are_found_with_their_lines(tmp_path, tiny):
    inst = read_ctt(tiny)
    sol = tmp_path / "rep.sol"
    sol.write_text(GOOD_SOL + "\ncX rA 0 0\ncY rB 1 0\n")
    entries, lines = read_sol_lines(sol, inst)
    assert lines.tolist() == [1, 2, 3, 4, 5, 7, 8]  # the blank line 6 is no entry
    assert repeated_entries(inst, entries).tolist() == [5, 6]
    check = check_files(str(tiny), str(sol))
    assert (check.entries, check.repeated_entries, check.first_repeated_line) == (7, 2, 7)
    assert check.warning.startswith(f"{sol}:7: repeated entry: course cX already has a lecture "
                                    "at day 0 period 0 (2 of 7 entries repeat one")
    # cX and cY have 3 entries for 2 lectures each: one extra entry each.
    assert check.breakdown.lectures == 2
    # Everything else is scored as validator.cc does: the repeats are skipped.
    good = tmp_path / "good.sol"
    good.write_text(GOOD_SOL)
    clean = evaluate_entries(inst, read_sol(good, inst))
    assert check.breakdown.soft_cost == clean.soft_cost == 27
    assert check.breakdown.room_occupancy == clean.room_occupancy == 0


def test_lectures_count_is_validator_cc_s_where_no_entry_exceeds_the_count(tmp_path, tiny):
    # validator.cc: lectures = |periods occupied - lectures| per course. Same here for
    # files without repeats (extras in other periods included) and for a genome's repeats.
    cases = {
        "cX rA 0 0\ncX rB 1 0\ncY rA 0 0\ncY rB 0 0\ncZ rB 1 2\ncZ rA 1 0\n": 2,  # hand-worked
        "cX rB 0 0\n": 4,  # missing lectures
        "cX rB 0 0\ncX rB 0 1\ncX rB 0 2\ncX rB 1 0\n": 2 + 2 + 1,  # 2 extra (distinct periods)
        "cX rA 0 0\ncX rB 0 0\ncY rA 0 1\ncY rA 0 2\ncZ rA 1 0\n": 1,  # a genome's repeat
    }
    for text, expected in cases.items():
        sol = tmp_path / "c.sol"
        sol.write_text(text)
        assert check_files(str(tiny), str(sol)).breakdown.lectures == expected, text


def test_genomes_with_repeats_agree_with_the_search_evaluator(tiny):
    """A genome holds one entry per lecture, so the new Lectures rule changes nothing the
    search sees: the batch evaluator still agrees with the reference on repeated periods."""
    inst = read_ctt(tiny)
    problem = TimetableProblem(str(tiny))
    entries = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 0, 1], [2, 0, 5]])
    genome = entries_to_genome(entries, inst)
    expected = evaluate_entries(inst, entries)
    assert expected.lectures == 2 and len(repeated_entries(inst, entries)) == 2
    described = problem.describe(genome)
    assert described["hard_violations"] == expected.hard_violations
    assert described["soft_cost"] == expected.soft_cost


def test_two_million_line_solution_does_not_score_zero(tmp_path, tiny):
    sol = tmp_path / "huge.sol"
    sol.write_text(GOOD_SOL * 400_000)  # 2,000,000 lines: the clean solution, copied
    assert sum(1 for _ in sol.open()) == 2_000_000
    result = islands("validate", str(tiny), str(sol), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["entries"] == 2_000_000
    assert data["repeated_entries"] == 2_000_000 - 5
    assert data["first_repeated_line"] == 6
    assert data["lectures"] == 2_000_000 - 5 and data["hard_violations"] == 2_000_000 - 5
    assert data["soft_cost"] == 27
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith(f"warning: {sol}:6: repeated entry")
    assert "1999995 of 2000000 entries" in warning[0]

    text = islands("validate", str(tiny), str(sol))
    assert text.returncode == 0
    assert text.stdout.strip().splitlines()[-1] == "violations=1999995 cost=27"
    assert "Violations of Lectures (hard) : 1999995" in text.stdout


def test_clean_solution_has_no_warning(tmp_path, tiny):
    sol = tmp_path / "good.sol"
    sol.write_text(GOOD_SOL)
    result = islands("validate", str(tiny), str(sol), "--json")
    assert result.returncode == 0 and result.stderr == ""
    data = json.loads(result.stdout)
    assert data["repeated_entries"] == 0 and data["first_repeated_line"] is None


# --- seeds -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [-1, 2**63, 2**64, 2**70])
def test_out_of_range_seed_is_one_line_and_exit_2(tmp_path, seed):
    result = islands("run", "sphere:dim=3", "--generations", "1", "--seed", str(seed),
                     "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "seed must be in 0..2**63-1", f"got {seed}")
    assert not (tmp_path / "run").exists()


def test_out_of_range_seed_in_config_file_is_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("seed = -5\n")
    result = islands("run", "sphere:dim=3", "--config", str(config), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, str(config), "seed must be in 0..2**63-1", "got -5")


def test_seed_range_limits(tmp_path):
    assert check_seed(0) == 0 and check_seed(SEED_MAX) == SEED_MAX == 2**63 - 1
    for bad in (-1, SEED_MAX + 1, 2**70, True, 1.5, "3"):
        with pytest.raises(InputError):
            check_seed(bad)
        with pytest.raises(InputError, match="seed"):
            flat_config(seed=bad)
    # Every accepted seed derives island seeds (what an out-of-range one crashed in).
    assert derive_seed(SEED_MAX, 3) >= 0 and derive_seed(0, 0) >= 0


def test_largest_seed_runs_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    result = islands("run", "sphere:dim=3", "--generations", "2", "--islands", "2",
                     "--seed", str(SEED_MAX), "--out", str(run_dir), "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["seed"] == SEED_MAX
    again = islands("resume", str(run_dir), "--generations", "3", "--json", "--quiet")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["seed"] == SEED_MAX


def test_generate_refuses_out_of_range_seed(tmp_path):
    out = tmp_path / "t.ctt"
    assert_one_line_error(islands("generate", "timetable", "--seed", "-1", "-o", str(out)),
                          "--seed must be in 0..2**63-1")
    assert_one_line_error(islands("generate", "timetable", "--seed", str(2**70), "-o", str(out)),
                          "--seed must be in 0..2**63-1")
    assert not out.exists()


# --- output paths that cannot be written -------------------------------------------------

def test_demo_run_into_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # A folder under a regular file cannot be made, even by root.
    result = islands("run", "--generations", "1", "--out", str(blocker / "sub"))
    assert_one_line_error(result, f"cannot use run directory {blocker / 'sub'}", "Not a directory")
    result = islands("run", "--generations", "1", "--out", str(blocker))
    assert_one_line_error(result, f"cannot use run directory {blocker}", "file, not a folder")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway; "
                    "the file-in-the-way cases above cover the same error path for root")
def test_demo_run_into_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = islands("run", "--generations", "1", "--out", str(folder))
        assert_one_line_error(result, f"cannot use run directory {folder}", "Permission denied")
        result = islands("generate", "timetable", "-o", str(folder / "t.ctt"))
        assert_one_line_error(result, f"{folder / 't.ctt'}: cannot write instance file",
                              "Permission denied")
    finally:
        folder.chmod(0o700)


def test_generate_to_unwritable_path_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    assert_one_line_error(islands("generate", "timetable", "-o", str(blocker / "t.ctt")),
                          f"{blocker / 't.ctt'}: cannot write instance file", "Not a directory")
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_one_line_error(islands("generate", "timetable", "-o", str(folder)),
                          f"{folder}: cannot write instance file", "Is a directory")
    assert blocker.read_text() == "keep"


def test_standalone_timetable_cli_gives_the_same_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    result = subprocess.run(
        [sys.executable, "-m", "islands.timetable", "generate", "timetable", "-o",
         str(blocker / "t.ctt")], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "cannot write instance file" in result.stderr
