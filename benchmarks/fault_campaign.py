"""A reproducible fault campaign against ``ticker``, as a crashing machine and a hostile user
would run it. Prints a table of trials, passed and failed per kind of fault, and the seed.

    python benchmarks/fault_campaign.py [--seed N] [--kills 30] [--restarts 10] [--damage 60]

* **SIGKILL during a replay**: ``ticker replay smoke`` recording a run is killed at a random
  moment, then resumed to the end. Passes when the resumed run's log segments and milestone file
  are byte-identical to an uninterrupted run's and ``ticker verify`` says ok.
* **SIGKILL during a resume**: the same, but the *resume* is killed at a random moment too,
  then resumed again.
* **broker restart**: a real Mosquitto (persistence on, a free loopback port) is stopped and
  started again at a random moment of a paced replay publishing to it. Passes when the replay
  exits 0 with no milestone undelivered and every milestone of the summary is retained on its
  topic afterwards (read back with ``mosquitto_sub``).
* **damage**: a byte flip, a truncation or a deletion at a random offset of a random file of a
  finished run directory (log segments, run.json, scenario.toml, snapshots, milestones.jsonl,
  summary.json). Passes when ``ticker verify`` exits non-zero with every line naming a file of
  the run (or exits 0 and the damage was meaningless: JSON whitespace, a mid-run snapshot), no
  traceback anywhere; a replay from a damaged log is refused in one line; and when the log is
  whole, ``ticker verify --repair`` makes the run verify again with the original milestones.

Every child is a real process (``python -m ticker``); each trial's random draws come from
``random.Random(seed)``, so a seed repeats the campaign.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import Mosquitto, find_binary  # the tests' real broker

SMOKE = ["smoke", "--scale", "1", "--snapshot-every", "65536", "--batch-size", "16384"]


def ticker(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ticker", *argv], capture_output=True, text=True,
                          timeout=timeout)


def killed_at(argv: list[str], delay: float) -> int:
    """Start ``ticker argv``, SIGKILL it after ``delay`` seconds (if still running)."""
    child = subprocess.Popen([sys.executable, "-m", "ticker", *argv], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        child.wait(delay)  # a random moment of the run: the point of the trial, not a wait for it
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return child.returncode


def same_run(run_dir: Path, reference: Path) -> str | None:
    """None when ``run_dir`` holds the reference run's bytes and verifies; else why not."""
    segments = sorted((run_dir / "log").glob("*.seg"))
    if [p.name for p in segments] != [p.name for p in sorted((reference / "log").glob("*.seg"))]:
        return "segments differ"
    for path in [*segments, run_dir / "milestones.jsonl"]:
        if path.read_bytes() != (reference / path.relative_to(run_dir)).read_bytes():
            return f"{path.name} differs"
    done = ticker("verify", str(run_dir))
    return None if done.returncode == 0 else f"verify: {done.stdout.strip()[:200]}"


def kill_trial(rng: random.Random, root: Path, reference: Path, wall: float, during_resume: bool
               ) -> str | None:
    run_dir = root / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = ["replay", *SMOKE, "--mqtt", "none", "--quiet", "--run-dir", str(run_dir)]
    killed_at(argv, rng.uniform(0.3, wall + 0.7))  # (python's start takes ~0.5 s of it)
    resume = [*argv, "--resume"] if (run_dir / "run.json").exists() else argv
    if during_resume:
        killed_at(resume, rng.uniform(0.3, wall + 0.7))
        resume = [*argv, "--resume"] if (run_dir / "run.json").exists() else argv
    done = ticker(*resume)
    if done.returncode != 0:
        return f"resume exit {done.returncode}: {done.stderr.strip()[:200]}"
    return same_run(run_dir, reference)


def broker_trial(rng: random.Random, root: Path, binary: str) -> tuple[str | None, int]:
    broker = Mosquitto(binary, root / f"mosquitto-{rng.randrange(1 << 30)}").start()
    try:
        run_dir = root / "published"
        shutil.rmtree(run_dir, ignore_errors=True)
        summary = root / "summary.json"
        child = subprocess.Popen([sys.executable, "-m", "ticker", "replay", *SMOKE, "--speed", "120",
                                  "--mqtt", broker.url, "--quiet", "--run-dir", str(run_dir),
                                  "--summary", str(summary)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.8, 2.5))  # a random moment of the ~3 s replay
        broker.stop()
        time.sleep(rng.uniform(0.1, 1.0))  # the broker stays down a random while
        broker.start()
        _, err = child.communicate(timeout=120)
        if child.returncode != 0:
            return f"replay exit {child.returncode}: {err.strip()[:200]}", 1
        result = orjson.loads(summary.read_bytes())
        if result["mqtt"]["undelivered"]:
            return f"undelivered: {result['mqtt']['undelivered'][:3]}", 1
        got = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-v",
                              "-W", "3", "-t", f"ticker/{result['run']}/milestones/#"],
                             capture_output=True, text=True, timeout=30)
        ids = {orjson.loads(line.split(" ", 1)[1])["id"] for line in got.stdout.splitlines() if line}
        want = {m["id"] for m in result["milestones"]}
        if ids != want:
            return f"retained {len(ids)} of {len(want)} milestones", 1
        return None, 1
    finally:
        broker.stop()


