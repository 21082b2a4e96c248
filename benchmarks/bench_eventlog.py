"""Event log throughput: append per fsync policy, re-read from a warm page cache, and export.

Usage: python benchmarks/bench_eventlog.py [--scenario NAME] [--scale S] [--record-events N]
                                           [--repeat N] [--dir DIR] [--no-export]

Data: the real generator's stream (``double11-2021`` at scale 0.002, about 5 million events, 200
MB of log), cut into records of ``--record-events`` (default 65,536, as the engine writes them).
Every figure is the median of ``--repeat`` runs on one core; the machine may be shared.

* **append**: a fresh log per run; ``append`` every record, then ``close`` (which syncs).
* **read**: ``EventLog.read()`` of the whole log just written (so in the page cache): every record
  checksummed (CRC-32C) and decoded zero-copy. Target 50 M events/s. Shown beside it: CRC-32C
  alone over the same bytes, to tell whether the checksum is the bottleneck.
* **open**: opening the log (header walk + checksum of the last segment), and ``check="full"``.
* **verify**: ``verify_log`` (checksums and decodes every record, reports problems).
* **export**: ``export_orders`` of the first ``--export-events`` orders per format, to ``--dir``.
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import crc32c
from _common import one_core

from ticker.eventlog import EventLog, verify_log
from ticker.events import rebatch
from ticker.scenario import generate, resolve
from ticker.scenario.brands import catalogue

TARGET_READ_EVENTS_PER_S = 50e6


def _median_of(repeat: int, run: Callable[[], float]) -> tuple[float, float, float]:
    """Median, min and max of ``repeat`` timings (seconds) of ``run``."""
    times = [run() for _ in range(repeat)]
    return statistics.median(times), min(times), max(times)


def _row(what: str, events: int, nbytes: int, timing: tuple[float, float, float], note: str = "") -> None:
    median, fastest, slowest = timing
    print(f"{what:<28} {events / median / 1e6:>10.1f} {events / slowest / 1e6:>7.1f}-"
          f"{events / fastest / 1e6:<7.1f} {nbytes / median / 1e9:>7.2f} {median * 1e3:>9.1f}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="double11-2021")
    parser.add_argument("--scale", type=float, default=0.002)
    parser.add_argument("--record-events", type=int, default=1 << 16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write the logs (default: the temp dir)")
    parser.add_argument("--export-events", type=int, default=1_000_000)
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    one_core()
    scenario = resolve(args.scenario)
    batches = list(rebatch(generate(scenario, scale=args.scale), args.record_events))
    events = sum(len(b) for b in batches)
    work = Path(tempfile.mkdtemp(prefix="bench-eventlog-", dir=args.dir))
    try:
        log_dir = work / "log"

        def append(policy: str) -> float:
            shutil.rmtree(log_dir, ignore_errors=True)
            t0 = time.perf_counter()
            with EventLog(log_dir, fsync=policy) as log:
                for batch in batches:
                    log.append(batch)
            return time.perf_counter() - t0

        print(f"{args.scenario} at scale {args.scale}: {events:,} events in {len(batches):,} records "
              f"of {args.record_events:,}; one core (cpu {sorted(os.sched_getaffinity(0))[0]}); "
              f"median of {args.repeat}; logs in {work}")
        print(f"{'':<28} {'M events/s':>10} {'min-max':>15} {'GB/s':>7} {'median ms':>9}")
        append("never")  # warm-up: allocator, file system
        nbytes = 0
        for policy in ("every", "interval", "never"):
            timing = _median_of(args.repeat, lambda policy=policy: append(policy))
            nbytes = sum(p.stat().st_size for p in log_dir.glob("*.seg"))
            _row(f"append fsync={policy}", events, nbytes, timing)

        with EventLog(log_dir, readonly=True) as log:
            def read() -> float:
                t0 = time.perf_counter()
                count = sum(len(batch) for batch in log.read())
                assert count == events
                return time.perf_counter() - t0

            read()  # warm the page cache
            timing = _median_of(args.repeat, read)
            ok = events / timing[0] >= TARGET_READ_EVENTS_PER_S
            _row("read (CRC + decode)", events, nbytes, timing,
                 f"target {TARGET_READ_EVENTS_PER_S / 1e6:.0f} M: {'met' if ok else 'NOT met'}")

        segments = sorted(log_dir.glob("*.seg"))

        def crc_only() -> float:
            t0 = time.perf_counter()
            for path in segments:
                with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                    crc32c.crc32c(m)
            return time.perf_counter() - t0

        _row("CRC-32C alone, same bytes", events, nbytes, _median_of(args.repeat, crc_only),
             f"hardware: {bool(getattr(crc32c, 'hardware_based', False))}")

        def open_log(check: str) -> float:
            t0 = time.perf_counter()
            EventLog(log_dir, readonly=True, check=check).close()
            return time.perf_counter() - t0

        for check, label in (("tail", "open (headers + last segment)"), ("full", "open check='full'")):
            _row(label, events, nbytes, _median_of(args.repeat, lambda check=check: open_log(check)))

        def verify() -> float:
            t0 = time.perf_counter()
            assert verify_log(log_dir) == []
            return time.perf_counter() - t0

        _row("verify_log", events, nbytes, _median_of(args.repeat, verify))

        if not args.no_export:
            from ticker.export import export_orders

            names = dict(brands=catalogue(scenario).names, platforms=[p for p, _ in scenario.platforms],
                         regions=[r for r, _ in scenario.regions], zone=scenario.zone)
            rows = min(args.export_events, events)
            for fmt in ("csv", "jsonl", "parquet"):
                out = work / f"orders.{fmt}"

                def export(fmt: str = fmt, out: Path = out) -> float:
                    t0 = time.perf_counter()
                    export_orders(log_dir, out, fmt, to_seq=rows, **names)
                    return time.perf_counter() - t0

                try:
                    timing = _median_of(max(1, args.repeat // 2), export)
                except Exception as exc:  # e.g. pyarrow missing: say so, keep the table
                    print(f"{'export ' + fmt:<28} skipped: {exc}")
                    continue
                _row(f"export {fmt}", rows, out.stat().st_size, timing,
                     f"{out.stat().st_size / rows:.0f} bytes/order")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
