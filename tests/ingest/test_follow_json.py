"""``ticker follow`` with JSON orders on a real Mosquitto: every kind of bad payload (generated) is
dead-lettered — to the file and the dead-letter topic, with its reason and raw bytes — and
counted, the good ones are folded, duplicates count once, also across a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from ticker.ingest.follow import Follower, FollowOptions

pytestmark = pytest.mark.network

GOOD = {"order_id": 1, "brand": "Acme", "amount": "10.00", "currency": "CNY",
        "event_time": "2021-11-11T00:00:00.5+08:00", "kind": "placed", "platform": "Tmall"}


class Running:
    """A Follower on a thread (the test's thread publishes and checks)."""

    def __init__(self, url: str, topic: str, run_dir: Path):
        self.follower = Follower(FollowOptions(url=url, topics=(topic,), scenario="smoke",
                                               run_dir=run_dir, idle_s=0.5))
        self.summary: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        while not self.follower.ready.wait(0.05):
            assert self.thread.is_alive(), self.error

    def _run(self) -> None:
        try:
            self.summary = self.follower.run_loop()
        except BaseException as exc:
            self.error = exc
        finally:
            if self.follower.mqtt_sink is not None:
                self.follower.mqtt_sink.close()

    def wait_for(self, condition, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.follower):
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "follow did not take the payloads in time"
            time.sleep(0.02)  # polling the follower's counters, bounded

    def stop(self) -> dict:
        self.follower.stop.set()
        self.thread.join(60)
        assert self.error is None, self.error
        return self.summary


def publisher(url: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    return client


def publish_all(client: paho.Client, topic: str, payloads: list[bytes]) -> None:
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(10)


def handled(f: Follower) -> int:
    live = f.live
    if live is None:
        return len(f.dead_early)
    return live.log.next_seq + live.dead.count + live.parser.duplicates


def corrupt(field: str, value) -> bytes:
    return orjson.dumps({**GOOD, field: value})


BAD = st.one_of(
    st.binary(min_size=1, max_size=40).filter(lambda b: not b.startswith(b"TKOB") and _not_object(b)),
    st.sampled_from([b"42", b'"order"', b"null", b"{", b"true"]),
    st.builds(corrupt, st.just("currency"),
              st.text(min_size=1, max_size=5).filter(lambda t: t.strip().upper() != "CNY")),
    st.builds(corrupt, st.just("amount"), st.integers(max_value=0).map(lambda v: f"{v}.00")),
    st.builds(corrupt, st.just("amount"), st.floats(allow_nan=True)),
    st.builds(corrupt, st.just("amount"), st.decimals(places=3, min_value=1, max_value=999).map(str)
              .filter(lambda t: not t.endswith("0"))),
    st.builds(corrupt, st.just("event_time"), st.text(max_size=12)),
    st.builds(corrupt, st.just("event_time"), st.just("2030-01-01T00:00:00Z")),
    st.builds(corrupt, st.sampled_from(["order_id", "brand"]), st.none()),
    st.builds(corrupt, st.just("kind"), st.text(min_size=1, max_size=8).filter(
        lambda t: t.strip().lower() not in ("placed", "refunded"))),
    st.builds(corrupt, st.just("platform"), st.text(min_size=1, max_size=8).filter(
        lambda t: t.strip() not in ("Tmall", "Taobao", ""))),
)


def _not_object(data: bytes) -> bool:
    try:
        return not isinstance(orjson.loads(data), dict | list)
    except orjson.JSONDecodeError:
        return True


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.none(), BAD), min_size=1, max_size=25))
def test_bad_payloads_are_dead_lettered_counted_and_the_run_goes_on(mosquitto, tmp_path_factory, plan):
    tmp = tmp_path_factory.mktemp("follow-json")
    topic = f"shop/{tmp.name}/orders"
    run = Running(mosquitto.url, topic, tmp / "run")
    client = publisher(mosquitto.url)
    dead_topic: list[bytes] = []
    client.on_message = lambda c, u, m: dead_topic.append(m.payload)
    client.subscribe(f"ticker/{run.follower.run}/dead-letters", 1)
    try:
        payloads, bad = [], []
        for i, item in enumerate(plan):
            if item is None:
                payloads.append(orjson.dumps({**GOOD, "order_id": i + 1,
                                              "event_time": f"2021-11-11T00:00:{i:02d}+08:00"}))
            else:
                payloads.append(item)
                bad.append(item)
        good = len(plan) - len(bad)
        publish_all(client, topic, payloads)
        run.wait_for(lambda f: handled(f) >= len(plan))
        summary = run.stop()
        deadline = time.monotonic() + 10
        while len(dead_topic) < len(bad) and time.monotonic() < deadline:
            time.sleep(0.02)  # the dead-letter topic's QoS 1 deliveries, bounded
    finally:
        client.loop_stop()
        client.disconnect()
    assert summary["orders"] == good and summary["gmv_minor"] == 1000 * good
    assert summary["ingest"]["rejected"] == len(bad)
    dead = [orjson.loads(line) for line in (tmp / "run" / "dead-letters.jsonl").read_bytes().splitlines()]
    assert len(dead) == len(bad)
    for record, raw in zip(dead, bad, strict=True):
        assert record["where"] == topic and record["reason"]
        shown = record["raw"]
        assert (shown.encode() if isinstance(shown, str) else __import__("base64").b64decode(
            shown["base64"])) == raw
    assert sorted(dead_topic) == sorted(orjson.dumps(d) for d in dead)


def test_duplicates_count_once_also_across_a_restart(mosquitto, tmp_path):
    topic = f"shop/{tmp_path.name}/dups"
    orders = [orjson.dumps({**GOOD, "order_id": i, "event_time": f"2021-11-11T00:00:{i:02d}+08:00"})
              for i in range(1, 11)]
    client = publisher(mosquitto.url)
    try:
        run = Running(mosquitto.url, topic, tmp_path / "run")
        publish_all(client, topic, orders[:6] + orders[2:4])  # two redelivered
        run.wait_for(lambda f: handled(f) >= 8)
        first = run.stop()
        assert (first["orders"], first["ingest"]["duplicates"], first["ingest"]["rejected"]) == (6, 2, 0)
        publish_all(client, topic, orders[4:])  # 4 and 5 again, after the restart: still known
        run = Running(mosquitto.url, topic, tmp_path / "run")
        run.wait_for(lambda f: handled(f) >= 6 + 6)
        second = run.stop()
    finally:
        client.loop_stop()
        client.disconnect()
    assert second["orders"] == 10 and second["gmv_minor"] == 10 * 1000
