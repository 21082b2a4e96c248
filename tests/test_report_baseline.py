"""Year-on-year facts: ``ticker report`` compares a run with its scenario's baseline run, replayed
on demand next to it once (then reused), or the one ``--baseline`` names."""

from __future__ import annotations

import orjson
import pytest

from ticker.cli import main
from ticker.scenario import parse_scenario, resolve
from ticker.scenario.model import ScenarioError

SCALE = "0.00002"


def _report(capsys, *argv: str) -> dict:
    capsys.readouterr()
    main(["report", *argv, "--json"])
    return orjson.loads(capsys.readouterr().out)


def _comparisons(report: dict) -> list[dict]:
    return [f for f in report["facts"] if f["metric"] in ("dimension_over_change",
                                                          "time_to_baseline")]


def test_the_baseline_is_replayed_once_next_to_the_run_and_named_runs_agree(tmp_path, capsys):
    run = tmp_path / "2021"
    assert main(["replay", "double11-2021", "--scale", SCALE, "--mqtt", "none", "--quiet",
                 "--run-dir", str(run)]) == 0
    first = _report(capsys, str(run))
    base = tmp_path / f"double11-2020-seed20201111-x{float(SCALE):g}"
    summary = base / "summary.json"
    assert summary.is_file()
    made = summary.stat().st_mtime_ns
    again = _report(capsys, str(run))
    assert summary.stat().st_mtime_ns == made  # reused, not replayed again
    named = _report(capsys, str(run), "--baseline", str(base))
    facts = _comparisons(first)
    assert len(facts) == 2 and all(f["measured_value"] is not None for f in facts)
    assert facts == _comparisons(again) == _comparisons(named)
    # the change is the two runs' own counts of Tmall Global brands over RMB 1 million (not a
    # race threshold: counted from each run's log)
    def count(path) -> int:
        from ticker.comparisons import brand_group
        from ticker.report import brand_gmv_before
        from ticker.rundir import RunDir

        scenario = RunDir(path).scenario()
        gmv = brand_gmv_before(path, scenario, None)
        return int((brand_group(scenario, "tmall_global", len(gmv)) & (gmv >= 100_000_000)).sum())
    change = next(f for f in facts if f["metric"] == "dimension_over_change")
    assert change["measured_value"] == pytest.approx(count(run) / count(base) - 1)


def test_a_year_on_year_target_needs_a_baseline(tmp_path):
    text = resolve("double11-2021").text.replace('baseline = "double11-2020"\n', "")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "x.toml")
    assert err.value.problems == [
        "x.toml: targets[8].metric: expected festival.baseline (the scenario "
        "'dimension_over_change' compares with), found none",
        "x.toml: targets[9].metric: expected festival.baseline (the scenario "
        "'time_to_baseline' compares with), found none"]
