"""Resuming an arrival-ordered replay: the stream made from its resume point against from the start.

Usage: python benchmarks/bench_disorder_resume.py [--scenario NAME] [--scale S] [--profile NAME|FILE]
(defaults: double11-2021 at 0.001, the bundled ``realistic`` profile). For a resume at 50 % and
at 99 % of the deliveries, makes the rest of the arrival-ordered stream as ``--resume`` does
(``disorder.resume_point``: from the chunk whose orders can still arrive there) and as it did
before (from the first chunk, skipping what the log holds), in the same run, and checks both
made the same number of deliveries. Prints the load average: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ticker import engine
from ticker.engine import ReplayOptions
from ticker.scenario import make_plan, resolve
from ticker.scenario.disorder import load_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="double11-2021")
    parser.add_argument("--scale", type=float, default=0.001)
    parser.add_argument("--profile", default="realistic")
    args = parser.parse_args(argv)
    plan = make_plan(resolve(args.scenario), None, args.scale)
    profile = load_profile(args.profile)
    total = plan.total_events + profile.duplicates_before(plan.total_events)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.scenario} at "
          f"scale {args.scale:g}, profile {profile.name}: {total:,} deliveries")
    options, resume_point = ReplayOptions(), engine.resume_point
    for fraction in (0.5, 0.99):
        start = int(total * fraction)
        seconds = {}
        for how, point in (("from the start", lambda *_: (0, 0)), ("from the resume point", resume_point)):
            engine.resume_point = point
            began = time.perf_counter()
            made = sum(len(b) for b in engine._generated(plan, start, options, profile))
            seconds[how] = time.perf_counter() - began
            assert made == total - start, (how, made, total - start)
        engine.resume_point = resume_point
        a, b = seconds["from the start"], seconds["from the resume point"]
        print(f"resume at {fraction:.0%}: from the start {a:.2f} s, from the resume point {b:.2f} s "
              f"({a / b:.1f}x)")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
