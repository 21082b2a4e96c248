"""A whole festival end to end: one process against generator workers, side by side.

Usage: python benchmarks/bench_fullscale.py [--scale S] [--workers 1 2] [--repeats N] [--log]
                                            [--against REV]

Runs ``ticker replay double11-2020 --scale S --no-log --mqtt none --quiet`` once per worker
count and repeat (interleaved, so each configuration sees the same machine), each in its own
process, and prints wall time, events/s, each process's CPU seconds (the replay, which folds,
and each generator worker), the memory of all of them, and whether every result — GMV, orders,
refunds, peak, brands over each threshold, every milestone — is the same as the first run's.
``--log`` records the event log instead of ``--no-log`` (in a temporary directory, deleted
afterwards; 39 bytes per event, so mind the disk at large scales). The issue's target: the full
2020 festival (scale 1, 2.37 billion events) in 60 s on 2 cores, under 1 GiB resident.

Memory: the processes share pages (numpy's code, the shared-memory block the workers write
into), so their resident sets do not add up. The figure is the largest sum, over samples every
0.25 s, of each process's PSS (``/proc/PID/smaps_rollup``: a page shared by k processes counts
1/k in each); the sum of each process's own peak (``VmHWM``), which counts shared pages once per
process, is printed beside it as an upper bound. A sample can miss a peak shorter than 0.25 s.

On a shared machine the wall clock says little, so the run also prints "on 2 idle cores, at
least": the largest of the folding process's CPU seconds, any one worker's, and all processes'
CPU seconds over 2, which no schedule of the same work on 2 idle cores can beat.

``--against REV`` runs the package as it was at git revision REV (``git archive`` into a
temporary directory, put first on ``PYTHONPATH``) beside today's, interleaved, and prints the
ratios of their CPU seconds: the side-by-side figure.
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

SAMPLE_S = 0.25


ROOT = Path(__file__).resolve().parent.parent


def source_at(rev: str, work: Path) -> Path:
    """The package's ``src`` as it was at git revision ``rev`` (with the bundled folders beside
    it, where a source checkout finds them)."""
    target = work / f"src-{rev}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src", "scenarios",
                              "disorders"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def run_once(scale: float, workers: int, log: bool, work: Path, src: Path | None = None) -> dict:
    """Wall seconds, CPU seconds (all processes, and per process), peak memory and the summary
    of one replay (of the package in ``src`` when given)."""
    summary_path = work / f"summary-{workers}.json"
    cmd = [sys.executable, "-m", "ticker", "replay", "double11-2020", "--scale", str(scale),
           "--mqtt", "none", "--quiet", "--summary", str(summary_path), "--workers", str(workers)]
    cmd += ["--run-dir", str(work / "run"), "--fsync", "never"] if log else ["--no-log"]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    cpu: dict[int, float] = {}  # pid -> CPU seconds, last seen
    hwm: dict[int, int] = {}  # pid -> VmHWM bytes, last seen
    pss_peak = 0
    while proc.poll() is None:
        pss = 0
        for pid in [proc.pid, *_children(proc.pid)]:
            if (seconds := _cpu_s(pid)) is not None:
                cpu[pid] = seconds
            hwm[pid] = max(hwm.get(pid, 0), _status_bytes(pid, "VmHWM"))
            pss += _pss(pid)
        pss_peak = max(pss_peak, pss)
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"replay failed with exit code {proc.returncode}: {' '.join(cmd)}")
    summary = json.loads(summary_path.read_text())
    shutil.rmtree(work / "run", ignore_errors=True)
    fold = cpu.pop(proc.pid, 0.0)
    others = sorted((s for s in cpu.values() if s >= 0.05), reverse=True)  # the workers
    return {"wall": wall, "cpu": total, "fold_cpu": fold, "worker_cpu": others, "pss": pss_peak,
            "hwm": sum(hwm.values()), "summary": summary}


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_bytes(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pss(pid: int) -> int:
    """Proportional set size in bytes: each resident page divided by the processes sharing it."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = [int(k) for k in kids]
    for k in list(out):
        out += _children(k)
    return out


def idle_bound(run: dict) -> float:
    """The shortest wall time the run's work could take on 2 idle cores."""
    return max(run["fold_cpu"], *run["worker_cpu"], run["cpu"] / 2)


RESULT_KEYS = ("orders", "refunds", "events", "gmv_minor", "peak_orders_per_s", "peak_at",
               "brands_over", "milestones")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--log", action="store_true", help="record the event log too")
    parser.add_argument("--against", metavar="REV", help="also run the package of this git revision")
    args = parser.parse_args(argv)
    print(f"double11-2020 at scale {args.scale}, log {'on' if args.log else 'off'}, "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="bench-fullscale-"))
    versions: dict[str, Path | None] = {"now": None}
    if args.against:
        versions[args.against] = source_at(args.against, work)
    configs = [(version, workers) for workers in args.workers for version in versions]
    runs: dict[tuple[str, int], list[dict]] = {config: [] for config in configs}
    reference = None
    try:
        for _ in range(args.repeats):
            for version, workers in configs:
                r = run_once(args.scale, workers, args.log, work, versions[version])
                summary = r["summary"]
                result = {k: summary[k] for k in RESULT_KEYS}
                reference = reference or result
                same = result == reference
                runs[version, workers].append(r)
                events = summary["events"]
                bound = idle_bound(r)
                workers_cpu = " + ".join(f"{w:.1f}" for w in r["worker_cpu"]) or "none"
                print(f"  {version} workers {workers}: {events:,} events in {r['wall']:.1f} s wall "
                      f"({events / r['wall'] / 1e6:.1f} M events/s); CPU {r['cpu']:.1f} s: the "
                      f"folding process {r['fold_cpu']:.1f} s, workers {workers_cpu} s -> on 2 "
                      f"idle cores at least {bound:.1f} s ({events / bound / 1e6:.1f} M events/s); "
                      f"memory: peak PSS {r['pss'] / 2**20:,.0f} MiB (sum of VmHWM "
                      f"{r['hwm'] / 2**20:,.0f} MiB); results "
                      f"{'identical' if same else 'DIFFERENT'}", flush=True)
                if not same:
                    return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for (version, workers), rows in runs.items():
        wall = statistics.median(r["wall"] for r in rows)
        print(f"{version} workers {workers}: median {wall:.1f} s wall, CPU "
              f"{statistics.median(r['cpu'] for r in rows):.1f} s (folding process "
              f"{statistics.median(r['fold_cpu'] for r in rows):.1f} s), on 2 idle cores at least "
              f"{statistics.median(idle_bound(r) for r in rows):.1f} s; peak PSS "
              f"{max(r['pss'] for r in rows) / 2**20:,.0f} MiB")
    if args.against:
        for workers in args.workers:
            now, then = runs["now", workers], runs[args.against, workers]
            print(f"workers {workers}, {args.against} / now: CPU "
                  f"{_ratio(then, now, lambda r: r['cpu']):.2f}x, folding process "
                  f"{_ratio(then, now, lambda r: r['fold_cpu']):.2f}x, on 2 idle cores "
                  f"{_ratio(then, now, idle_bound):.2f}x, peak PSS "
                  f"{_ratio(then, now, lambda r: r['pss']):.2f}x")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def _ratio(a: list[dict], b: list[dict], key) -> float:
    return statistics.median(key(r) for r in a) / statistics.median(key(r) for r in b)


if __name__ == "__main__":
    sys.exit(main())
