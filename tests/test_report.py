"""``ticker report``: a recorded run against its scenario's targets, as a table, JSON and a PNG.

The runs are real replays of the bundled ``smoke`` scenario at scale 1 (a quarter of a million
events, well under a second) and of ``double11-2021`` at the default scale; the figures the
report measures are checked against ``tests/scenario/stream_facts``, which measures the same
targets from the generated stream with plain numpy, independently of the aggregator.
"""

from __future__ import annotations

import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from ticker.aggregate.milestones import Milestone
from ticker.cli import main
from ticker.eventlog import EventLog
from ticker.report import brand_gmv_before, build_report, load_report, shown_milestones, write_png
from ticker.rundir import RunDir
from ticker.scenario import resolve

try:  # tests/ is not a package: pytest puts it on sys.path, and scenario/ is one
    from scenario.stream_facts import measure_targets
except ImportError:  # tests/ as a package
    from tests.scenario.stream_facts import measure_targets

FACT_KEYS = {"fact", "metric", "source", "expected", "measured", "difference", "tolerance", "ok"}
MILESTONE_KEYS = {"id", "kind", "subject", "threshold_minor", "value_minor", "seq", "event_time",
                  "rank", "headline"}
MINUS = "\N{MINUS SIGN}"
FEN = 100  # minor units per RMB

# A target this report must measure by folding the log: RMB 500,000 is no milestone threshold.
UNTRACKED = """
[[targets]]
fact = "brands over RMB 500,000 (not a milestone threshold)"
metric = "brands_over"
threshold = 500_000
value = 1
tolerance = 0
source = "test"
[[targets]]
fact = "brands over RMB 500,000 by the end of the opening window"
metric = "brands_over"
threshold = 500_000
at = 2021-11-11T00:03:00+08:00
value = 1
tolerance = 0
source = "test"
"""


def replay(run_dir: Path, scenario: str, *extra: str) -> int:
    return main(["replay", scenario, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir),
                 *extra])


