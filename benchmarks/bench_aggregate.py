"""Aggregator throughput against the per-event Python fold, side by side in one run.

Usage: python benchmarks/bench_aggregate.py [EVENTS] [REPEATS]
(defaults: 50,000,000 events, 5 repeats). ``ticker bench`` runs the same measurement with
smaller defaults; see ticker/bench.py for how the stream is made.
"""

from __future__ import annotations

import sys

from ticker.cli import main

if __name__ == "__main__":
    events = sys.argv[1] if len(sys.argv) > 1 else "50000000"
    repeats = sys.argv[2] if len(sys.argv) > 2 else "5"
    raise SystemExit(main(["bench", "--events", events, "--repeats", repeats]))
