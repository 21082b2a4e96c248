"""Milestone latency on the big screen: from the engine handing a milestone to the publisher to
the browser painting it in the feed (Mosquitto -> ticker screen -> Server-Sent Events -> Chromium).

    python benchmarks/bench_screen.py [--scenario smoke] [--speed 30] [--runs 3]

Each run replays the scenario in real time × speed (so milestones arrive as they would live, not
in one burst) to a private Mosquitto on loopback, with the screen and a headless Chromium on the
same machine; both ends are read on this machine's clock (``time.time()`` in Python,
``performance.timeOrigin + performance.now()`` in the page, at the animation frame that paints the
milestone). Prints the median, p99 and max over every milestone of every run, and the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from screen_tools import (
    ReplayThread,
    browser_page,
    describe,
    latencies_ms,
    local_mosquitto,
    percentile,
    start_screen,
)

FINISHED = "(n) => document.querySelectorAll('#feed > li').length >= n"


async def one_run(url: str, scenario: str, speed: float) -> tuple[list[float], list[float]]:
    replay = ReplayThread(scenario, url, speed=speed)
    screen = start_screen(url, replay.run.run)
    at_server: dict[str, float] = {}

    def note(update) -> None:
        if update is not None and update.kind == "milestone":
            at_server.setdefault(update.data["id"], time.time())

    screen.on_update = note
    try:
        async with browser_page(screen.url) as page:
            await page.until("() => window.tickerScreen.opens >= 1")
            replay.start()
            summary = await asyncio.to_thread(replay.join, 600)
            await page.until(FINISHED, len(summary["milestones"]), timeout=120)
            await page.until("(n) => Object.keys(window.tickerScreen.shownAt).length >= n",
                             len(summary["milestones"]))
            inserted = latencies_ms(replay.times.at, await page.shown_at("inserted"))
            print(f"  into the DOM: {describe(inserted)}")
            return (latencies_ms(replay.times.at, await page.shown_at()),
                    latencies_ms(replay.times.at, at_server))
    finally:
        screen.stop_thread()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="smoke")
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1/5/15 min) on {os.cpu_count()} cores")
    everything: list[float] = []
    server_part: list[float] = []
    for i in range(args.runs):  # a fresh broker each run: no retained milestones of the last one
        with tempfile.TemporaryDirectory() as tmp, local_mosquitto(Path(tmp)) as url:
            values, to_server = asyncio.run(one_run(url, args.scenario, args.speed))
        print(f"run {i + 1}: to the page {describe(values)}; of which to the screen server "
              f"(publisher, broker, subscriber) {describe(to_server)}")
        everything += values
        server_part += to_server
    print(f"all runs, to the page: {describe(everything)} (p90 {percentile(everything, 90):.1f} ms)")
    print(f"all runs, to the screen server: {describe(server_part)}")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