def off_scenario(path: Path) -> Path:
    """The smoke scenario with four targets deliberately wrong, and two the log must answer."""
    text = resolve("smoke").text
    edits = [
        (r'(metric = "gmv"\nvalue = )60_000_000', r"\g<1>70_000_000"),
        (r"(threshold = 1_000_000\nvalue = )12\b", r"\g<1>13"),
        (r'value = \["Aurora", "Bamboo"\]', 'value = ["Aurora", "Cedar"]'),
        (r'(metric = "time_to_value"\n(?:[a-z]+ = .*\n)*?value = )1\n', r"\g<1>0.5\n"),
    ]
    for pattern, replacement in edits:
        text, n = re.subn(pattern, replacement, text, count=1)
        assert n == 1, f"smoke.toml changed: {pattern!r} no longer matches"
    path.write_text(text + UNTRACKED, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("report") / "smoke"
    assert replay(run_dir, "smoke", "--scale", "1") == 0
    return run_dir


@pytest.fixture(scope="module")
def off_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report-off")
    run_dir = base / "off"
    assert replay(run_dir, str(off_scenario(base / "off.toml")), "--scale", "1") == 0
    return run_dir


def facts_by_metric(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in report.facts:
        out.setdefault(f.metric, []).append(f)
    return out


# --- the facts --------------------------------------------------------------------------------


def test_every_smoke_fact_holds_and_agrees_with_an_independent_measure(smoke_dir):
    report = load_report(smoke_dir)
    scenario = resolve("smoke")
    assert report.ok and len(report.facts) == len(scenario.targets) == 8
    _, verdicts = measure_targets(scenario, 1.0)
    for fact, verdict in zip(report.facts, verdicts, strict=True):
        assert fact.fact == verdict.fact and fact.ok and verdict.passed
        if isinstance(verdict.measured, float):
            assert fact.measured_value == pytest.approx(verdict.measured, abs=1e-6), fact.fact
        else:
            assert fact.measured_value == verdict.measured, fact.fact
    by = facts_by_metric(report)
    assert by["orders"][0].measured == "240,700 orders" and by["orders"][0].difference == "0"
    assert by["peak_orders_per_s"][0].measured_value == 3_200
    assert [f.measured_value for f in by["brands_over"]] == [12, 72, 61]
    assert [f.expected for f in by["brands_over"]] == ["12 brands", "72 brands", "61 brands"]
    assert by["first_brands_over"][0].measured == "Aurora, Bamboo"
    assert by["first_brands_over"][0].difference == "same set"
    took = by["time_to_value"][0]
    assert 0.5 < took.measured_value < 1 and took.difference.startswith(MINUS)
    gmv = by["gmv"][0]
    assert gmv.expected_value == 60_000_000 * FEN and gmv.expected == "RMB 60.00 million"
    assert gmv.measured_value == report.summary["gmv_minor"]


def test_wrong_targets_fail_with_their_differences(off_dir, smoke_dir):
    report = load_report(off_dir)
    good = load_report(smoke_dir)
    assert not report.ok
    verdict = {f.fact: f.ok for f in report.facts}
    assert sum(not ok for ok in verdict.values()) == 6
    by = facts_by_metric(report)
    gmv = by["gmv"][0]
    assert not gmv.ok and gmv.expected_value == 70_000_000 * FEN
    assert gmv.measured_value == good.summary["gmv_minor"]  # the same orders as the good run
    assert re.fullmatch(rf"{MINUS}RMB 9\.\d million \({MINUS}14 %\)", gmv.difference)
    one_m = next(f for f in by["brands_over"] if f.expected == "13 brands")
    assert not one_m.ok and one_m.measured_value == 12
    assert one_m.difference == f"{MINUS}1 brand ({MINUS}7.7 %)"
    first = by["first_brands_over"][0]
    assert not first.ok and first.measured_value == ["Aurora", "Bamboo"]
    assert first.difference == "missing Cedar; instead Bamboo"
    took = by["time_to_value"][0]
    assert not took.ok and took.expected == "≤ 0.5 s"
    assert took.measured_value == pytest.approx(facts_by_metric(good)["time_to_value"][0]
                                                .measured_value)
    # the untouched targets still hold
    assert by["orders"][0].ok and by["peak_orders_per_s"][0].ok
    assert [f.ok for f in by["brands_over"][:3]] == [False, True, True]


def test_a_threshold_without_milestones_is_counted_from_the_log(off_dir):
    report = load_report(off_dir)
    untracked = [f for f in report.facts if "500,000" in f.fact]
    rd = RunDir(off_dir)
    final = rd.load_snapshot(report.summary["events"])
    threshold = 500_000 * FEN
    assert untracked[0].measured_value == int(np.count_nonzero(final.brand_gmv >= threshold))
    # by a time: the brands' net GMV from the events before it, summed here in plain Python
    at = 1_636_560_180_000_000  # 2021-11-11T00:03:00+08:00
    totals: dict[int, int] = {}
    for batch in EventLog(rd.log, readonly=True).read(0):
        for t, b, a in zip(batch.event_time.tolist(), batch.brand.tolist(),
                           batch.amount_minor.tolist(), strict=True):
            if t < at:
                totals[b] = totals.get(b, 0) + a
    assert untracked[1].measured_value == sum(v >= threshold for v in totals.values())
    assert 0 < untracked[1].measured_value <= untracked[0].measured_value
    assert all(not f.ok for f in untracked) and len(report.notes) == 2


# --- the CLI: table, JSON, exit codes ---------------------------------------------------------


def test_report_prints_the_table_and_the_meaningful_milestones(smoke_dir, capsys):
    assert main(["report", str(smoke_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("✓") == 8 and "✗" not in out
    assert "8 of 8 facts hold" in out
    assert "Aurora is the first brand to pass RMB 2 million" in out
    assert "Festival GMV passes RMB 60 million" in out
    summary = orjson.loads((smoke_dir / "summary.json").read_bytes())
    brand = [m for m in summary["milestones"] if m["kind"] == "brand_gmv"]
    shown = [m for m in brand if m["headline"] in out]
    # races of 72, 12 and 2 brands: the first three and the last of each are shown
    assert len(shown) == 3 + 1 + 3 + 1 + 2
    assert f"… and {len(brand) - len(shown)} more brand milestones" in out
    assert all(m["headline"] in out for m in summary["milestones"] if m["kind"] != "brand_gmv")


def test_report_exits_1_when_a_fact_does_not_hold(off_dir, capsys):
    assert main(["report", str(off_dir)]) == 1
    out = capsys.readouterr().out
    assert out.count("✗") == 6 and out.count("✓") == 4
    assert "4 of 10 facts hold; 6 do not" in out
    assert "missing Cedar; instead Bamboo" in out


def test_json_has_a_stable_shape(off_dir, capsys):
    assert main(["report", str(off_dir), "--json"]) == 1
    data = orjson.loads(capsys.readouterr().out)
    assert data.keys() >= {"run", "scenario", "scale", "facts", "ok", "milestones"}
    assert data["run"] == "smoke-seed1111-x1" and data["scenario"] == "smoke"
    assert data["scale"] == 1.0 and data["ok"] is False
    assert all(f.keys() >= FACT_KEYS for f in data["facts"])
    assert [f["ok"] for f in data["facts"]].count(False) == 6
    gmv = data["facts"][0]
    assert gmv["metric"] == "gmv" and gmv["tolerance"] == 0.01
    assert gmv["expected_value"] == 7_000_000_000 and isinstance(gmv["measured_value"], int)
    summary = orjson.loads((off_dir / "summary.json").read_bytes())
    assert len(data["milestones"]) == len(summary["milestones"])
    assert all(m.keys() == MILESTONE_KEYS for m in data["milestones"])
    times = [Milestone.from_json(m).event_time_us for m in data["milestones"]]
    assert times == sorted(times)


def test_replay_with_report_prints_it_and_takes_its_exit_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    off = off_scenario(tmp_path / "off.toml")
    assert replay(tmp_path / "off", str(off), "--scale", "1", "--report") == 1
    assert "4 of 10 facts hold; 6 do not" in capsys.readouterr().out
    # without a run directory the report is built from the summary in memory
    assert main(["replay", "smoke", "--scale", "1", "--mqtt", "none", "--quiet", "--no-log",
                 "--report"]) == 0
    out = capsys.readouterr().out
    assert "8 of 8 facts hold" in out and "Milestones (" in out
    assert not (tmp_path / "runs").exists()


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticker: ")
    return lines[0]


def test_user_errors_are_one_line_and_exit_2(tmp_path, smoke_dir, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in one_line_error(capsys)
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run directory" in one_line_error(capsys)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in ("run.json", "scenario.toml"):
        shutil.copy(smoke_dir / name, unfinished / name)
    assert main(["report", str(unfinished)]) == 2
    assert "no summary.json" in one_line_error(capsys)
    assert main(["report", str(smoke_dir), "--png", str(tmp_path)]) == 2  # a directory
    usage = capsys.readouterr().err.splitlines()  # a usage error: checked before any work
    assert len(usage) == 1 and "--png: expected a file path, found a directory" in usage[0]


def test_png_without_matplotlib_says_how_to_get_it(smoke_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "chart.png"
    assert main(["report", str(smoke_dir), "--png", str(png)]) == 2
    assert "pip install 'ticker[plot]'" in one_line_error(capsys)
    assert not png.exists()


# --- the chart --------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_is_written_and_not_blank(smoke_dir, tmp_path, capsys):
    png = tmp_path / "charts" / "smoke.png"
    assert main(["report", str(smoke_dir), "--png", str(png)]) == 0
    assert f"wrote the chart to {png}" in capsys.readouterr().err
    assert png_size(png) == (1650, 1100)
    assert png.stat().st_size > 80_000
    image = pytest.importorskip("matplotlib.image").imread(png)
    assert image.shape[:2] == (1100, 1650)
    assert len(np.unique(image.reshape(-1, image.shape[2])[::97], axis=0)) > 50  # drawn, not blank


def test_double11_2021_reproduces_the_record_and_labels_every_milestone(tmp_path):
    run_dir = tmp_path / "d21"
    assert replay(run_dir, "double11-2021") == 0
    report = load_report(run_dir)
    assert report.ok and len(report.facts) == len(report.scenario.targets) == 11
    by = facts_by_metric(report)
    assert [f.measured_value for f in by["brands_over"]] == [2, 36, 521, 382]
    # the run's catalogue, from the log's fold; the brands that sold, counted beside
    sold = int(np.count_nonzero(brand_gmv_before(run_dir, report.scenario, None) > 0))
    assert by["brands"][0].measured_value == 290_000 > sold > 200_000
    assert by["brands"][0].measured == f"290,000 brands ({sold:,} sold)"
    assert by["first_brands_over"][0].measured_value == ["Apple", "L'Oréal"]
    assert abs(by["gmv"][0].measured_value - 540_300_000_000 * FEN) <= 0.001 * 540_300_000_000 * FEN
    assert 0.9 < by["time_to_value"][0].measured_value <= 1.0
    png = tmp_path / "d21.png"
    assert write_png(report, png) == []  # every callout found a place
    assert png_size(png) == (1650, 1100)


# --- which milestones the text shows ----------------------------------------------------------


def test_shown_milestones_keep_each_races_first_three_every_100th_and_last():
    def brand(rank: int, threshold: int) -> Milestone:
        return Milestone(f"r:brand_gmv:b{rank}:{threshold}", "brand_gmv", f"b{rank}", threshold,
                         threshold, rank, rank, rank, f"b{rank} passes {threshold}")

    gmv = Milestone("r:gmv:all:9", "gmv", "all", 9, 9, 0, 0, None, "GMV passes 9")
    race = [brand(r, 1) for r in range(1, 251)] + [brand(r, 2) for r in range(1, 3)]
    shown, omitted = shown_milestones([gmv, *race])
    assert [m.rank for m in shown if m.threshold_minor == 1] == [1, 2, 3, 100, 200, 250]
    assert [m.rank for m in shown if m.threshold_minor == 2] == [1, 2]
    assert gmv in shown and omitted == 250 - 6


def test_brands_over_at_counts_only_crossings_strictly_before_it():
    scenario = resolve("smoke")
    target = next(t for t in scenario.targets if t.metric == "brands_over" and t.at_us)
    at, threshold = target.at_us, target.threshold_minor
    crossings = [Milestone(f"r:brand_gmv:b{i}:{threshold}", "brand_gmv", f"b{i}", threshold,
                           threshold, i, at + dt, i + 1, "")
                 for i, dt in enumerate([-10**6] * 60 + [-1, 0, 1])]
    summary = {"run": "r", "seed": 1, "scale": 1.0, "gmv_minor": 0, "orders": 0,
               "peak_orders_per_s": 0, "peak_at": "2021-11-11T00:00:00+08:00",
               "brands_over": {str(threshold): 63},
               "milestones": [m.to_json(scenario.zone) for m in crossings]}
    fact = next(f for f in build_report(scenario, summary).facts if f.fact == target.fact)
    assert fact.measured_value == 61 and fact.ok  # 60 + the one a microsecond early
