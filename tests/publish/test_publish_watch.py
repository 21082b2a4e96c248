"""``run_watch``: what ``ticker watch`` prints, against a real broker."""

from __future__ import annotations

import dataclasses
import io
import random
import threading

import aiomqtt
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.clock import format_time
from ticker.publish import EmbeddedBroker, Publisher, RunInfo, run_watch, topics
from ticker.publish.watch import RetainedMilestones

from .helpers import CST, T0_US, free_port, interrupt_after_first_line, make_milestones

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


class Sink(io.StringIO):
    """A text stream that can be waited on for ``n`` lines (written from another thread)."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self._tty = tty
        self._cond = threading.Condition()

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        with self._cond:
            n = super().write(text)
            self._cond.notify_all()
            return n

    def wait_lines(self, n: int, timeout: float = 15.0) -> list[str]:
        with self._cond:
            assert self._cond.wait_for(lambda: self.getvalue().count("\n") >= n, timeout), (
                f"fewer than {n} lines: {self.getvalue()!r}")
            return self.getvalue().splitlines()


def publish_run(url: str, run: str, n_milestones: int = 3) -> tuple[RunInfo, list]:
    info = RunInfo(run, scenario="double11-2021", seed=3, scale=0.01, zone=CST)
    milestones = make_milestones(run, n_milestones)
    with Publisher(url, info) as publisher:
        publisher.tick(topics.tick_json(info, event_time_us=T0_US + 5_000_000, seq=41,
                                        gmv_minor=123_456_789_00, orders=42, orders_per_s=7))
        publisher.leaderboard(topics.leaderboard_json(info, event_time_us=T0_US,
                                                      brands=[("Apple", 10_000)]))
        for m in milestones:
            publisher.milestone(m)
    return info, milestones


def milestone_line(info: RunInfo, m) -> str:
    when = format_time(m.event_time_us, info.zone, precision="milliseconds").replace("T", " ")
    return f"{when} · {m.headline} · {topics.milestone_value(m, info.currency)}"


def test_milestones_are_one_line_each(mosquitto, unique_run: str) -> None:
    info, milestones = publish_run(mosquitto.url, unique_run)
    out, err = Sink(), Sink()
    code = run_watch(mosquitto.url, run=unique_run, out=out, err=err, max_messages=3)
    assert code == 0 and err.getvalue() == ""
    assert set(out.getvalue().splitlines()) == {milestone_line(info, m) for m in milestones}
    assert "2021-11-11 00:00:02.000+08:00 · Brand 2 is the third brand" in out.getvalue()


def test_json_is_one_object_per_message(mosquitto, unique_run: str) -> None:
    info, milestones = publish_run(mosquitto.url, unique_run)
    out = Sink()
    assert run_watch(mosquitto.url, ["#"], run=unique_run, as_json=True, out=out,
                     max_messages=6) == 0
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    by_topic = {r["topic"]: r for r in records}
    assert set(by_topic) == {topics.status_topic(unique_run), topics.gmv_topic(unique_run),
                             topics.leaderboard_topic(unique_run)} | {
        topics.milestone_topic(unique_run, m) for m in milestones}
    for m in milestones:
        record = by_topic[topics.milestone_topic(unique_run, m)]
        assert record["payload"] == topics.milestone_json(info, m)
        # delivered at the lesser of the published QoS (1) and the watcher's (0: READER_QOS)
        assert record["retain"] is True and record["qos"] == 0
    assert by_topic[topics.status_topic(unique_run)]["payload"]["state"] == "finished"
    assert by_topic[topics.gmv_topic(unique_run)]["payload"]["gmv_minor"] == 123_456_789_00


def test_a_relative_filter_and_the_gmv_line(mosquitto, unique_run: str) -> None:
    publish_run(mosquitto.url, unique_run)
    out = Sink()
    assert run_watch(mosquitto.url, ["gmv"], run=unique_run, out=out, max_messages=1) == 0
    assert out.getvalue() == ("2021-11-11 00:00:05.000+08:00 · GMV RMB 123.5 million · "
                              "42 orders · 7 orders/s\n")


def test_on_a_terminal_the_tick_is_a_live_line(mosquitto, unique_run: str) -> None:
    _info, milestones = publish_run(mosquitto.url, unique_run, n_milestones=1)
    out = Sink(tty=True)
    assert run_watch(mosquitto.url, ["gmv", "milestones/#"], run=unique_run, out=out,
                     max_messages=2) == 0
    text = out.getvalue()
    assert milestones[0].headline in text and "GMV RMB 123.5 million" in text


def test_an_unreachable_broker_is_one_line_and_exit_1() -> None:
    out, err = Sink(), Sink()
    port = free_port()
    assert run_watch(f"mqtt://127.0.0.1:{port}", out=out, err=err) == 1
    assert out.getvalue() == ""
    assert err.getvalue().count("\n") == 1 and "connection refused" in err.getvalue()


@pytest.mark.parametrize(("url", "filters"), [("mqtt://", []), ("mqtt://h", ["a\0b"])])
def test_a_bad_url_or_filter_is_exit_2(url: str, filters: list[str]) -> None:
    err = Sink()
    assert run_watch(url, filters, out=Sink(), err=err) == 2
    assert err.getvalue().startswith("ticker: ") and err.getvalue().count("\n") == 1


def test_ctrl_c_exits_0_quietly(mosquitto, unique_run: str) -> None:
    publish_run(mosquitto.url, unique_run, n_milestones=1)
    first, _out, err, code = interrupt_after_first_line(
        "import sys\nfrom ticker.publish import run_watch\n"
        "sys.exit(run_watch(sys.argv[1], run=sys.argv[2]))", mosquitto.url, unique_run)
    assert "Brand 0 is the first brand" in first  # so it was subscribed when interrupted
    assert code == 0, err
    assert err == ""


def test_the_embedded_broker_prints_each_milestone_once(unique_run: str, listen) -> None:
    with EmbeddedBroker() as broker:
        info, milestones = publish_run(broker.url, unique_run, n_milestones=2)
        listen(broker.port, f"ticker/{unique_run}/#")  # someone else's wider subscription
        out = Sink()
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(run_watch(
            broker.url, run=unique_run, out=out, max_messages=3)))
        thread.start()
        try:
            assert set(out.wait_lines(2)) == {milestone_line(info, m) for m in milestones}
            late = make_milestones(unique_run, 3)[2]
            with Publisher(broker.url, info) as publisher:
                publisher.milestone(late)
        finally:
            thread.join(30)
        assert result == [0]
        assert out.getvalue().splitlines()[2] == milestone_line(info, late)


def test_an_arrival_ordered_runs_lines_say_live_final_or_correction() -> None:
    from ticker.publish.watch import format_message

    payload = orjson.dumps({"headline": "Apple is the first brand to pass RMB 10 billion",
                            "value": "RMB 10.0 billion", "timing": "live",
                            "event_time": "2021-11-11T18:23:03.049198+08:00"})
    line, tick = format_message("ticker/r/milestones/brand_gmv/Apple/1000000000000/live", payload)
    assert line == ("2021-11-11 18:23:03.049+08:00 · [live] Apple is the first brand to pass "
                    "RMB 10 billion · RMB 10.0 billion") and not tick
    gmv = orjson.dumps({"event_time": "2021-11-11T18:23:03.049198+08:00", "gmv": "RMB 1.0 billion",
                        "orders": 5, "orders_per_s": 2, "watermark": "2021-11-11T18:22:58.049198+08:00"})
    line, tick = format_message("ticker/r/gmv", gmv)
    assert line.endswith("· watermark 2021-11-11 18:22:58.049+08:00") and tick


def test_a_late_watcher_reads_the_story_so_far_in_event_time_order(mosquitto, unique_run: str,
                                                                      seed: int) -> None:
    """Retained milestones reach a new subscriber in the broker's order (by topic), published
    here in a random order with event times unrelated to their topics: printed oldest first."""
    rng = random.Random(seed)
    info = RunInfo(unique_run, scenario="double11-2021", seed=3, scale=0.01, zone=CST)
    base = make_milestones(unique_run, 12)
    times = rng.sample(range(40), len(base))
    milestones = [dataclasses.replace(m, event_time_us=T0_US + t * 1_000_000, seq=t)
                  for m, t in zip(base, times, strict=True)]
    with Publisher(mosquitto.url, info) as publisher:
        for m in rng.sample(milestones, len(milestones)):
            publisher.milestone(m)
    out = Sink()
    assert run_watch(mosquitto.url, run=unique_run, out=out, max_messages=len(milestones)) == 0
    expected = sorted(milestones, key=lambda m: m.event_time_us)
    assert out.getvalue().splitlines() == [milestone_line(info, m) for m in expected]


def test_a_late_watcher_gets_more_milestones_than_a_default_mosquitto_queues(
        mosquitto, unique_run: str) -> None:
    """A default Mosquitto holds at most 1,000 queued + 20 in-flight QoS 1 messages for one
    subscriber and drops the rest of a retained burst; a run with per-brand rules retains thousands.
    The watcher reads them at QoS 0 (topics.READER_QOS), so it gets every one."""
    n = 1_500
    info = RunInfo(unique_run, scenario="double11-2021", seed=3, scale=0.01, zone=CST)
    milestones = make_milestones(unique_run, n)
    with Publisher(mosquitto.url, info) as publisher:
        for m in milestones:
            publisher.milestone(m)
    out = Sink()
    assert run_watch(mosquitto.url, run=unique_run, out=out, max_messages=n) == 0
    assert sorted(out.getvalue().splitlines()) == sorted(milestone_line(info, m)
                                                         for m in milestones)


@given(st.lists(st.tuples(st.integers(0, 2**52), st.integers(0, 2**40), st.booleans()),
                max_size=30))
def test_retained_milestones_drain_in_event_time_then_seq_order(
        items: list[tuple[int, int, bool]]) -> None:
    """Whatever order they arrive in: milestones by (event time, seq, topic), then anything
    that is not a milestone, in arrival order."""
    held = RetainedMilestones()
    sent = []
    for i, (at_us, seq, is_milestone) in enumerate(items):
        payload = (orjson.dumps({"event_time": format_time(at_us, CST, precision="microseconds"),
                                 "seq": seq}) if is_milestone else f"not json {i}".encode())
        message = aiomqtt.Message(f"ticker/r/milestones/x/{i}", payload, 1, True, i, None)
        held.add(message)
        sent.append(((0, at_us, seq, f"ticker/r/milestones/x/{i}") if is_milestone
                     else (1, 0, 0, ""), i, message))
    out = held.drain()
    assert len(held) == 0
    assert out == [m for _key, _i, m in sorted(sent, key=lambda x: (x[0], x[1]))]
