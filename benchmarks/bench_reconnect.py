"""How long after a broker restart does the publisher re-send what it holds?

    python benchmarks/bench_reconnect.py [--trials 5] [--down 0.5,2,6,12]

A real Mosquitto (persistence on, a free loopback port) and one :class:`Publisher`. Per trial:
the broker is stopped, stays down for D seconds, a milestone is handed to the publisher while
it is down, and the broker is started again. Measured: from the broker listening again to the
milestone's arrival at a subscriber that connects at that moment (retained, so it is seen
whether it came before or after the subscription). Also counted: the publisher's failed
connection attempts while the broker was down (its "reconnecting in" warnings), to show it does
not hammer a broker that stays down.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import Mosquitto, find_binary  # the tests' real broker
from tests.publish.helpers import Listener, make_milestones
from ticker.publish import Publisher
from ticker.publish.topics import RunInfo, milestone_topic


class _Attempts(logging.Handler):
    """Counts the publisher's 'reconnecting in' warnings: one per failed attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "reconnecting in" in record.getMessage():
            self.count += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--down", default="0.5,2,6,12", help="seconds the broker stays down")
    args = parser.parse_args()
    binary = find_binary("mosquitto", "/usr/sbin/mosquitto")
    if binary is None:
        print("mosquitto not found")
        return 1
    attempts = _Attempts()
    logging.getLogger("ticker.publish").addHandler(attempts)
    logging.getLogger("ticker.publish").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(binary, Path(tmp) / "mosquitto").start()
        run = f"reconnect-{os.getpid()}"
        publisher = Publisher(broker.url, RunInfo(run)).start()
        milestones = iter(make_milestones(run, 1000))
        print("| broker down (s) | trials | back → first re-sent milestone: median (s) | max (s) "
              "| failed attempts while down, median |")
        print("|---:|---:|---:|---:|---:|")
        try:
            for down in (float(d) for d in args.down.split(",")):
                waits, tries = [], []
                for _ in range(args.trials):
                    broker.stop()
                    while publisher.connected:  # the loss noticed (bounded by keepalive)
                        time.sleep(0.01)
                    before = attempts.count
                    m = next(milestones)
                    publisher.milestone(m)
                    time.sleep(down)  # the outage being measured
                    broker.start()
                    back = time.monotonic()
                    listener = Listener(broker.port, [milestone_topic(run, m)])
                    listener.wait_topic(milestone_topic(run, m), timeout=60)
                    waits.append(time.monotonic() - back)
                    tries.append(attempts.count - before)
                    listener.close()
                print(f"| {down:g} | {len(waits)} | {statistics.median(waits):.3f} | "
                      f"{max(waits):.3f} | {statistics.median(tries):g} |", flush=True)
        finally:
            publisher.close(2)
            broker.stop()
    load = os.getloadavg()
    print(f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
