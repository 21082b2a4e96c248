"""Generated damage to every kind of file in a run directory — byte flips, truncations and
deletions at any offset — is named in lines that say which file (``ticker verify``), never a
traceback; a replay from a damaged log refuses in one line unless ``--partial``; and
``verify --repair`` rebuilds every derived file from the log, byte for byte.

The run is built once (smoke at a small scale, its log cut into several segments so that an
earlier segment can be damaged too); each example damages a fresh copy. The CLI runs in-process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker.cli import main
from ticker.eventlog import EventLog
from ticker.events import rebatch

_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
DERIVED = ("milestones.jsonl", "summary.json", "snapshots")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("damage") / "run"
    assert main(["replay", "smoke", "--scale", "0.6", "--mqtt", "none", "--quiet", "--run-dir",
                 str(run_dir), "--snapshot-every", "20000"]) == 0
    # several segments of ~1 MB: the damage may hit a segment other than the last
    _rewrite_log(run_dir, None)
    assert len(list((run_dir / "log").glob("*.seg"))) >= 2
    assert main(["verify", str(run_dir)]) == 0
    return run_dir


def _rewrite_log(run_dir: Path, end: int | None) -> None:
    """The log again, up to ``end``, in records of 8,000 events and segments of 256 KiB."""
    with EventLog(run_dir / "log", readonly=True) as log:
        batches = list(rebatch(log.read(0, end), 8_000))
    shutil.rmtree(run_dir / "log")
    with EventLog(run_dir / "log", fsync="never", segment_bytes=1 << 18) as log:
        for batch in batches:
            log.append(batch)


def _files(run_dir: Path) -> list[str]:
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                  if p.is_file() and p.name != "LOCK")


@st.composite
def damage(draw, files: list[str]):
    name = draw(st.sampled_from(files))
    kind = draw(st.sampled_from(["flip", "flip", "truncate", "delete"]))
    return name, kind, draw(st.floats(0, 1, exclude_max=True)), draw(st.integers(0, 7))


def _apply(path: Path, kind: str, where: float, bit: int) -> bool:
    """Damage the file; False if it changed nothing (an empty file cannot be cut)."""
    data = bytearray(path.read_bytes())
    if kind == "delete":
        path.unlink()
        return True
    if not data:
        return False
    at = int(where * len(data))
    if kind == "truncate":
        path.write_bytes(data[:at])
    else:
        data[at] ^= 1 << bit
        path.write_bytes(data)
    return True


def _verify(run_dir: Path, capsys, *extra: str) -> tuple[int, list[str]]:
    code = main(["verify", str(run_dir), *extra])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.out.splitlines() + out.err.splitlines()


def check_damage(case, finished: Path, tmp_path: Path, capsys) -> None:
    name, kind, where, bit = case
    run_dir = tmp_path / "copy"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(finished, run_dir)
    if not _apply(run_dir / name, kind, where, bit):
        return
    code, lines = _verify(run_dir, capsys)
    if code == 0:  # only a change that means nothing may pass: a flip in JSON whitespace, in a
        # comment of the scenario, in a zip header field; or a mid-run snapshot gone (a cache)
        assert not name.startswith("log/"), (name, kind, where)
        original = (finished / name).read_bytes()
        cut_blank = kind == "truncate" and not original[int(where * len(original)):].strip()
        assert kind == "flip" or cut_blank or (kind == "delete" and name.startswith("snapshots/")
                                               and name != _files(finished)[-1]), (name, kind)
        return
    assert code in (1, 2), lines
    assert lines and all(line.startswith((str(run_dir), "ticker: ")) for line in lines), lines
    if kind != "flip" or name.startswith("log/"):
        named = (name.split("/")[-1], "not a run directory", "missing")
        assert any(any(n in line for n in named) for line in lines), (name, lines)
    for reader in (["state", str(run_dir), "--at", "2021-11-11T00:01"], ["report", str(run_dir)],
                   ["export", str(run_dir), "--format", "jsonl", "--out", str(tmp_path / "o.jsonl")]):
        assert main(reader) in (0, 1, 2), reader  # (an exception would escape main: a traceback)
        out = capsys.readouterr()
        problems = [line for line in out.err.splitlines() if not line.startswith("wrote")]
        assert all(line.startswith("ticker: ") and str(run_dir) in line for line in problems), problems
    # a replay from the damaged directory: whole, or refused in one line, or --partial
    log_damaged = name.startswith("log/") or name in ("run.json", "scenario.toml")
    replay_code = main(["replay", str(run_dir), "--mqtt", "none", "--quiet"])
    err = capsys.readouterr().err.splitlines()
    if log_damaged and name.startswith("log/"):
        assert replay_code == 2 and len(err) == 1 and "--partial" in err[0], err
        summary = tmp_path / "partial.json"
        assert main(["replay", str(run_dir), "--mqtt", "none", "--quiet", "--partial",
                     "--summary", str(summary)]) == 4
        partial = orjson.loads(summary.read_bytes())["partial"]
        assert partial["events"] == partial["missing_from_seq"] < partial["of"]
        capsys.readouterr()
        return
    if name.startswith(DERIVED):  # the log is whole: repair rebuilds the derived files
        assert replay_code == 0, err
        code, lines = _verify(run_dir, capsys, "--repair")
        assert code == 0, lines
        assert any(line.startswith("repaired ") for line in lines), lines
        assert (run_dir / "milestones.jsonl").read_bytes() == (finished / "milestones.jsonl").read_bytes()
        old = orjson.loads((finished / "summary.json").read_bytes())
        new = orjson.loads((run_dir / "summary.json").read_bytes())
        for volatile in ("wall_s", "events_per_s"):
            old.pop(volatile), new.pop(volatile)
        assert new == old
        assert _verify(run_dir, capsys)[0] == 0


@settings(suppress_health_check=_FIXTURES)  # examples: the conftest profile's
@given(data=st.data())
def test_damage_to_any_file_is_named_and_derived_files_are_rebuilt(data, finished: Path, tmp_path: Path,
                                                                   capsys) -> None:
    check_damage(data.draw(damage(_files(finished))), finished, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a long campaign: the suite's 300 s is per test
@settings(max_examples=1_000, suppress_health_check=_FIXTURES)
@given(data=st.data())
def test_a_long_campaign_of_damage(data, finished: Path, tmp_path: Path, capsys) -> None:
    check_damage(data.draw(damage(_files(finished))), finished, tmp_path, capsys)


def test_every_file_kind_is_in_the_fixture(finished: Path) -> None:
    names = _files(finished)
    assert {"run.json", "scenario.toml", "milestones.jsonl", "summary.json"} <= set(names)
    assert sum(n.startswith("log/") for n in names) >= 2
    assert sum(n.startswith("snapshots/") for n in names) >= 2


def test_the_log_ending_at_a_snapshot_is_no_false_alarm(finished: Path, tmp_path: Path, capsys) -> None:
    """A crash right after a checkpoint: the log ends exactly at a mid-run snapshot's seq."""
    run_dir = tmp_path / "crashed"
    shutil.copytree(finished, run_dir)
    seqs = sorted(int(p.stem[5:]) for p in (run_dir / "snapshots").glob("snap-*.npz"))
    cut = next(s for s in seqs if s % 65536 == 0)  # a record boundary, mid-run
    _rewrite_log(run_dir, cut)
    for seq in seqs:
        if seq > cut:
            (run_dir / "snapshots" / f"snap-{seq:020d}.npz").unlink()
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    meta["state"] = "running"
    (run_dir / "run.json").write_bytes(orjson.dumps(meta))
    (run_dir / "summary.json").unlink()
    _, lines = _verify(run_dir, capsys)
    assert not any("snap-" in line for line in lines), lines  # the snapshot is right
    assert main(["replay", "smoke", "--scale", "0.6", "--mqtt", "none", "--quiet", "--run-dir",
                 str(run_dir), "--snapshot-every", "20000", "--resume"]) == 0
    capsys.readouterr()
    assert _verify(run_dir, capsys)[0] == 0
    assert (run_dir / "milestones.jsonl").read_bytes() == (finished / "milestones.jsonl").read_bytes()


