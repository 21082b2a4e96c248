"""The README's picture of the big screen: a real replay, a real broker, Debian's Chromium.

    python benchmarks/screen_shot.py [--scenario double11-2021] [--speed 20000]
        [--at 2021-11-11T00:30] [--out docs/screen.png]

Replays the scenario (in-process, publishing to a private Mosquitto), serves the screen, waits
until the page's event time reaches ``--at`` with no banner over it, and saves the page. The
tests take their screenshots with the same functions (``screen_tools``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

from screen_tools import (
    PauseAt,
    ReplayStopped,
    ReplayThread,
    Stopper,
    browser_page,
    ink_fraction,
    local_mosquitto,
    start_screen,
)


async def shoot(url: str, scenario: str, speed: float, at: str, out: Path, width: int,
                height: int, scale: float | None) -> None:
    from ticker.clock import parse_time
    from ticker.scenario import resolve

    stopper = Stopper()
    pause = PauseAt(parse_time(at, resolve(scenario).zone))
    replay = ReplayThread(scenario, url, speed=speed, scale=scale, extra_sinks=[stopper],
                          last_sinks=[pause])
    screen = start_screen(url, replay.run.run)
    try:
        async with browser_page(screen.url, width=width, height=height) as page:
            replay.start()
            await asyncio.to_thread(pause.reached.wait)
            # the held tick is on the page, the counter has rolled onto it, no banner covers it
            await page.until("() => { const s = window.tickerScreen; return s.tick && "
                             "s.tick.gmv_minor === Number(document.getElementById('gmv')"
                             ".dataset.minor) && document.getElementById('banner').hidden; }",
                             timeout=120)
            png = await page.screenshot(out)
            print(f"wrote {out} ({len(png):,} bytes, {ink_fraction(png):.1%} ink) at "
                  f"event time {await page.js('() => window.tickerScreen.tick.event_time')}")
    finally:
        stopper.stop()
        pause.release()
        with contextlib.suppress(ReplayStopped):
            replay.join(120)
        screen.stop_thread()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="double11-2021")
    parser.add_argument("--speed", type=float, default=20000.0)
    parser.add_argument("--scale", type=float, default=None)
    parser.add_argument("--at", default="2021-11-11T00:30", help="event time prefix to reach")
    parser.add_argument("--out", type=Path, default=Path("docs/screen.png"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--mqtt", help="use this broker instead of a private Mosquitto")
    args = parser.parse_args()
    if args.mqtt:
        asyncio.run(shoot(args.mqtt, args.scenario, args.speed, args.at, args.out, args.width,
                          args.height, args.scale))
        return 0
    with tempfile.TemporaryDirectory() as tmp, local_mosquitto(Path(tmp)) as url:
        asyncio.run(shoot(url, args.scenario, args.speed, args.at, args.out, args.width,
                          args.height, args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
