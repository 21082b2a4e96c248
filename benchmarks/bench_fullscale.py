"""A whole festival end to end: one process against generator workers, side by side.

Usage: python benchmarks/bench_fullscale.py [--scale S] [--workers 1 2] [--repeats N] [--log]

Runs ``ticker replay double11-2020 --scale S --no-log --mqtt none --quiet`` once per worker
count and repeat (interleaved, so each configuration sees the same machine), each in its own
process, and prints wall time, events/s, peak resident set (the largest of the replay and its
generator workers) and whether every result — GMV, orders, refunds, peak, brands over each
threshold, every milestone — is the same as the first run's. ``--log`` records the event log
instead of ``--no-log`` (in a temporary directory, deleted afterwards; ~33 bytes per event, so
mind the disk at large scales). The issue's target: the full 2020 festival (scale 1, 2.32
billion orders) in 60 s on 2 cores, under 1 GiB resident.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(scale: float, workers: int, log: bool, work: Path) -> dict:
    """Wall seconds, CPU seconds (all processes, and the folding process alone), peak RSS in
    bytes (replay and its workers) and the summary of one replay."""
    summary_path = work / f"summary-{workers}.json"
    cmd = [sys.executable, "-m", "ticker", "replay", "double11-2020", "--scale", str(scale),
           "--mqtt", "none", "--quiet", "--summary", str(summary_path), "--workers", str(workers)]
    cmd += ["--run-dir", str(work / "run"), "--fsync", "never"] if log else ["--no-log"]
    # /usr/bin/time -v reports the largest child's peak RSS; the workers are children too, so
    # read each process's VmHWM from /proc while it runs instead.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = fold_cpu = 0
    while proc.poll() is None:
        peak = max(peak, _tree_peak_rss(proc.pid))
        fold_cpu = max(fold_cpu, _cpu_s(proc.pid))
        time.sleep(0.25)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"replay failed with exit code {proc.returncode}: {' '.join(cmd)}")
    summary = json.loads(summary_path.read_text())
    shutil.rmtree(work / "run", ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "fold_cpu": fold_cpu, "peak": peak, "summary": summary}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_peak_rss(pid: int) -> int:
    """Sum of VmHWM (peak resident) over the process and its children, in bytes."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = [int(k) for k in kids]
    for k in list(out):
        out += _children(k)
    return out


RESULT_KEYS = ("orders", "refunds", "events", "gmv_minor", "peak_orders_per_s", "peak_at",
               "brands_over", "milestones")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--log", action="store_true", help="record the event log too")
    args = parser.parse_args(argv)
    print(f"double11-2020 at scale {args.scale}, log {'on' if args.log else 'off'}, "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="bench-fullscale-"))
    runs: dict[int, list[dict]] = {w: [] for w in args.workers}
    reference = None
    try:
        for _ in range(args.repeats):
            for workers in args.workers:
                r = run_once(args.scale, workers, args.log, work)
                summary = r["summary"]
                result = {k: summary[k] for k in RESULT_KEYS}
                reference = reference or result
                same = result == reference
                runs[workers].append(r)
                events = summary["events"]
                # On an idle 2-core machine the run cannot be shorter than the folding process's
                # CPU time, nor than all processes' CPU time over 2 cores.
                bound = max(r["fold_cpu"], r["cpu"] / 2)
                print(f"  workers {workers}: {events:,} events in {r['wall']:.1f} s "
                      f"({events / r['wall'] / 1e6:.1f} M events/s); CPU {r['cpu']:.1f} s, of it "
                      f"the folding process {r['fold_cpu']:.1f} s -> on 2 idle cores >= "
                      f"{bound:.1f} s ({events / bound / 1e6:.1f} M events/s); peak RSS "
                      f"{r['peak'] / 2**20:,.0f} MiB; results {'identical' if same else 'DIFFERENT'}",
                      flush=True)
                if not same:
                    return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(r["wall"] for r in runs[args.workers[0]])
    for workers, rows in runs.items():
        wall = statistics.median(r["wall"] for r in rows)
        print(f"workers {workers}: median {wall:.1f} s wall, {base / wall:.2f}× workers "
              f"{args.workers[0]}; median CPU {statistics.median(r['cpu'] for r in rows):.1f} s; "
              f"peak RSS {max(r['peak'] for r in rows) / 2**20:,.0f} MiB")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