def test_a_run_json_that_names_the_other_fold_is_named(finished: Path, tmp_path: Path, capsys) -> None:
    """An imported run (its id is its directory's, whatever its fold) whose run.json gained a
    disorder profile: its snapshots hold the ordered fold's state, compared with the event-time
    fold's. Verify says so in a line (it raised AttributeError: found by mypy)."""
    orders = tmp_path / "orders.csv"
    assert main(["export", str(finished), "--format", "csv", "--out", str(orders)]) == 0
    run_dir = tmp_path / "imported"
    assert main(["import", str(orders), "--scenario", "smoke", "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    meta["disorder"] = {"name": "realistic", "lateness_s": 5.0, "dedup_s": 60.0}
    (run_dir / "run.json").write_bytes(orjson.dumps(meta))
    code, lines = _verify(run_dir, capsys)
    assert code == 1
    assert any("snap-" in line and "kind of state" in line for line in lines), lines


def test_a_half_made_run_directory_is_taken_over(tmp_path: Path, capsys) -> None:
    """A crash between mkdir and run.json (older tickers) left only what creation writes first."""
    for resume in ([], ["--resume"]):
        run_dir = tmp_path / f"half{len(resume)}"
        (run_dir / "snapshots").mkdir(parents=True)
        (run_dir / "scenario.toml").write_text("[festival]\n")
        assert main(["replay", "smoke", "--scale", "0.1", "--mqtt", "none", "--quiet", "--run-dir",
                     str(run_dir), *resume]) == 0
        assert main(["verify", str(run_dir)]) == 0
        capsys.readouterr()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    assert main(["replay", "smoke", "--scale", "0.1", "--mqtt", "none", "--quiet", "--run-dir",
                 str(foreign)]) == 2
    assert "is not a ticker run directory" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "mine"
    assert not list(tmp_path.glob(".*creating*"))  # nothing left beside them
