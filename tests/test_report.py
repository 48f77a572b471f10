"""The run report (coordinator.report): built at the end of a real run, rebuilt by
`islands report RUN_DIR` from events.jsonl with the same plots (byte for byte), the SVG
plots inline and offline (no script, no link), empty and long series, pygal imported
only when drawing, the timetable export, bad input, and the page rendered in a real
headless Chromium when one is installed."""

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
from coordinator.report import PLOT_FILES, html_image, load_events, report_data
from coordinator.report_plots import MAX_POINTS, _thin, draw_plots
from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                        else None)
ALL_PLOTS = (*PLOT_FILES, "plot_costs.svg")
INLINE_SVG = 'class="pygal-chart"'


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
        svg = (run_dir / name).read_text()
        assert svg.startswith("<?xml") and "<svg" in svg and "</svg>" in svg, name
    # Inline, not linked, no script: the one file can be mailed and works offline.
    assert page.count(INLINE_SVG) == len(ALL_PLOTS)
    assert "<script" not in page and "<img" not in page and 'src="plot_' not in page
    for external in ("kozea.github.io", "googleapis", "xml-stylesheet", "<?xml"):
        assert external not in page, external
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
    for name in ALL_PLOTS:  # same data, same bytes (fixed chart ids, no date, no script)
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_empty_series_are_a_note_and_the_same_data_draws_the_same_bytes(tmp_path):
    events = [{"t": 0.1, "event": "config", "islands": 2},
              {"t": 0.2, "event": "summary", "problem": "nothing", "elapsed_s": 0.2}]
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    plots = draw_plots(report_data(events), first)
    assert [path.name for path, _ in plots] == list(PLOT_FILES)
    for path, what in zip([p for p, _ in plots], ["improvements", "memory samples",
                                                   "memory samples", "population samples",
                                                   "migrations"], strict=True):
        assert f"no {what} in events.jsonl" in path.read_text(), path.name
    draw_plots(report_data(events), second)
    for name in PLOT_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_long_runs_are_thinned_keeping_peaks_levels_and_actions(tmp_path):
    events = [{"t": 0.0, "event": "config", "islands": 1}]
    for n in range(20000):  # 20000 samples: the peak at n = 12345 must survive thinning
        used = (900 if n == 12345 else 100 + n % 7) * 2**20
        events.append({"t": n * 0.5, "event": "memory", "used_bytes": used,
                       "budget_bytes": 1000 * 2**20, "level": "normal",
                       "islands": {"0": {"uss": used // 2, "slice": 500 * 2**20}}})
    events += [{"t": 3000.0, "event": "pressure", "old": "normal", "new": "critical"},
               {"t": 3001.0, "event": "action", "action": "shrink", "island": 0,
                "level": "critical"},
               {"t": 3100.0, "event": "pressure", "old": "critical", "new": "normal"}]
    samples = [(e["t"], e["used_bytes"]) for e in events if e["event"] == "memory"]
    kept = _thin(samples)
    assert len(kept) <= MAX_POINTS and kept[0] == samples[0] and kept[-1] == samples[-1]
    assert samples[12345] in kept and kept == sorted(kept)
    draw_plots(report_data(events), tmp_path)
    svg = (tmp_path / "plot_memory.svg").read_text()
    assert "pressure critical" in svg and ">shrink 0<" in svg
    assert len(svg) < 100_000, len(svg)  # not 20000 points
    section = html_image(tmp_path / "plot_memory.svg", "Memory")
    assert section.startswith("<h2>Memory</h2>\n<svg") and section.endswith("</svg>")


def test_pygal_is_imported_only_when_drawing():
    code = ("import sys, islands, memory, coordinator.report, coordinator.watch; "
            "assert 'pygal' not in sys.modules and 'matplotlib' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


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
    # A copy of the page that writes each inline SVG plot's box into the DOM once loaded.
    probe = tmp_path / "probe.html"
    probe.write_text((run_dir / "report.html").read_text().replace(
        "</body>", "<script>window.addEventListener('load', () => document.body.setAttribute("
        "'data-boxes', [...document.querySelectorAll('svg.pygal-chart')].map(s => {"
        "const r = s.getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, "
        "r.width, r.height, s.querySelectorAll('path, rect').length].map(Math.round)"
        ".join(' ')}).join(',')));</script></body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000", "--force-device-scale-factor=1",
             "--window-size=1400,4500"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert "data-boxes=" in dom.stdout, dom.stderr[-2000:]
    boxes = [list(map(int, box.split()))
             for box in dom.stdout.split('data-boxes="')[1].split('"')[0].split(",")]
    assert len(boxes) == len(ALL_PLOTS), boxes
    assert all(width > 300 and height > 200 and shapes > 10
               for _, _, width, height, shapes in boxes), boxes
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", (run_dir / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    image_module = pytest.importorskip("PIL.Image", reason="pillow reads the screenshot")
    image = image_module.open(shot).convert("L")
    low, high = image.getextrema()
    assert high - low > 100, "the page rendered blank"  # text and plots, not one colour
    for left, top, width, height, _ in boxes:  # each plot drawn: lines and text, in colour
        assert top + height <= image.height, (boxes, image.size)  # all in the window
        grey = image.crop((left, top, left + width, top + height)).histogram()
        assert sum(grey[:160]) > 500 and sum(1 for count in grey if count) > 10, grey


def test_a_report_that_cannot_be_built_is_a_warning_not_a_failed_run(tmp_path):
    # The run directory's report.html is a folder: the report cannot be written.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.html").mkdir()
    done = islands("run", "rastrigin:dim=10", "--islands", "1", "--generations", "3",
                   "--out", tmp_path / "run", "--overwrite", "--no-history")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Could not build the report" in done.stderr and "Traceback" not in done.stderr
    assert Path(tmp_path / "run" / "summary.json").is_file()
