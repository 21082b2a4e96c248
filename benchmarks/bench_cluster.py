"""``--cluster local:2`` against one process, side by side in one run (log off).

For each ``--scales`` (default 0.1 and 1) of double11-2020: the single-process replay
(``engine.execute``, no log, no sinks) and the cluster replay on a *warm* local cluster of
``--workers`` processes (started once, and warmed by a small run first: first-touch memory on
these VMs is slow), interleaved ``--repeats`` times. Reports medians, the speed-up, and the
cluster run's phases (check, pass 1, merge on the driver, pass 2).

Then the per-part overhead at ``--overhead-scale``: the same run with 2, 8 and 32 parts.

Fair shares: Linux's autogroup scheduler (``/proc/sys/kernel/sched_autogroup_enabled``) shares
the CPU equally between *sessions*, not processes. On a machine shared with other sessions, two
workers in the benchmark's own session get no more CPU than one process would, and the speed-up
measured would be the share, not the parallelism. So every computing process gets its own
session, as on a machine without autogroups: the single-process run is a ``ticker replay`` child
started with ``start_new_session``, and each worker calls ``os.setsid()`` before the first task.

``--in-process 0.01,0.1`` instead: the scan's phases in one process, in CPU seconds
(``time.process_time``), against the single-process fold of the same scale: what the work costs,
whatever the machine's load.

``--driver-memory 0.01 --parts 8,280`` instead: the driver's peak resident memory (``ru_maxrss``
of a fresh process per part count; a local cluster's scheduler runs in it too) for one run
with each number of parts; ``--plain`` runs the festival without its ``[[dimensions]]`` (to
compare with a ticker that refused them).

Usage: python benchmarks/bench_cluster.py [--scales 0.1,1] [--repeats 1] [--workers 2]
                                         [--overhead-scale 0.1] [--json PATH]
       python benchmarks/bench_cluster.py --in-process 0.01,0.1
       python benchmarks/bench_cluster.py --driver-memory 0.01 --parts 8,280 [--plain]
Takes about (single + cluster) × repeats per scale: ~15 minutes at scale 1 on this machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from ticker.cluster.driver import connect, run_scan
from ticker.engine import tune_allocator
from ticker.scenario import resolve

SCENARIO = "double11-2020"


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime


def faults() -> int:
    """This process's minor page faults so far (each a fresh page the kernel zeroes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def single(scale: float) -> tuple[float, dict]:
    """``ticker replay`` in its own session: (the replay's own wall time, its summary); its CPU
    seconds in ``summary["cpu_s"]``."""
    cpu0 = cpu_s(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "summary.json"
        subprocess.run([sys.executable, "-m", "ticker", "replay", SCENARIO, "--scale", str(scale),
                        "--no-log", "--mqtt", "none", "--quiet", "--summary", str(path)],
                       check=True, start_new_session=True)
        summary = orjson.loads(path.read_bytes())
    summary["cpu_s"] = cpu_s(resource.RUSAGE_CHILDREN) - cpu0
    return summary["wall_s"], summary


def same(summary: dict, result) -> bool:
    st = result.aggregator.state
    zone = resolve(SCENARIO).zone
    return (summary["gmv_minor"], summary["orders"], summary["refunds"], summary["events"]) == \
        (st.gmv_minor, st.orders, st.refunds, st.next_seq) and \
        summary["milestones"] == [m.to_json(zone) for m in st.milestones]


def on_cluster(client, scale: float, parts: int | None = None):
    scenario = resolve(SCENARIO)
    run = f"{SCENARIO}-seed{scenario.seed}-x{scale:g}"
    workers0, faults0, driver0 = client.run(cpu_s), client.run(faults), cpu_s()
    t0 = time.perf_counter()
    result = run_scan(client, scenario, scenario.seed, scale, run, parts)
    wall = time.perf_counter() - t0
    workers1, faults1 = client.run(cpu_s), client.run(faults)
    t = result.timings
    t["driver_cpu_s"] = cpu_s() - driver0
    t["worker_cpu_s"] = sorted(workers1[w] - workers0[w] for w in workers1)
    # where the workers' CPU went: the scan's tasks (their threads' own CPU) and the rest
    # (Dask's event loop, transfers, the check's plan)
    t["pass1_task_cpu_s"], t["pass2_task_cpu_s"] = result.pass1_cost.cpu_s, result.pass2_cost.cpu_s
    t["outside_tasks_cpu_s"] = sum(t["worker_cpu_s"]) - t["pass1_task_cpu_s"] - t["pass2_task_cpu_s"]
    t["worker_faults"] = sum(faults1[w] - faults0[w] for w in faults1)
    t["task_faults"] = result.pass1_cost.faults + result.pass2_cost.faults
    return wall, result


def in_process(scale: float, parts: int = 8) -> None:
    from ticker.aggregate import Aggregator
    from ticker.cluster import scan
    from ticker.engine import ReplayOptions, execute, prepare
    from ticker.scenario import make_plan

    run = prepare(SCENARIO, ReplayOptions(scale=scale, record=False))
    c = time.process_time()
    execute(run, [])
    one = time.process_time() - c
    scenario = resolve(SCENARIO)
    plan = make_plan(scenario, None, scale)
    template = Aggregator(scenario, run.run)
    counters = scan.Counters.build(plan, template)
    c = time.process_time()
    scans = [scan.scan_part(plan, template, counters, p) for p in scan.split(plan, parts)]
    pass1 = time.process_time() - c
    c = time.process_time()
    probes = scan.plan_crossings(scans, template, counters)
    merge = time.process_time() - c
    c = time.process_time()
    crossings = scan.find_crossings(plan, template, probes)
    pass2 = time.process_time() - c
    c = time.process_time()
    merged = scan.assemble(template, [s.summary() for s in scans], crossings)
    merge += time.process_time() - c
    assert run.aggregator.state.differences(merged.state) == []
    estimate = one / ((pass1 + pass2) / 2 + merge)
    print(f"scale {scale:g}: {plan.total_events:,} events, {parts} parts; CPU s: one process "
          f"{one:.2f}; pass 1 {pass1:.2f} ({pass1 / one:.2f}×); pass 2 {pass2:.2f} "
          f"({pass2 / one:.2f}×, {len(probes)} of {plan.chunks} chunks); merge + assembly "
          f"{merge:.2f}; two-core estimate {estimate:.2f}×", flush=True)


def driver_memory(scale: float, parts: int, plain: bool) -> None:
    """One run on a fresh local:2 cluster in this (fresh) process; prints its peak RSS."""
    from ticker.scenario.dimensions import without_dimensions

    scenario = resolve(SCENARIO)
    scenario = without_dimensions(scenario) if plain else scenario
    with connect("local:2") as client:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = run_scan(client, scenario, scenario.seed, scale, f"{SCENARIO}-x{scale:g}", parts)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(orjson.dumps({"parts": result.parts, "peak_rss_mib_before_run": before // 1024,
                        "peak_rss_mib": after // 1024,
                        "events": result.aggregator.state.next_seq}).decode(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="0.1,1")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overhead-scale", type=float, default=0.1)
    ap.add_argument("--json")
    ap.add_argument("--in-process", metavar="SCALES")
    ap.add_argument("--driver-memory", metavar="SCALE", type=float)
    ap.add_argument("--parts", default="8,280")
    ap.add_argument("--plain", action="store_true")
    args = ap.parse_args()
    tune_allocator()
    if args.driver_memory is not None:
        if "," not in args.parts:  # the child: one run
            driver_memory(args.driver_memory, int(args.parts), args.plain)
            return
        print(f"load average {os.getloadavg()}", flush=True)
        for parts in args.parts.split(","):
            subprocess.run([sys.executable, __file__, "--driver-memory", str(args.driver_memory),
                            "--parts", parts, *(["--plain"] if args.plain else [])], check=True)
        print(f"load average {os.getloadavg()}")
        return
    if args.in_process:
        for scale in args.in_process.split(","):
            in_process(float(scale))
        print(f"load average {os.getloadavg()}")
        return
    out: dict = {"load_before": os.getloadavg(), "scales": {}, "overhead": {}}
    with connect(f"local:{args.workers}") as client:
        client.run(os.setsid)  # each worker its own session: see the docstring
        on_cluster(client, 0.01)  # warm: processes up, plans built, memory touched
        for scale in (float(s) for s in args.scales.split(",")):
            ones, many, phases = [], [], []
            for _ in range(args.repeats):
                t, summary = single(scale)
                ones.append(t)
                t, result = on_cluster(client, scale)
                many.append(t)
                phases.append(result.timings | {"parts": result.parts, "probes": result.probes,
                                                "probe_events": result.probe_events})
                assert same(summary, result), "the cluster result differs from one process's"
            cpu = phases[-1]
            row = {"events": summary["events"], "single_cpu_s": summary["cpu_s"],
                   # CPU seconds do not depend on how the machine is shared: the work the cluster
                   # does over the work one process does, and the speed-up on idle cores if the
                   # driver's serial part is its wall time outside the workers
                   "work_ratio": (sum(cpu["worker_cpu_s"]) + cpu["driver_cpu_s"]) / summary["cpu_s"],
                   "idle_speedup": summary["cpu_s"] / (max(cpu["worker_cpu_s"]) + cpu["check"]
                                                       + cpu["merge"]), "single_s": statistics.median(ones),
                   "cluster_s": statistics.median(many), "phases": phases,
                   "speedup": statistics.median(ones) / statistics.median(many)}
            out["scales"][str(scale)] = row
            print(f"scale {scale:g}: {row['events']:,} events; one process {row['single_s']:.1f} s, "
                  f"local:{args.workers} {row['cluster_s']:.1f} s → {row['speedup']:.2f}×; CPU: one "
                  f"process {row['single_cpu_s']:.1f} s, cluster work ratio {row['work_ratio']:.2f}, "
                  f"idle-core speed-up {row['idle_speedup']:.2f}×; "
                  f"phases {phases[-1]}", flush=True)
            print(f"scale {scale:g}, where the workers' CPU went: pass-1 tasks "
                  f"{cpu['pass1_task_cpu_s']:.1f} s ({cpu['pass1_task_cpu_s'] / row['single_cpu_s']:.2f}× "
                  f"one process), pass-2 tasks {cpu['pass2_task_cpu_s']:.1f} s "
                  f"({cpu['probe_events']:,} events regenerated), outside the tasks "
                  f"{cpu['outside_tasks_cpu_s']:.1f} s; page faults: workers {cpu['worker_faults']:,}, "
                  f"in the tasks {cpu['task_faults']:,}", flush=True)
        for parts in (2, 8, 32):
            t, result = on_cluster(client, args.overhead_scale, parts)
            out["overhead"][str(parts)] = result.timings | {"wall_s": t}
            print(f"scale {args.overhead_scale:g}, {parts} parts: {t:.2f} s {result.timings}", flush=True)
    out["load_after"] = os.getloadavg()
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    if args.json:
        with open(args.json, "wb") as fh:
            fh.write(orjson.dumps(out, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