def damage_trial(rng: random.Random, root: Path, finished: Path) -> str | None:
    run_dir = root / "damaged"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(finished, run_dir)
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                   if p.is_file() and p.name != "LOCK")
    name = rng.choice(files)
    kind = rng.choice(["flip", "flip", "truncate", "delete"])
    path = run_dir / name
    data = bytearray(path.read_bytes())
    at = rng.randrange(max(1, len(data)))
    what = f"{kind} {name} at {at}"
    if kind == "delete":
        path.unlink()
    elif kind == "truncate":
        path.write_bytes(data[:at])
    else:
        data[at] ^= 1 << rng.randrange(8)
        path.write_bytes(data)
    check = ticker("verify", str(run_dir))
    everything = check.stdout + check.stderr
    if "Traceback" in everything:
        return f"{what}: traceback in verify"
    if check.returncode == 0:
        meaningless = (kind == "flip" and not name.startswith("log/")) or (
            kind == "truncate" and not bytes(data[at:]).strip()) or (
            kind == "delete" and name.startswith("snapshots/") and name != files[-1])
        return None if meaningless else f"{what}: verify says ok"
    lines = [line for line in everything.splitlines() if line]
    if not all(line.startswith((str(run_dir), "ticker: ", "repaired")) for line in lines):
        return f"{what}: a line names no file: {lines[:2]}"
    replay = ticker("replay", str(run_dir), "--mqtt", "none", "--quiet")
    if "Traceback" in replay.stderr:
        return f"{what}: traceback in replay"
    if name.startswith("log/"):
        if replay.returncode != 2 or len(replay.stderr.splitlines()) != 1:
            return f"{what}: replay from the damaged log exit {replay.returncode}"
        return None
    if name.startswith(("snapshots/", "milestones.jsonl", "summary.json")):
        repair = ticker("verify", str(run_dir), "--repair")
        if repair.returncode != 0:
            return f"{what}: repair exit {repair.returncode}: {repair.stdout.strip()[:200]}"
        if (run_dir / "milestones.jsonl").read_bytes() != (finished / "milestones.jsonl").read_bytes():
            return f"{what}: repaired milestones differ"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="repeat a campaign (default: random)")
    parser.add_argument("--kills", type=int, default=30, help="SIGKILL trials of each kind")
    parser.add_argument("--restarts", type=int, default=10, help="broker restart trials")
    parser.add_argument("--damage", type=int, default=60, help="damage trials")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"fault campaign, seed {seed} (repeat: python benchmarks/fault_campaign.py --seed {seed}"
          f" --kills {args.kills} --restarts {args.restarts} --damage {args.damage})", flush=True)
    rng = random.Random(seed)
    rows: list[tuple[str, int, int, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="ticker-campaign-") as tmp:
        root = Path(tmp)
        reference = root / "reference"
        start = time.monotonic()
        done = ticker("replay", *SMOKE, "--mqtt", "none", "--quiet", "--run-dir", str(reference))
        assert done.returncode == 0, done.stderr
        wall = time.monotonic() - start
        print(f"reference run: {wall:.1f} s", flush=True)

        def run(label: str, trials: int, trial: Callable[[], str | None]) -> None:
            failures = []
            for i in range(trials):
                why = trial()
                if why is not None:
                    failures.append(f"trial {i}: {why}")
            rows.append((label, trials, trials - len(failures), failures))
            print(f"  {label}: {trials - len(failures)}/{trials}", flush=True)

        run("SIGKILL during a replay, then resume", args.kills,
            lambda: kill_trial(rng, root, reference, wall, during_resume=False))
        run("SIGKILL during a replay and during its resume", args.kills,
            lambda: kill_trial(rng, root, reference, wall, during_resume=True))
        binary = find_binary("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
        if binary is None:
            print("  broker restarts: SKIPPED, no mosquitto binary", flush=True)
        else:
            run("Mosquitto restart during a published replay", args.restarts,
                lambda: broker_trial(rng, root, binary)[0])
        run("damage to a run directory file", args.damage,
            lambda: damage_trial(rng, root, reference))
    print()
    print(f"| fault (seed {seed}) | trials | passed | failed |")
    print("|---|---:|---:|---:|")
    for label, trials, passed, _ in rows:
        print(f"| {label} | {trials} | {passed} | {trials - passed} |")
    for label, _, _, failures in rows:
        for failure in failures:
            print(f"FAILED {label}: {failure}")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    return 1 if any(f for *_, f in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
