"""Generator throughput: events per second on one core, at the default batch size.

Usage: python benchmarks/bench_generate.py [--scenario NAME] [--scale S] [--repeat N]
                                           [--against REV]

Each repetition times ``generate(scenario, scale=S)`` end to end (the plan, every chunk, and the
cut into batches of ``DEFAULT_BATCH_EVENTS``), consuming the batches without keeping them.
The plan's share is shown separately: it is O(seconds + brands), paid once per run. The target
is 30 million events/s for double11-2021 at scale 0.01 (issue 14). The machine is shared: the
rate is also given per CPU second of this process (``time.process_time``), which other
processes' load moves much less than the wall clock; quote the median of several repetitions.

``--against REV`` also loads ``src/ticker/scenario/generate.py`` as it was at git revision REV
(with today's rest of the package) and alternates the two in this process, repetition by
repetition, checking that both make the same events: the ratio of their CPU rates is the
side-by-side figure, which load moves far less than either rate.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from _common import one_core

from ticker.scenario import make_plan, resolve
from ticker.scenario.generate import DEFAULT_BATCH_EVENTS

TARGET_EVENTS_PER_S = 30e6
ROOT = Path(__file__).resolve().parent.parent


def generator_at(rev: str) -> ModuleType:
    """The generator module as it was at ``rev``, imported under another name."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/ticker/scenario/generate.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-generate-")) / "generate_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("generate_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def timed(generate, scenario, scale: float) -> tuple[int, float, float, str]:
    """Events, wall s, CPU s and a digest of the stream (the last batch and the event count)."""
    t0, c0 = time.perf_counter(), time.process_time()
    events, last = 0, None
    for batch in generate(scenario, scale=scale):
        events += len(batch)
        last = batch
    total_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    h = hashlib.sha256(str(events).encode())
    if last is not None:
        h.update(last.to_frame())
    return events, total_s, cpu_s, h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="double11-2021")
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="also time the generator of this git revision")
    args = parser.parse_args(argv)
    one_core()
    scenario = resolve(args.scenario)
    from ticker.scenario import generate

    versions = {"now": generate}
    if args.against:
        versions[args.against] = generator_at(args.against).generate

    print(f"generate({args.scenario}, scale={args.scale}), batch size {DEFAULT_BATCH_EVENTS:,}, "
          f"one core (cpu {sorted(os.sched_getaffinity(0))[0]})")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'run':>4} {'version':>10} {'events':>12} {'plan s':>8} {'total s':>8} "
          f"{'M events/s':>11} {'per CPU s':>10}")
    rates: dict[str, list[float]] = {v: [] for v in versions}
    cpu_rates: dict[str, list[float]] = {v: [] for v in versions}
    digests: dict[str, str] = {}
    for run in range(1, args.repeat + 1):
        for version, gen in versions.items():
            t0 = time.perf_counter()
            make_plan(scenario, scale=args.scale)
            plan_s = time.perf_counter() - t0
            events, total_s, cpu_s, digest = timed(gen, scenario, args.scale)
            digests.setdefault(version, digest)
            rates[version].append(events / total_s)
            cpu_rates[version].append(events / cpu_s)
            print(f"{run:>4} {version:>10} {events:>12,} {plan_s:>8.3f} {total_s:>8.3f} "
                  f"{rates[version][-1] / 1e6:>11.2f} {cpu_rates[version][-1] / 1e6:>10.2f}")
    for version in versions:
        median = statistics.median(rates[version])
        print(f"{version}: median {median / 1e6:.2f} M events/s (min {min(rates[version]) / 1e6:.2f}, "
              f"max {max(rates[version]) / 1e6:.2f}), {statistics.median(cpu_rates[version]) / 1e6:.2f} "
              f"M per CPU second; target {TARGET_EVENTS_PER_S / 1e6:.0f} M: "
              f"{'met' if median >= TARGET_EVENTS_PER_S else 'NOT met'}")
    if args.against:
        ratio = statistics.median(cpu_rates["now"]) / statistics.median(cpu_rates[args.against])
        same = len(set(digests.values())) == 1
        print(f"now / {args.against}: {ratio:.2f}x per CPU second (medians); streams "
              f"{'identical' if same else 'DIFFERENT'}")
        if not same:
            return 1
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
