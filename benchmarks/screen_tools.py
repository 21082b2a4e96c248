"""Driving the big screen in a real browser: shared by the tests (``tests/screen``), the latency
benchmark (``bench_screen.py``) and the README's screenshot (``screen_shot.py``).

Debian's Chromium is driven by Playwright's async API with ``executable_path`` (``playwright
install`` downloads a browser and cannot work offline). A replay runs in-process on a thread,
publishing to a real broker, while the :class:`ScreenServer` folds what the broker says and the
page draws it; :class:`PublishTimes` notes the wall-clock moment the engine hands each milestone
to the publisher, and the page notes when it painted it (``window.tickerScreen.shownAt``), both
on this machine's clock.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ticker.engine import ReplayOptions, execute, prepare
from ticker.publish.sink import connect
from ticker.screen import ScreenServer

#: Where Debian puts Chromium (``apt-get install chromium``).
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return next((c for c in CHROMIUM_CANDIDATES if os.access(c, os.X_OK)), None)


@contextlib.asynccontextmanager
async def browser_page(url: str, *, width: int = 1600, height: int = 900,
                       scale: float = 1.0) -> AsyncIterator[ScreenPage]:
    """A headless Chromium page on ``url``; every page error, console error and dialog is kept."""
    from playwright.async_api import async_playwright

    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium not found (apt-get install chromium)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = await browser.new_context(viewport={"width": width, "height": height},
                                                device_scale_factor=scale,
                                                reduced_motion="no-preference")
            page = await context.new_page()
            screen = ScreenPage(page)
            page.on("pageerror", lambda exc: screen.errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: msg.type == "error" and screen.console.append(msg.text))
            page.on("dialog", screen._on_dialog)
            await page.goto(url)
            yield screen
        finally:
            await browser.close()


@dataclass
class ScreenPage:
    """The page, and what it said besides drawing."""

    page: object
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    async def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def until(self, predicate: str, arg=None, timeout: float = 30.0) -> None:
        """Wait (Playwright's wait_for_function, no sleeping) until ``predicate(arg)`` holds."""
        await self.page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling="raf")

    async def js(self, expression: str, arg=None):
        return await self.page.evaluate(expression, arg)

    async def gmv_minor(self) -> int | None:
        text = await self.page.get_attribute("#gmv", "data-minor")
        return int(text) if text else None

    async def feed_ids(self) -> list[str]:
        return await self.js("() => [...document.querySelectorAll('#feed > li')].map(li => li.dataset.id)")

    async def shown_at(self, moment: str = "painted") -> dict[str, float]:
        """Milestone id -> epoch seconds when the page painted it (or ``inserted`` it into the
        DOM, the animation frame before)."""
        shown = await self.js("() => window.tickerScreen.shownAt")
        return {k: v[moment] / 1000.0 for k, v in shown.items()}

    async def screenshot(self, path: Path | None = None) -> bytes:
        return await self.page.screenshot(path=str(path) if path else None, full_page=False)


class PublishTimes:
    """An engine sink (put it before the MQTT sink) noting when each milestone is published."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def start(self, run) -> None: pass
    def tick(self, tick) -> None: pass
    def finish(self, summary) -> None: pass
    def close(self) -> None: pass

    def milestones(self, found) -> None:
        now = time.time()
        for m in found:
            self.at.setdefault(m.id, now)


class ReplayThread:
    """``ticker replay`` in-process on a thread, publishing to ``url``; ``summary`` when done."""

    def __init__(self, scenario: str, url: str, *, speed: float | None, scale: float | None = None,
                 tick_hz: float = 10.0, extra_sinks: list | None = None,
                 last_sinks: list | None = None, batch_size: int = 1 << 14) -> None:
        # small batches: a tick (and a pause) every few thousand events, not every million
        self.run = prepare(scenario, ReplayOptions(record=False, speed=speed, scale=scale,
                                                   tick_hz=tick_hz, batch_size=batch_size))
        self.times = PublishTimes()
        self.mqtt = connect(self.run, url, tick_hz=tick_hz)
        self.sinks = [self.times, *(extra_sinks or []), self.mqtt, *(last_sinks or [])]
        self.summary: dict | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="replay", daemon=True)

    def _main(self) -> None:
        try:
            self.summary = execute(self.run, self.sinks).to_json()
        except BaseException as exc:
            self.error = exc
        finally:
            self.mqtt.close()

    def start(self) -> ReplayThread:
        self._thread.start()
        return self

    def join(self, timeout: float = 120.0) -> dict:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the replay of {self.run.run} did not finish in {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


def start_screen(url: str, run: str | None = None) -> ScreenServer:
    """The screen on a free loopback port, on its own thread."""
    return ScreenServer(url, run=run, port=0).start_in_thread()


def latencies_ms(published: dict[str, float], shown: dict[str, float]) -> list[float]:
    """Publication to paint, per milestone shown, in milliseconds."""
    return [(shown[k] - published[k]) * 1000.0 for k in published if k in shown]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def describe(values: list[float]) -> str:
    return (f"n={len(values)} median {statistics.median(values):.1f} ms, "
            f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms")


def ink_fraction(png: bytes) -> float:
    """The share of the picture that is bright (luminance over 140 of 255): text, bars, lines.
    The dark background and its gradients are not ink, so a blank page scores about 0."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L").resize((400, 225))
    histogram = image.histogram()
    return sum(histogram[141:]) / (400 * 225)


class ReplayStopped(Exception):
    """Raised inside the replay by :class:`Stopper` when the caller has seen enough."""


class Stopper:
    """An engine sink that ends the replay at its next batch once :meth:`stop` is called."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def start(self, run) -> None: pass
    def tick(self, tick) -> None: pass
    def milestones(self, found) -> None: pass
    def finish(self, summary) -> None: pass
    def close(self) -> None: pass

    def orders(self, batch) -> None:  # an OrderSink: called with every folded batch
        if self.stopping.is_set():
            raise ReplayStopped


class PauseAt:
    """An engine sink (put it last) that holds the replay once event time reaches ``at_us``,
    until :meth:`release`: the page then shows one moment, still, for a screenshot."""

    def __init__(self, at_us: int) -> None:
        self.at_us = at_us
        self.reached = threading.Event()
        self._release = threading.Event()

    def release(self) -> None:
        self._release.set()

    def start(self, run) -> None: pass
    def milestones(self, found) -> None: pass
    def finish(self, summary) -> None: pass
    def close(self) -> None: pass

    def tick(self, tick) -> None:
        if tick.event_time_us >= self.at_us and not self.reached.is_set():
            self.reached.set()
            self._release.wait()


@contextlib.contextmanager
def local_mosquitto(workdir: Path):
    """A Mosquitto on a free loopback port for scripts (the tests use their own fixtures)."""
    import socket
    import subprocess

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)  # poll interval; the connect is the check
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
