"""The run report (coordinator.report): built at the end of a real run, rebuilt by
`islands report RUN_DIR` from events.jsonl with the same plots, the timetable export,
bad input, and the page rendered in a real headless Chromium when one is installed."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.cli import main
from coordinator.report import PLOT_FILES, load_events, report_data
from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                        else None)
ALL_PLOTS = (*PLOT_FILES, "plot_costs.png")


def islands(*args, cwd=None, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "coordinator", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def timetable_run(tmp_path_factory):
    """One finished run of a tiny generated timetable: (run_dir, its summary, lectures)."""
    where = tmp_path_factory.mktemp("report")
    instance = generate_instance(courses=12, rooms=3, days=3, periods_per_day=4, curricula=4,
                                 seed=3)
    write_ctt(instance, where / "tiny.ctt")
    done = islands("run", "timetable:tiny.ctt,ls_moves=2000", "--islands", "2", "--generations", "6",
                   "--out", "run", "--json", "--history", where / "history.sqlite", cwd=where)
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "run", json.loads(done.stdout), instance.n_lectures


def test_a_run_leaves_a_self_contained_report_with_its_plots(timetable_run):
    run_dir, summary, _ = timetable_run
    page = (run_dir / "report.html").read_text()
    for name in ALL_PLOTS:
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Embedded, not linked: the one file can be mailed.
    assert page.count('src="data:image/png;base64,') == len(ALL_PLOTS)
    assert "<img" in page and 'src="plot_' not in page
    assert f"hard / soft</td><td>{summary['hard_violations']} / {summary['soft_cost']}" in page
    for section in ("Timetable per curriculum", "Timetable per room", "Timetable per teacher",
                    "Memory actions", "Cost per constraint"):
        assert section in page
    log = (run_dir / "run.log").read_text()
    assert "[GA] Report:" in log and "[GA] Memory: peak" in log


def test_islands_report_rebuilds_the_same_plots_from_events_alone(timetable_run, tmp_path):
    run_dir, _, _ = timetable_run
    copy = tmp_path / "copy"
    copy.mkdir()  # events.jsonl alone, plus what the timetable grids read (best.sol)
    shutil.copy(run_dir / "events.jsonl", copy)
    shutil.copy(run_dir / "best.sol", copy)
    assert main(["report", str(copy)]) == 0
    before = report_data(load_events(run_dir))
    assert report_data(load_events(copy)) == before
    assert before["best"] and before["memory"] and before["population"] and before["migration"]
    for name in ALL_PLOTS:  # same data, same pixels and bytes (no date in the PNGs)
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_islands_export_writes_one_csv_row_per_lecture(timetable_run, tmp_path, capsys):
    run_dir, _, lectures = timetable_run
    assert main(["export", str(run_dir), "-o", str(tmp_path / "t.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert len(rows) == lectures
    assert set(rows[0]) == {"course", "teacher", "room", "day", "period", "curricula"}
    capsys.readouterr()
    assert main(["export", str(run_dir), "-o", "-"]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == lectures


@pytest.mark.parametrize("case", ["missing", "no_events", "corrupt"])
def test_bad_run_directories_are_one_error_line_and_exit_2(tmp_path, case):
    run_dir = tmp_path / "run"
    if case != "missing":
        run_dir.mkdir()
    if case == "corrupt":
        (run_dir / "events.jsonl").write_text('{"t": 0.1, "event": "config"}\n{"t": 0.2, "ev\n'
                                              '{"t": 0.3, "event": "summary"}\n')
    for command in ("report", "export"):
        done = islands(command, run_dir)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("islands: error: "), done.stderr
        if case == "corrupt" and command == "report":
            assert "line 2" in lines[0]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (CI installs it with "
                                             "apt-get; locally: apt-get install -y chromium)")
def test_the_report_renders_in_headless_chromium_with_every_plot(timetable_run, tmp_path):
    run_dir, _, _ = timetable_run
    # A copy of the page that writes each image's decoded width into the DOM once loaded.
    probe = tmp_path / "probe.html"
    probe.write_text((run_dir / "report.html").read_text().replace(
        "</body>", "<script>window.addEventListener('load', () => document.body.setAttribute("
        "'data-widths', [...document.images].map(i => i.naturalWidth).join(',')));</script>"
        "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert "data-widths=" in dom.stdout, dom.stderr[-2000:]
    widths = dom.stdout.split('data-widths="')[1].split('"')[0].split(",")
    assert len(widths) == len(ALL_PLOTS) and all(int(w) > 0 for w in widths), widths
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,2000",
                    (run_dir / "report.html").as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert high - low > 100, "the page rendered blank"  # text and plots, not one colour
    assert len(image.getcolors(maxcolors=2**16) or range(2**16)) > 20


def test_a_report_that_cannot_be_built_is_a_warning_not_a_failed_run(tmp_path):
    # The run directory's report.html is a folder: the report cannot be written.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.html").mkdir()
    done = islands("run", "rastrigin:dim=10", "--islands", "1", "--generations", "3",
                   "--out", tmp_path / "run", "--overwrite", "--no-history")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Could not build the report" in done.stderr and "Traceback" not in done.stderr
    assert Path(tmp_path / "run" / "summary.json").is_file()
