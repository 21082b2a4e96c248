"""``ticker replay`` end to end against a real Mosquitto: the whole topic contract from a real
run, and a broker restart in the middle of a replay that loses no milestone."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from ticker.cli import main
from ticker.engine import ReplayOptions, execute, prepare
from ticker.publish import topics
from ticker.publish.sink import connect

from .helpers import contract_milestone

pytestmark = pytest.mark.network


def test_a_replay_publishes_the_whole_contract(mosquitto, listen, tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    before_us = time.time_ns() // 1000
    code = main(["replay", "smoke", "--mqtt", mosquitto.url, "--quiet", "--run-dir",
                 str(tmp_path / "run"), "--summary", str(summary_path)])
    after_us = time.time_ns() // 1000
    assert code == 0
    summary = orjson.loads(summary_path.read_bytes())
    run = summary["run"]
    assert summary["mqtt"]["undelivered"] == []
    # a subscriber arriving after the run gets every retained topic
    late = listen(mosquitto.port, [f"ticker/{run}/#"])
    wanted = len(summary["milestones"]) + 3  # + status, gmv, leaderboard
    got = late.wait_for(lambda ms: len({m.topic for m in ms}) >= wanted, what=f"{wanted} topics")
    by_topic = {m.topic: m for m in got}
    status = by_topic[f"ticker/{run}/status"].json()
    assert status["state"] == "finished" and status["scenario"] == "smoke"
    tick = by_topic[f"ticker/{run}/gmv"].json()
    assert tick["gmv_minor"] == summary["gmv_minor"] and tick["orders"] == summary["orders"]
    board = by_topic[f"ticker/{run}/leaderboard"].json()["brands"]
    assert board[0]["rank"] == 1 and board[0]["gmv_minor"] >= board[-1]["gmv_minor"]
    for milestone in summary["milestones"]:
        kind, subject, threshold = milestone["kind"], milestone["subject"], milestone["threshold_minor"]
        message = by_topic[f"ticker/{run}/milestones/{kind}/{subject}/{threshold}"]
        payload = message.json()
        assert message.retain and message.qos == 1
        assert {k: payload[k] for k in milestone} == milestone
        assert isinstance(payload["value"], str)
        assert before_us <= payload["folded_us"] <= after_us  # stamped by this run's fold


class Outage:
    """A sink that stops the broker after the ``stop_at``-th milestone and restarts it after
    the ``start_at``-th: the fold and the publisher carry on through the outage."""

    def __init__(self, broker, stop_at: int, start_at: int):
        self.broker, self.stop_at, self.start_at = broker, stop_at, start_at
        self.seen = 0
        self.outage_seen = 0

    def start(self, run): pass
    def tick(self, tick): pass
    def finish(self, summary): pass
    def close(self): pass

    def milestones(self, found) -> None:
        for _ in found:
            self.seen += 1
            if self.seen == self.stop_at:
                self.broker.stop()
            elif self.stop_at < self.seen < self.start_at:
                self.outage_seen += 1
            elif self.seen == self.start_at:
                self.broker.start()


def test_a_broker_restart_in_the_middle_of_a_replay_loses_no_milestone(mosquitto_factory,
                                                                        listen) -> None:
    broker = mosquitto_factory()
    run = prepare("double11-2021", ReplayOptions(record=False, batch_size=1 << 14))
    outage = Outage(broker, stop_at=100, start_at=300)
    mqtt = connect(run, broker.url)
    before_us = time.time_ns() // 1000
    try:
        summary = execute(run, [mqtt, outage])
    finally:
        mqtt.close()
    after_us = time.time_ns() // 1000
    assert outage.outage_seen == 199  # milestones folded while the broker was down
    assert summary.mqtt is not None and summary.mqtt.undelivered == ()
    # read as ticker's readers do (QoS 0): at QoS 1 a default Mosquitto drops a retained burst
    # beyond 1,020 messages, and this run retains thousands
    late = listen(broker.port, [topics.milestones_filter(run.run)], qos=topics.READER_QOS)
    n = len(run.aggregator.state.milestones)
    got = {m.topic: m.json() for m in late.wait_for(lambda ms: len({x.topic for x in ms}) >= n,
                                                     what=f"{n} milestones")}
    # each carries when this run's fold found it, kept through the re-sends
    assert all(before_us <= p.pop("folded_us") <= after_us for p in got.values())
    assert got == dict(contract_milestone(run.run, m, run.scenario.zone)
                       for m in run.aggregator.state.milestones)


def test_with_no_url_a_broker_already_on_the_default_port_is_used(mosquitto, listen, monkeypatch,
                                                                   tmp_path: Path) -> None:
    """`ticker broker` (or a local Mosquitto) in another terminal holds the default port: the
    replay publishes there, where that terminal's subscribers are, not to a private broker."""
    import ticker.publish.sink as sink

    monkeypatch.setattr(sink, "DEFAULT_PORT", mosquitto.port)
    monkeypatch.delenv("TICKER_MQTT_URL", raising=False)
    summary_path = tmp_path / "summary.json"
    assert main(["replay", "smoke", "--quiet", "--no-log", "--summary", str(summary_path)]) == 0
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["mqtt"]["url"] == mosquitto.url
    status = listen(mosquitto.port, [f"ticker/{summary['run']}/status"]).wait_count(1)[0]
    assert status.json()["state"] == "finished"


def test_an_arrival_ordered_replay_publishes_live_final_and_corrections(mosquitto, listen,
                                                                         tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    assert main(["replay", "smoke", "--disorder", "realistic", "--mqtt", mosquitto.url, "--quiet",
                 "--run-dir", str(tmp_path / "run"), "--summary", str(summary_path)]) == 0
    summary = orjson.loads(summary_path.read_bytes())
    run = summary["run"]
    late = listen(mosquitto.port, [f"ticker/{run}/#"])
    # a topic retains its last milestone: a rate record may be corrected again by a later late
    # order of its second (the summary is in seq order, so the last one per topic is the latest)
    last = {}
    for milestone in summary["milestones"]:
        kind, subject, threshold = milestone["kind"], milestone["subject"], milestone["threshold_minor"]
        below = "" if milestone["timing"] == "final" else f"/{milestone['timing']}"
        last[f"ticker/{run}/milestones/{kind}/{subject}/{threshold}{below}"] = milestone
    wanted = len(last) + 3
    got = late.wait_for(lambda ms: len({m.topic for m in ms}) >= wanted, what=f"{wanted} topics")
    by_topic = {m.topic: m for m in got}
    ids = {m["id"] for m in summary["milestones"]}
    timings = set()
    for topic, milestone in last.items():
        message = by_topic[topic]
        payload = message.json()
        assert message.retain and message.qos == 1
        assert {k: payload[k] for k in milestone} == milestone
        timings.add(payload["timing"])
        if payload["timing"] == "correction":
            assert payload["corrects"] in ids
            if payload["kind"] != "rate_record":  # a threshold's correction names its final
                assert by_topic[topic.removesuffix("/correction")].json()["id"] == payload["corrects"]
    assert timings == {"live", "final", "correction"}
    tick = by_topic[f"ticker/{run}/gmv"].json()
    assert tick["watermark"] == summary["event_time"]["watermark"]
