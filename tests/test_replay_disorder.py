"""``ticker replay --disorder``: an arrival-ordered run end to end — deterministic bytes, resume
after a crash, verify, state --at, report on the final milestones, replay from the log."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import orjson
import pytest
from test_replay import comparable, log_bytes, replay, run_child

from ticker.cli import main
from ticker.eventlog import EventLog
from ticker.events import OrderBatch

DISORDER = ["--disorder", "realistic"]


def milestones(run_dir) -> list[dict]:
    return [orjson.loads(x) for x in (run_dir / "milestones.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return replay(tmp_path_factory.mktemp("disorder"), "run", *DISORDER)


def test_the_log_is_in_arrival_order_and_the_run_says_so(smoke_run):
    meta = orjson.loads((smoke_run / "run.json").read_bytes())
    assert meta["run"] == "smoke-seed1111-x1-realistic"
    assert meta["disorder"]["name"] == "realistic" and meta["disorder"]["lateness_s"] == 5.0
    log = EventLog(smoke_run / "log", readonly=True)
    events = OrderBatch.concat(log.read(0))
    log.close()
    assert np.array_equal(events.seq, np.arange(len(events)))
    assert (np.diff(events.event_time) < 0).any()  # out of order
    summary = orjson.loads((smoke_run / "summary.json").read_bytes())
    et = summary["event_time"]
    assert et["duplicates_dropped"] > 0 and et["late_orders"] > 0 and et["reorder_buffer"] == 0
    assert summary["events"] == len(events) == meta["events"]
    assert summary["orders"] + summary["refunds"] + et["duplicates_dropped"] == len(events)
    timings = {m["timing"] for m in summary["milestones"]}
    assert timings == {"live", "final", "correction"}
    for m in summary["milestones"]:
        assert m["id"].endswith(":live") == (m["timing"] == "live")
        assert ("corrects" in m) == (m["timing"] == "correction")


def test_the_totals_are_those_of_the_ordered_run(tmp_path, smoke_run):
    ordered = orjson.loads((replay(tmp_path, "ordered") / "summary.json").read_bytes())
    disordered = orjson.loads((smoke_run / "summary.json").read_bytes())
    for key in ("orders", "refunds", "gmv_minor", "peak_orders_per_s", "peak_at"):
        assert disordered[key] == ordered[key], key


def test_the_same_bytes_whatever_the_batching_and_workers(tmp_path, smoke_run):
    other = replay(tmp_path, "b", *DISORDER, "--batch-size", "4999", "--workers", "2",
                   "--snapshot-every", "65536")
    assert log_bytes(other) == log_bytes(smoke_run)
    assert (other / "milestones.jsonl").read_bytes() == (smoke_run / "milestones.jsonl").read_bytes()
    assert comparable(orjson.loads((other / "summary.json").read_bytes())) == \
        comparable(orjson.loads((smoke_run / "summary.json").read_bytes()))
    assert main(["verify", str(other)]) == 0


def test_replaying_the_recorded_log_re_derives_the_same_run(tmp_path, smoke_run):
    again = tmp_path / "again.json"
    assert main(["replay", str(smoke_run), "--mqtt", "none", "--quiet", "--summary", str(again)]) == 0
    assert comparable(orjson.loads(again.read_bytes())) == \
        comparable(orjson.loads((smoke_run / "summary.json").read_bytes()))


def test_the_report_checks_the_final_milestones_and_shows_live_against_final(smoke_run, capsys):
    assert main(["report", str(smoke_run)]) == 0
    out = capsys.readouterr().out
    assert "Event time (the facts above use the final milestones)" in out
    assert "final · live" in out and "Correction:" in out
    assert main(["report", str(smoke_run), "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert all(m["timing"] == "final" for m in report["milestones"])
    assert report["live_vs_final"] and report["corrections"]


def test_state_at_is_the_state_when_the_watermark_reached_the_moment(smoke_run, capsys):
    assert main(["state", str(smoke_run), "--at", "2021-11-11T00:01:00+08:00", "--json"]) == 0
    at = orjson.loads(capsys.readouterr().out)
    log = EventLog(smoke_run / "log", readonly=True)
    events = OrderBatch.concat(log.read(0))
    log.close()
    until = 1636560065_000_000  # 2021-11-11T00:01:05+08:00: the moment plus the 5 s lateness
    stop = int(np.argmax(events.event_time >= until))
    assert at["events"] == stop


def test_resume_refuses_another_disorder(tmp_path, smoke_run, capsys):
    assert main(["replay", "smoke", "--mqtt", "none", "--quiet", "--run-dir", str(smoke_run),
                 "--resume"]) != 0
    assert "cannot resume" in capsys.readouterr().err


def test_a_bad_profile_is_one_line(capsys):
    assert main(["replay", "smoke", "--mqtt", "none", "--quiet", "--no-log", "--disorder",
                 "realistik"]) != 0
    err = capsys.readouterr().err
    assert "no such profile" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


CRASH = ["double11-2021", "--mqtt", "none", "--snapshot-every", "131072", *DISORDER]


def test_a_killed_disordered_run_resumes_to_the_identical_result(tmp_path):
    reference = replay(tmp_path, "reference", *CRASH[1:], scenario="double11-2021")
    assert main(["report", str(reference)]) == 0  # every published fact, on the final milestones
    crashed = tmp_path / "crashed"
    child = run_child(["replay", *CRASH, "--run-dir", str(crashed)])
    for _ in range(300):  # kill it after its 300th milestone line
        if not child.stdout.readline():
            break
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "ticker", "replay", *CRASH, "--run-dir",
                              str(crashed), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert log_bytes(crashed) == log_bytes(reference)
    assert milestones(crashed) == milestones(reference)
    assert main(["verify", str(crashed)]) == 0


def test_a_report_fold_of_the_log_counts_each_redelivered_order_once(smoke_run):
    """A brands_over threshold the aggregator does not race on is measured from the log: an
    arrival-ordered log is folded by its event-time aggregator (redeliveries once, every event
    before the moment wherever it arrived)."""
    from ticker.report import brand_gmv_before
    from ticker.scenario import load_scenario

    scenario = load_scenario(smoke_run / "scenario.toml")
    summary = orjson.loads((smoke_run / "summary.json").read_bytes())
    assert int(brand_gmv_before(smoke_run, scenario, None).sum()) == summary["gmv_minor"]
    log = EventLog(smoke_run / "log", readonly=True)
    events = OrderBatch.concat(log.read(0))
    log.close()
    moment = int(np.median(events.event_time))
    keys = np.unique(np.stack([events.order_id, events.kind.astype(np.int64), events.event_time]),
                     axis=1, return_index=True)[1]
    once = events.take(np.sort(keys))
    before = once.event_time < moment
    assert int(brand_gmv_before(smoke_run, scenario, moment).sum()) == int(once.amount_minor[before].sum())


def test_a_cluster_replay_refuses_disorder_in_one_line(capsys):
    assert main(["replay", "smoke", "--cluster", "local:1", "--no-log", "--mqtt", "none",
                 "--disorder", "realistic"]) != 0
    err = capsys.readouterr().err
    assert err.strip() == "ticker: --cluster folds the ordered stream; --disorder runs on one process"


def test_export_keeps_each_milestones_timing(smoke_run, tmp_path):
    out = tmp_path / "milestones.csv"
    assert main(["export", str(smoke_run), "--what", "milestones", "--format", "csv",
                 "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].endswith(",headline,timing,corrects")
    assert len(lines) - 1 == len(milestones(smoke_run))
    corrections = [m for m in milestones(smoke_run) if m["timing"] == "correction"]
    assert sum(line.endswith(f",correction,{corrections[0]['corrects']}") for line in lines) >= 1
