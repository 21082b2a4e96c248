"""SIGTERM is handled like SIGINT (flush, checkpoint, ``interrupted``, offline said, exit code
143); a Ctrl-C ignored at start (a background job of a shell without job control) stays ignored;
a full disk — a real small tmpfs — is one line naming the path and the space needed, with no
temporary file left and the run resumable to the same bytes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ticker.cli import main

SMOKE = ["smoke", "--scale", "1", "--snapshot-every", "65536"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run, uninterrupted: what every interrupted and resumed run must equal."""
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    assert main(["replay", *SMOKE, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir)]) == 0
    return run_dir


def _same_run(run_dir: Path, reference: Path) -> None:
    for name in ("milestones.jsonl",):
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes()
    logs = sorted((run_dir / "log").glob("*.seg"))
    assert [p.read_bytes() for p in logs] == [p.read_bytes() for p in
                                              sorted((reference / "log").glob("*.seg"))]
    assert main(["verify", str(run_dir)]) == 0


def _signal_after_first_line(argv: list[str], *signums: int,
                             ctrl_c_ignored: bool = False) -> tuple[int, str]:
    """Run ticker, wait for its first line (a milestone: the run is under way), send ``signums``
    in turn (SIGTERM by default); return (exit code, stderr). ``ctrl_c_ignored``: start it as a
    shell without job control starts ``ticker ... &``, with SIGINT ignored."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ctrl_c_ignored else None
    child = subprocess.Popen([sys.executable, "-m", "ticker", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
    try:
        assert child.stdout.readline()
        for signum in signums or (signal.SIGTERM,):
            child.send_signal(signum)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, err


def test_sigterm_flushes_checkpoints_marks_and_resumes(tmp_path: Path, reference: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    code, err = _signal_after_first_line(
        ["replay", *SMOKE, "--speed", "30", "--mqtt", "none", "--run-dir", str(run_dir)])
    assert code == 143, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticker: interrupted by SIGTERM at seq "), err
    assert "--resume" in lines[0] and "Traceback" not in err
    assert orjson.loads((run_dir / "run.json").read_bytes())["state"] == "interrupted"
    assert list((run_dir / "snapshots").glob("snap-*.npz"))  # checkpointed where it stopped
    assert main(["replay", *SMOKE, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir),
                 "--resume"]) == 0
    _same_run(run_dir, reference)


def test_a_ctrl_c_ignored_at_start_stays_ignored(tmp_path: Path) -> None:
    # Ctrl-C, then SIGTERM: had the run taken the Ctrl-C, the SIGTERM would be its second signal
    # ("stop at once": exit 130); ignored, the SIGTERM is the first, and it stops as one (143).
    code, err = _signal_after_first_line(
        ["replay", *SMOKE, "--speed", "30", "--mqtt", "none", "--run-dir", str(tmp_path / "run")],
        signal.SIGINT, signal.SIGTERM, ctrl_c_ignored=True)
    assert code == 143 and err.startswith("ticker: interrupted by SIGTERM at seq "), err


def test_sigterm_publishes_offline_itself(tmp_path: Path, mosquitto, unique_run: str) -> None:
    run_dir = tmp_path / "run"
    code, err = _signal_after_first_line(
        ["replay", *SMOKE, "--speed", "30", "--mqtt", mosquitto.url, "--run-dir", str(run_dir)])
    assert code == 143, err
    lines = err.splitlines()  # the one line only: no "publisher ... did not stop in time"
    assert len(lines) == 1 and lines[0].startswith("ticker: interrupted by SIGTERM"), err
    run = orjson.loads((run_dir / "run.json").read_bytes())["run"]
    got = subprocess.run(["mosquitto_sub", "-p", str(mosquitto.port), "-h", "127.0.0.1", "-C", "1",
                          "-W", "10", "-t", f"ticker/{run}/status"], capture_output=True, text=True,
                         timeout=30)
    status = orjson.loads(got.stdout)
    assert status["state"] == "offline" and status["reason"] == "interrupted", status


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 3 MiB tmpfs (root only): the run's log (~10 MB) cannot fit."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_is_one_line_leaves_no_temp_file_and_resumes(small_disk: Path, reference: Path,
                                                                  capsys) -> None:
    run_dir = small_disk / "run"
    code = main(["replay", *SMOKE, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1, err
    assert "no space left on the device" in err[0] and str(run_dir) in err[0]
    assert "MiB free, about" in err[0] and "--resume" in err[0]
    leftovers = [p for p in small_disk.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
    assert orjson.loads((run_dir / "run.json").read_bytes())["state"] == "running"
    subprocess.run(["mount", "-o", "remount,size=40m", str(small_disk)], check=True)
    assert main(["replay", *SMOKE, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir),
                 "--resume"]) == 0
    _same_run(run_dir, reference)
