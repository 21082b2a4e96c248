"""The big screen in a real browser (Debian's Chromium via Playwright) against real replays on a
real Mosquitto: exact GMV, every milestone, a broker and a server going away and coming back,
a brand that is an HTML tag, malformed payloads, the screenshot. Every wait is on page state
(wait_for_function / expect), never a sleep; latency is recorded, never asserted."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
import screen_tools
from paho.mqtt.enums import CallbackAPIVersion
from playwright.async_api import expect

from ticker.scenario import resolve

pytestmark = pytest.mark.network

XSS = "<img src=x onerror=alert(1)>"

FINISHED = """(g) => { const s = window.tickerScreen;
    return s.status && s.status.state === 'finished'
        && document.getElementById('gmv').dataset.minor === String(g); }"""
FEED_HAS = "(n) => document.querySelectorAll('#feed > li').length >= n"


def money_text(minor: int) -> str:
    major, fen = divmod(minor, 100)
    return f"¥{major:,}.{fen:02d}"


async def test_a_replay_on_the_screen_ends_exactly_on_the_summary(
        mosquitto_factory, chromium, screen, record_property) -> None:
    broker = mosquitto_factory()
    replay = screen_tools.ReplayThread("smoke", broker.url, speed=60)  # 300 s of sales in ~5 s
    server = screen(broker.url)
    async with screen_tools.browser_page(server.url) as page:
        await page.until("() => window.tickerScreen.opens >= 1")
        waiting_ink = screen_tools.ink_fraction(await page.screenshot())
        replay.start()
        # mid-festival: the counter is rolling, the board is filling; the page is not blank
        await page.until("() => { const s = window.tickerScreen; return s.tick && s.milestones.size"
                         " >= 10 && document.querySelectorAll('#board > li').length >= 5; }")
        live_ink = screen_tools.ink_fraction(await page.screenshot())
        assert live_ink > max(0.01, 2 * waiting_ink), (waiting_ink, live_ink)
        summary = await asyncio.to_thread(replay.join, 180)
        expected = summary["gmv_minor"]
        ids = {m["id"] for m in summary["milestones"]}
        await page.until(FINISHED, expected)
        await page.until(FEED_HAS, len(ids))

        assert await page.gmv_minor() == expected
        assert await page.page.text_content("#gmv") == money_text(expected)
        assert await page.page.text_content("#run-state") == "FINISHED"
        assert set(await page.feed_ids()) == ids
        seqs = await page.js("() => [...document.querySelectorAll('#feed > li')].map(li => +li.dataset.seq)")
        assert seqs == sorted(seqs, reverse=True)  # newest first
        top = await page.js("() => [...document.querySelectorAll('#board > li')]"
                            ".sort((a, b) => a.dataset.rank - b.dataset.rank)"
                            ".map(li => li.querySelector('.name').textContent)")
        assert top[0] == "Aurora"
        assert "scale" not in (await page.page.text_content("#rate-note"))  # scale 1: nothing to scale
        # the event time as the festival's clock showed it (+08:00), whatever the browser's zone
        last_time = await page.js("() => window.tickerScreen.tick.event_time")
        assert last_time.startswith("2021-11-11T20:0") and last_time.endswith("+08:00")
        assert await page.page.text_content("#event-time") == last_time[11:19]
        assert await page.page.text_content("#event-zone") == "event time · UTC+08:00"
        assert await page.page.text_content("#event-date") == "Thu 11 Nov 2021"
        # big milestones were announced live, each a milestone of the run
        banners = await page.js("() => window.tickerScreen.banners")
        headlines = {m["headline"] for m in summary["milestones"]}
        assert banners and set(banners) <= headlines
        assert await page.page.text_content("#progress-pct") == "100.0 % of the festival's sale time"
        latencies = screen_tools.latencies_ms(replay.times.at, await page.shown_at())
        assert len(latencies) == len(ids)
        record_property("milestone_latency", screen_tools.describe(latencies))
        assert page.errors == [] and page.dialogs == [] and page.console == []

    # a browser that joins after the run gets all of it at once, from the retained topics
    async with screen_tools.browser_page(server.url) as late:
        await late.until(FINISHED, expected)
        await late.until(FEED_HAS, len(ids))
        assert set(await late.feed_ids()) == ids
        assert await late.page.is_hidden("#banner")  # the past is not announced again


async def test_a_broker_restart_shows_reconnecting_then_recovers_with_nothing_missing(
        mosquitto_factory, chromium, screen) -> None:
    broker = mosquitto_factory()
    replay = screen_tools.ReplayThread("smoke", broker.url, speed=30)  # ~10 s
    server = screen(broker.url, run=replay.run.run)
    async with screen_tools.browser_page(server.url) as page:
        await page.until("() => window.tickerScreen.opens >= 1")
        replay.start()
        await page.until("() => window.tickerScreen.milestones.size >= 5")
        await asyncio.to_thread(broker.stop)
        await expect(page.page.locator("#reconnecting")).to_be_visible(timeout=15_000)
        await expect(page.page.locator("#reconnecting-text")).to_contain_text("broker")
        assert await page.page.get_attribute("body", "data-mqtt") == "reconnecting"
        await asyncio.to_thread(broker.start)
        summary = await asyncio.to_thread(replay.join, 180)
        assert summary["mqtt"]["undelivered"] == []
        ids = {m["id"] for m in summary["milestones"]}
        await page.until(FINISHED, summary["gmv_minor"], timeout=60)
        await page.until(FEED_HAS, len(ids))
        await expect(page.page.locator("#reconnecting")).to_be_hidden()
        assert set(await page.feed_ids()) == ids
        history = await page.js("() => window.tickerScreen.linkHistory")
        assert "reconnecting" in history and history[-1] == "connected"
        assert page.errors == []


async def test_the_screen_server_going_away_shows_reconnecting_and_the_page_comes_back(
        mosquitto, chromium, screen, unique_run) -> None:
    from ticker.cli import main

    scenario = resolve("smoke")
    assert main(["replay", "smoke", "--mqtt", mosquitto.url, "--quiet", "--no-log", "--seed", "7",
                 "--tick-hz", "50"]) == 0
    run = f"smoke-seed7-x{scenario.default_scale:g}"
    first = screen(mosquitto.url, run=run)
    async with screen_tools.browser_page(first.url) as page:
        await page.until("() => { const s = window.tickerScreen; return s.status && s.status.state"
                         " === 'finished' && s.milestones.size > 0; }")
        before = await page.feed_ids()
        await asyncio.to_thread(first.stop_thread)
        await expect(page.page.locator("#reconnecting-text")).to_have_text(
            "Reconnecting to the screen server…", timeout=15_000)
        screen(mosquitto.url, run=run, port=first.port)  # the same address again
        await page.until("() => window.tickerScreen.opens >= 2", timeout=30)
        await expect(page.page.locator("#reconnecting")).to_be_hidden()
        assert await page.feed_ids() == before
        assert page.errors == []


def xss_scenario(path: Path) -> Path:
    """The smoke festival with its top brand named like an HTML tag."""
    text = resolve("smoke").text.replace('"Aurora"', f'"{XSS}"').replace("brand:Aurora", f"brand:{XSS}")
    assert text.count(XSS) >= 4
    path.write_text(text, encoding="utf-8")
    return path


async def test_a_brand_named_like_an_html_tag_shows_as_those_characters(
        mosquitto_factory, chromium, screen, tmp_path) -> None:
    broker = mosquitto_factory()
    replay = screen_tools.ReplayThread(str(xss_scenario(tmp_path / "xss.toml")), broker.url, speed=None,
                                       scale=0.5)
    server = screen(broker.url, run=replay.run.run)
    async with screen_tools.browser_page(server.url) as page:
        await page.until("() => window.tickerScreen.opens >= 1")
        replay.start()
        summary = await asyncio.to_thread(replay.join, 180)
        await page.until(FINISHED, summary["gmv_minor"])
        names = await page.js("() => [...document.querySelectorAll('#board .name')].map(n => n.textContent)")
        assert XSS in names
        headlines = await page.js("() => [...document.querySelectorAll('#feed .headline')]"
                                  ".map(n => n.textContent)")
        assert any(h.startswith(XSS) for h in headlines)
        assert await page.js("() => document.querySelectorAll('img').length") == 0
        assert page.dialogs == [] and page.errors == []
        # at scale 0.5 the run emits half the orders: the screen shows full-festival orders/s
        run_rate = await page.js("() => window.tickerScreen.tick.orders_per_s")
        assert await page.page.text_content("#rate") == f"{round(run_rate / 0.5):,}"
        assert (await page.page.text_content("#rate-note")).startswith("scaled to the full festival")


async def test_malformed_payloads_are_counted_and_the_page_keeps_working(
        mosquitto_factory, chromium, screen, unique_run) -> None:
    run = unique_run
    broker = mosquitto_factory()  # a private broker: the count is of this test's payloads only
    server = screen(broker.url, run=run)
    publisher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    good_tick = {"run": run, "event_time": "2021-11-11T00:00:01.000000+08:00", "seq": 1,
                 "gmv_minor": 12_345_678, "gmv": "RMB 123,456.78", "orders": 3, "orders_per_s": 3}
    garbage = [
        ("gmv", b"\xff\xfe not json"),
        ("gmv", b"[1, 2, 3]"),
        ("gmv", orjson.dumps({**good_tick, "gmv_minor": "12345678"})),
        ("gmv", orjson.dumps({**good_tick, "orders_per_s": -1})),
        ("gmv", b'{"event_time": "2021-11-11T00:00:01+08:00", "gmv_minor": 1e400}'),
        ("gmv", orjson.dumps({**good_tick, "event_time": "yesterday"})),
        ("leaderboard", orjson.dumps({"event_time": good_tick["event_time"], "brands": "Apple"})),
        ("leaderboard", orjson.dumps({"event_time": good_tick["event_time"],
                                      "brands": [{"rank": 0, "brand": "A", "gmv_minor": 1, "gmv": "x"}]})),
        ("status", orjson.dumps({"state": "exploded", "scale": 1})),
        ("status", b"[" * 100_000),
        ("milestones/gmv/all/1", orjson.dumps({"id": 1, "headline": None})),
        ("milestones/gmv/all/2", orjson.dumps({"id": "x", "kind": "gmv", "subject": "all",
                                               "threshold_minor": 1, "value_minor": 1, "seq": 1,
                                               "headline": "A" * 5000,
                                               "event_time": "2021-11-11T00:00:00+08:00"})),
    ]
    try:
        async with screen_tools.browser_page(server.url) as page:
            await page.until("() => window.tickerScreen.opens >= 1")
            for rest, payload in garbage:
                publisher.publish(f"ticker/{run}/{rest}", payload, qos=1).wait_for_publish(10)
            publisher.publish(f"ticker/{run}/gmv", orjson.dumps(good_tick), qos=1).wait_for_publish(10)
            await page.until("(g) => document.getElementById('gmv').dataset.minor === String(g)", 12_345_678)
            await page.until("(n) => document.getElementById('diag').dataset.malformed === String(n)",
                             len(garbage))
            assert await page.page.text_content("#gmv") == "¥123,456.78"
            assert re.search(rf"malformed payloads ignored: {len(garbage)}\b",
                             await page.page.text_content("#diag"))
            assert page.errors == [] and await page.js("() => window.tickerScreen.pageErrors") == 0
            # a publisher gone without a goodbye: the broker publishes its will, the page says so
            will = {"run": run, "state": "offline", "scenario": "smoke", "seed": 1, "scale": 1,
                    "currency": "CNY", "zone": "+08:00", "title": "Smoke", "windows": [], "started": ""}
            publisher.publish(f"ticker/{run}/status", orjson.dumps(will), qos=1).wait_for_publish(10)
            await expect(page.page.locator("#run-state")).to_have_text("OFFLINE")
    finally:
        publisher.disconnect()
        publisher.loop_stop()


def _status(run: str, started: str, state: str = "running") -> bytes:
    return orjson.dumps({"run": run, "state": state, "scenario": "smoke", "seed": 1, "scale": 1,
                         "currency": "CNY", "zone": "+08:00", "title": f"Festival {run}",
                         "windows": [], "started": started})


def _board(brands: list[tuple[str, int]]) -> bytes:
    return orjson.dumps({"event_time": "2021-11-11T00:00:01.000+08:00", "brands": [
        {"rank": i, "brand": b, "gmv_minor": g, "gmv": f"RMB {g / 100:,.2f}"}
        for i, (b, g) in enumerate(brands, start=1)]})


async def test_overtakes_move_the_same_rows_and_the_picker_switches_runs(
        mosquitto, chromium, screen, unique_run) -> None:
    old, new = f"{unique_run}-a", f"{unique_run}-b"
    publisher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()

    def publish(topic: str, payload: bytes) -> None:
        publisher.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)

    try:
        publish(f"ticker/{old}/status", _status(old, "2026-11-30T01:00:00+00:00"))
        publish(f"ticker/{old}/leaderboard", _board([("Apple", 900), ("L'Oréal", 800)]))
        server = screen(mosquitto.url)  # no --run: follows the newest
        async with screen_tools.browser_page(f"{server.url}") as page:
            # the shared broker may hold other tests' runs: pick ours by address, then follow
            await page.page.goto(f"{server.url}?run={old}")
            rows = "#board > li"
            await page.until("(n) => document.querySelectorAll('#board > li').length === n", 2)
            apple = page.page.locator(rows, has_text="Apple")
            loreal = page.page.locator(rows, has_text="L'Oréal")
            assert await apple.get_attribute("data-rank") == "1"
            marker = await apple.evaluate("li => { li.dataset.probe = 'same row'; return 1; }")
            publish(f"ticker/{old}/leaderboard", _board([("L'Oréal", 1000), ("Apple", 950)]))
            await expect(loreal).to_have_attribute("data-rank", "1")
            # the row moved (a transform, animated), it was not redrawn: same element, new place
            assert marker == 1 and await apple.get_attribute("data-probe") == "same row"
            assert await apple.get_attribute("data-rank") == "2"
            assert await apple.evaluate("li => li.style.getPropertyValue('--i')") == "1"
            assert "up" in (await loreal.get_attribute("class")).split()
            # the picker lists the run; choosing "newest" follows whatever started last
            await page.until("(r) => [...document.querySelectorAll('#run-picker option')]"
                             ".some(o => o.value === r)", old)
            publish(f"ticker/{new}/status", _status(new, "2999-01-01T00:00:00+00:00"))
            await page.page.select_option("#run-picker", "")
            await expect(page.page.locator("#title")).to_have_text(f"Festival {new}")
            assert "run=" not in page.page.url
            await page.page.select_option("#run-picker", old)
            await expect(page.page.locator("#title")).to_have_text(f"Festival {old}")
            assert page.page.url.endswith(f"?run={old}")
            assert page.errors == []
    finally:
        for run in (old, new):  # leave the shared broker as it was: delete the retained topics
            for rest in ("status", "leaderboard"):
                publisher.publish(f"ticker/{run}/{rest}", b"", qos=1, retain=True).wait_for_publish(10)
        publisher.disconnect()
        publisher.loop_stop()
