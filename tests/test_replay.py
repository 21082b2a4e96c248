"""``ticker replay`` end to end: the run directory, determinism, replay from the log, crash
resume, verify, time travel and export, through the CLI as a user runs them."""

from __future__ import annotations

import csv
import io
import os
import random
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from ticker.cli import main
from ticker.eventlog import EventLog
from ticker.events import OrderBatch

SUMMARY_KEYS = {"run", "scenario", "seed", "scale", "currency", "orders", "gmv_minor",
                "peak_orders_per_s", "peak_at", "brands_over", "milestones", "events_per_s",
                "wall_s"}
MILESTONE_KEYS = {"id", "kind", "subject", "threshold_minor", "value_minor", "seq", "event_time",
                  "rank", "headline"}


def replay(tmp_path: Path, name: str, *extra: str, scenario: str = "smoke") -> Path:
    run_dir = tmp_path / name
    assert main(["replay", scenario, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir),
                 *extra]) == 0
    return run_dir


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("wall_s", "events_per_s")}


def log_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "log").glob("*.seg"))}


def test_replay_writes_the_run_directory_and_the_summary_contract(tmp_path):
    summary_path = tmp_path / "summary.json"
    run_dir = replay(tmp_path, "run", "--scale", "1", "--summary", str(summary_path))
    summary = orjson.loads(summary_path.read_bytes())
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["run"] == "smoke-seed1111-x1" and summary["currency"] == "CNY"
    assert isinstance(summary["gmv_minor"], int) and summary["gmv_minor"] > 0
    assert all(m.keys() == MILESTONE_KEYS for m in summary["milestones"])
    assert {m["kind"] for m in summary["milestones"]} >= {"gmv", "brand_gmv", "rate_record"}
    assert comparable(orjson.loads((run_dir / "summary.json").read_bytes())) == comparable(summary)
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert meta["state"] == "finished" and meta["events"] == summary["events"]
    lines = (run_dir / "milestones.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x) for x in lines] == summary["milestones"]
    assert (run_dir / "scenario.toml").read_text().startswith("#")
    assert main(["verify", str(run_dir)]) == 0


def test_same_scenario_seed_and_scale_write_the_same_bytes_whatever_the_batching(tmp_path):
    a = replay(tmp_path, "a", "--scale", "1")
    b = replay(tmp_path, "b", "--scale", "1", "--batch-size", "4999", "--workers", "2",
               "--snapshot-every", "65536")
    assert log_bytes(a) and log_bytes(a) == log_bytes(b)
    assert (a / "milestones.jsonl").read_bytes() == (b / "milestones.jsonl").read_bytes()
    c = replay(tmp_path, "c", "--scale", "1", "--seed", "2")
    assert log_bytes(c) != log_bytes(a)


def test_replaying_the_recorded_log_re_derives_the_same_run(tmp_path, capsys):
    run_dir = replay(tmp_path, "run", "--scale", "1")
    again = tmp_path / "again.json"
    assert main(["replay", str(run_dir), "--mqtt", "none", "--quiet", "--summary", str(again)]) == 0
    original = orjson.loads((run_dir / "summary.json").read_bytes())
    assert comparable(orjson.loads(again.read_bytes())) == comparable(original)


def run_child(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "ticker", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)


def crash_args(scenario: str) -> list[str]:
    return [scenario, "--mqtt", "none", "--snapshot-every", "131072"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run of each crashed scenario, replayed once without interruption."""
    runs: dict[str, Path] = {}

    def get(scenario: str) -> Path:
        if scenario not in runs:
            runs[scenario] = replay(tmp_path_factory.mktemp("reference"), "run",
                                    *crash_args(scenario)[1:], scenario=scenario)
        return runs[scenario]
    return get


# double11-2021 declares a per-brand dimension (Tmall Global) and double11-2020 a per-order one
# too (Taobao Live channels, whose seller comes from the order id), both with races: a resume
# restores their totals, levels and race counts from the snapshot and re-folds the log's tail.
@pytest.mark.parametrize(("scenario", "trial"), [("double11-2021", t) for t in range(4)]
                         + [("double11-2020", t) for t in range(2)])
def test_a_run_killed_at_a_random_point_resumes_to_the_identical_result(tmp_path, scenario, trial,
                                                                        uninterrupted):
    args = crash_args(scenario)
    reference = uninterrupted(scenario)
    crashed = tmp_path / "crashed"
    fsync = ("every", "interval", "never", "every")[trial]
    child = run_child(["replay", *args, "--run-dir", str(crashed), "--fsync", fsync])
    # Synchronise on the child's own output: kill it right after its k-th milestone line.
    k = random.Random(f"{scenario}{trial}").randrange(1, 500)
    for _ in range(k):
        if not child.stdout.readline():
            break
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "ticker", "replay", *args, "--run-dir",
                              str(crashed), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert log_bytes(crashed) == log_bytes(reference)
    assert (crashed / "milestones.jsonl").read_bytes() == (reference / "milestones.jsonl").read_bytes()
    assert comparable(orjson.loads((crashed / "summary.json").read_bytes())) == \
        comparable(orjson.loads((reference / "summary.json").read_bytes()))
    # the final state, dimension arrays included: the last snapshot's bytes
    final = max((reference / "snapshots").iterdir())
    assert (crashed / "snapshots" / final.name).read_bytes() == final.read_bytes()
    lines = [orjson.loads(x) for x in (crashed / "milestones.jsonl").read_bytes().splitlines()]
    ids = [m["id"] for m in lines]
    assert len(ids) == len(set(ids))
    kinds = {m["kind"] for m in lines}
    assert "tmall_global_brand_gmv" in kinds
    assert scenario != "double11-2020" or "channel_gmv" in kinds
    assert main(["verify", str(crashed)]) == 0


def test_verify_reports_a_damaged_snapshot_summary_and_log(tmp_path, capsys):
    run_dir = replay(tmp_path, "run", "--scale", "1", "--snapshot-every", "65536")
    capsys.readouterr()
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    summary["gmv_minor"] += 1
    (run_dir / "summary.json").write_bytes(orjson.dumps(summary))
    snapshot = sorted((run_dir / "snapshots").iterdir())[0]
    snapshot.write_bytes(b"not a snapshot")
    assert main(["verify", str(run_dir)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{snapshot}: unreadable snapshot") for line in out)
    assert any("summary.json: gmv_minor is" in line for line in out)
    segment = sorted((run_dir / "log").glob("*.seg"))[0]
    data = bytearray(segment.read_bytes())
    data[200] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert main(["verify", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert segment.name in out and "offset 0" in out


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fold_before(run_dir: Path, at_us: int) -> dict:
    """The totals of every recorded event strictly before ``at_us``, summed straight from the
    log's columns: independent of the aggregator, its snapshots and ``state_at``."""
    log = EventLog(run_dir / "log", readonly=True)
    try:
        events = OrderBatch.concat(log.read(0))
    finally:
        log.close()
    before = events.slice(0, int(np.count_nonzero(events.event_time < at_us)))
    assert before.event_time.max(initial=at_us - 1) < at_us  # the log is in event-time order
    brand_gmv: dict[int, int] = {}
    for b, amount in zip(before.brand.tolist(), before.amount_minor.tolist(), strict=True):
        brand_gmv[b] = brand_gmv.get(b, 0) + amount
    return {"events": len(before), "gmv_minor": sum(before.amount_minor.tolist()),
            "orders": int(np.count_nonzero(before.kind == 0)),
            "refunds": int(np.count_nonzero(before.kind == 1)),
            "top_gmv": sorted(brand_gmv.values(), reverse=True)}


def test_state_at_a_moment_equals_a_fold_of_everything_before_it(tmp_path, capsys):
    run_dir = replay(tmp_path, "run", "--scale", "1", "--snapshot-every", "65536")
    capsys.readouterr()
    milestones = [orjson.loads(x) for x in (run_dir / "milestones.jsonl").read_bytes().splitlines()]
    middle = milestones[len(milestones) // 2]
    at = middle["event_time"]  # the crossing order's own time: that order is not yet folded
    expected = fold_before(run_dir, (datetime.fromisoformat(at) - EPOCH) // timedelta(microseconds=1))
    assert 65536 < expected["events"] < orjson.loads((run_dir / "run.json").read_bytes())["events"]
    assert main(["state", str(run_dir), "--at", at]) == 0
    assert re.search(r"from the snapshot at seq [1-9][\d,]* plus", capsys.readouterr().out)
    assert main(["state", str(run_dir), "--at", at, "--json"]) == 0
    state = orjson.loads(capsys.readouterr().out)
    assert {k: state[k] for k in ("events", "gmv_minor", "orders", "refunds")} == \
        {k: expected[k] for k in ("events", "gmv_minor", "orders", "refunds")}
    assert [b["gmv_minor"] for b in state["top_brands"]] == expected["top_gmv"][:len(state["top_brands"])]
    assert state["events"] <= middle["seq"]
    before = [m for m in milestones if m["event_time"] < at]
    assert [m["id"] for m in state["milestones"] if m["kind"] != "rate_record"] == \
        [m["id"] for m in before if m["kind"] != "rate_record"]
    # the same moment read from the log alone (no snapshot) gives the same totals
    for snap in (run_dir / "snapshots").iterdir():
        snap.unlink()
    assert main(["state", str(run_dir), "--at", at, "--json"]) == 0
    again = orjson.loads(capsys.readouterr().out)
    assert (again["events"], again["gmv_minor"], again["orders"], again["top_brands"]) == \
        (state["events"], state["gmv_minor"], state["orders"], state["top_brands"])


def test_export_streams_orders_and_milestones(tmp_path, capsys):
    run_dir = replay(tmp_path, "run", "--scale", "1")
    out = tmp_path / "orders.csv"
    assert main(["export", str(run_dir), "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert len(rows) == summary["events"]
    assert sum(int(r["amount_minor"]) for r in rows) == summary["gmv_minor"]
    assert rows[0]["event_time"].endswith("+08:00") and rows[0]["kind"] == "placed"
    assert main(["export", str(run_dir), "--format", "jsonl", "--what", "milestones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [orjson.loads(x)["id"] for x in lines] == [m["id"] for m in summary["milestones"]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay", "no-such-festival"], "ticker: no-such-festival: no such scenario"),
        (["replay", "smoke", "--scale", "0"], "--scale: expected a number in [1e-06, 10], got 0"),
        (["replay", "smoke", "--speed", "fast"], "--speed: expected max, realtime or a number in "
         "(0, 1_000_000_000], got 'fast'"),
        (["verify", "/nonexistent/run"], "ticker: /nonexistent/run: not a run directory"),
        (["replay", "smoke", "--run-dir", "/nonexistent/run", "--resume"],
         "ticker: /nonexistent/run: not a run directory"),
        (["replay", "smoke", "--mqtt", "mqtt//broken", "--no-log"],
         "ticker: bad MQTT URL 'mqtt//broken': no scheme"),
        (["replay", "smoke", "--mqtt", "mqtt://u:secret@127.0.0.1:1", "--no-log"],
         "ticker: cannot connect to MQTT broker mqtt://u:***@127.0.0.1:1: connection refused"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(argv, message):
    result = subprocess.run([sys.executable, "-m", "ticker", *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr.strip()


def test_resume_refuses_a_run_directory_of_another_run(tmp_path, capsys):
    run_dir = replay(tmp_path, "run", "--scale", "1")
    code = main(["replay", "smoke", "--scale", "0.5", "--mqtt", "none", "--quiet", "--run-dir",
                 str(run_dir), "--resume"])
    assert code == 2
    assert "cannot resume: it recorded scale 1.0, this replay asks for 0.5" in capsys.readouterr().err


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    run_dir = replay(tmp_path, "run", "--scale", "1")
    for argv in (["state", str(run_dir), "--at", "2021-11-11T20:00"],
                 ["export", str(run_dir), "--format", "csv"],
                 ["verify", str(run_dir)]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # like `| head` having exited: the first write fails
        try:
            result = subprocess.run([sys.executable, "-m", "ticker", *argv], stdout=write_end,
                                    stderr=subprocess.PIPE, text=True)
        finally:
            os.close(write_end)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
