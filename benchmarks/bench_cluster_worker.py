"""What a Dask worker's task thread costs the scan, against the same work in a plain main thread.

The scan's pass 1 (``scan.scan_parts``) and a pass-2 search (``scan.find_crossings``, one probe
on every fourth chunk) over double11-2020's biggest chunks at scale 1 (``--chunks`` from
``--first``: by default 200 chunks around the 583,000-orders/s peak, 63 M events, chunks up to
600,000 events), ``--repeats`` times in one process: in the main thread (``main``), in a
``threading.Thread`` (``thread``), or as a task on a fresh ``local:1`` Dask cluster (``dask``).
Each line gives the thread's CPU seconds and minor page faults (``getrusage(RUSAGE_THREAD)``),
which the machine's load distorts far less than wall time.

``--top-pad MiB`` sets glibc's ``M_TOP_PAD`` after ``engine.tune_allocator()`` (0.125 is
glibc's default, what tune_allocator set before it set 64): a thread's own malloc arena unmaps a
64 MiB heap as soon as it falls empty unless the pad is as large as a heap.

Usage: python benchmarks/bench_cluster_worker.py {main,thread,dask} [--top-pad MiB]
                                                [--first 13245] [--chunks 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import threading
import time


def work(first: int, chunks: int, repeats: int, top_pad_mib: float | None) -> list[str]:
    from ticker.aggregate import Aggregator
    from ticker.cluster import scan
    from ticker.engine import tune_allocator
    from ticker.scenario import make_plan, resolve

    tune_allocator()
    if top_pad_mib is not None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-2, int(top_pad_mib * (1 << 20)))  # M_TOP_PAD
    scenario = resolve("double11-2020")
    plan = make_plan(scenario, None, 1.0)
    template = Aggregator(scenario, "bench")
    counters = scan.Counters.build(plan, template)
    pieces = [scan.Piece(c, int(plan.chunk_seq[c]), int(plan.chunk_seq[c + 1]))
              for c in range(first, first + chunks)]
    watched = int(counters.entities[0])
    probes = [scan.Probe([p], None, {}, {watched: 0}) for p in pieces[::4]]
    out = [f"{sum(p.hi - p.lo for p in pieces):,} events"]
    for _ in range(repeats):
        for name, step in (("pass 1", lambda: scan.scan_parts(plan, template, counters, [pieces])),
                           ("pass 2", lambda: scan.find_crossings(plan, template, probes))):
            use0, cpu0 = resource.getrusage(resource.RUSAGE_THREAD), time.thread_time()
            step()
            use1 = resource.getrusage(resource.RUSAGE_THREAD)
            out.append(f"{name} {time.thread_time() - cpu0:.2f} CPU s, "
                       f"{use1.ru_minflt - use0.ru_minflt:,} faults")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("where", choices=["main", "thread", "dask"])
    ap.add_argument("--top-pad", type=float, metavar="MiB")
    ap.add_argument("--first", type=int, default=13245)
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    job = (args.first, args.chunks, args.repeats, args.top_pad)
    if args.where == "main":
        lines = work(*job)
    elif args.where == "thread":
        box: dict[str, list[str]] = {}
        t = threading.Thread(target=lambda: box.setdefault("out", work(*job)))
        t.start()
        t.join()
        lines = box["out"]
    else:
        import dask
        import distributed

        from ticker.cluster.driver import QUIET_LOCAL_CLUSTER

        with dask.config.set(QUIET_LOCAL_CLUSTER), contextlib.ExitStack() as stack:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR))
            client = stack.enter_context(distributed.Client(cluster))
            client.run(os.setsid)  # its own autogroup, as bench_cluster.py's workers
            lines = client.submit(work, *job, pure=False).result()
    print(f"{args.where}, top pad {args.top_pad if args.top_pad is not None else 64} MiB, "
          f"{lines[0]}: " + "; ".join(lines[1:]) + f"; load average {os.getloadavg()[0]:.1f}",
          flush=True)


if __name__ == "__main__":
    main()
