"""The publisher against real brokers: Mosquitto 2 (MQTT 5) and the embedded amqtt (MQTT 3.1.1).

Every check is made by an independent paho-mqtt subscriber, mostly a LATE one (subscribing after
the publisher is done), since "a late subscriber gets them all" is the contract.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import orjson
import pytest

from ticker.events import COLUMNS, OrderBatch
from ticker.publish import EmbeddedBroker, Publisher, PublishError, RunInfo, topics

from .helpers import CST, T0_US, contract_milestone, free_port, make_milestones

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


@dataclass(frozen=True)
class Backend:
    name: str
    port: int
    url: str


@pytest.fixture(params=["mosquitto", "embedded"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The same contract, checked against both brokers."""
    if request.param == "mosquitto":
        broker = request.getfixturevalue("mosquitto")
        yield Backend("mosquitto", broker.port, broker.url)
    else:
        with EmbeddedBroker() as broker:
            yield Backend("embedded", broker.port, broker.url)


def info_for(run: str) -> RunInfo:
    return RunInfo(run, scenario="double11-2021", seed=11, scale=0.01, zone=CST,
                   title="Tmall 11.11 2021", windows=(("main day", T0_US, T0_US + 86_400_000_000),),
                   started="2026-11-30T04:00:00.000+00:00")


def tick(info: RunInfo, i: int) -> dict:
    return topics.tick_json(info, event_time_us=T0_US + i * 1000, seq=i, gmv_minor=1000 * i,
                            orders=i, orders_per_s=i)


def make_batch(first_seq: int, n: int) -> OrderBatch:
    rng = np.random.default_rng(first_seq)
    cols = {name: rng.integers(0, 100, n).astype(dtype) for name, dtype in COLUMNS.items()}
    cols["seq"] = np.arange(first_seq, first_seq + n, dtype=COLUMNS["seq"])
    cols["event_time"] = np.full(n, T0_US, dtype=COLUMNS["event_time"])
    return OrderBatch(**cols)


def single_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text


# --- the core contract, on both brokers -------------------------------------------------------

def test_a_late_subscriber_gets_status_gmv_leaderboard_and_every_milestone(
        backend: Backend, unique_run: str, listen) -> None:
    info = info_for(unique_run)
    milestones = make_milestones(unique_run, 12)
    publisher = Publisher(backend.url, info).start()
    publisher.status("running", orders=0)
    for i in range(50):
        publisher.tick(tick(info, i))
    publisher.leaderboard(topics.leaderboard_json(info, event_time_us=T0_US,
                                                  brands=[("Apple", 10), ("Haier", 5)]))
    for m in milestones:
        publisher.milestone(m)
    assert publisher.flush(timeout=20)

    during = listen(backend.port, f"ticker/{unique_run}/#")
    status = during.wait_topic(topics.status_topic(unique_run))
    assert status.retain and status.qos == 1
    assert status.json()["state"] == "running" and status.json()["orders"] == 0

    report = publisher.close(timeout=10)
    assert report.ok, report
    assert report.milestones_delivered == 12 and report.undelivered == ()
    assert 1 <= report.ticks_sent <= 50 and report.leaderboards_sent >= 1

    # Each retained topic with the QoS it was published at. (amqtt 0.12 also sends a newly
    # connected client, at QoS 0, the retained messages matching OTHER clients' subscriptions:
    # so look for the copy with the expected QoS, not the first one.)
    expected = {topics.status_topic(unique_run): 1, topics.gmv_topic(unique_run): 0,
                topics.leaderboard_topic(unique_run): 0}
    expected |= {topics.milestone_topic(unique_run, m): 1 for m in milestones}
    late = listen(backend.port, f"ticker/{unique_run}/#")
    got = late.wait_for(lambda ms: expected.items() <= {(m.topic, m.qos) for m in ms if m.retain},
                        what="every retained topic of the run, at its QoS")
    by_topic = {m.topic: m for m in got if m.retain and expected.get(m.topic) == m.qos}
    status = by_topic[topics.status_topic(unique_run)]
    assert status.json()["state"] == "finished"
    assert status.json()["orders"] == 0  # status extras carry over to the final status
    assert by_topic[topics.gmv_topic(unique_run)].json() == tick(info, 49)  # the latest one
    board = by_topic[topics.leaderboard_topic(unique_run)].json()
    assert [b["brand"] for b in board["brands"]] == ["Apple", "Haier"]
    # the contract written out (DESIGN.md), for a plain subject and one with a '/' in it
    literal = {
        f"ticker/{unique_run}/milestones/brand_gmv/Brand 0/100000000": """
            {"id": "RUN:brand_gmv:Brand 0:100000000", "kind": "brand_gmv", "subject": "Brand 0",
             "threshold_minor": 100000000, "value_minor": 100000123, "seq": 10000,
             "event_time": "2021-11-11T00:00:00.000000+08:00", "rank": 1,
             "headline": "Brand 0 is the first brand to pass RMB 1 million", "value": "RMB 1.0 million"}""",
        f"ticker/{unique_run}/milestones/brand_gmv/Brand_3/400000000": """
            {"id": "RUN:brand_gmv:Brand/3:400000000", "kind": "brand_gmv", "subject": "Brand/3",
             "threshold_minor": 400000000, "value_minor": 400000123, "seq": 10003,
             "event_time": "2021-11-11T00:00:03.000000+08:00", "rank": 4,
             "headline": "Brand/3 is the fourth brand to pass RMB 4 million", "value": "RMB 4.0 million"}""",
    }
    for topic, text in literal.items():
        assert by_topic[topic].json() == orjson.loads(text.replace("RUN", unique_run))
    for m in milestones:
        topic, payload = contract_milestone(unique_run, m)
        assert by_topic[topic].json() == payload


def test_the_will_marks_a_killed_publisher_offline(backend: Backend, unique_run: str,
                                                   listen) -> None:
    status_topic = topics.status_topic(unique_run)
    watcher = listen(backend.port, status_topic)
    child = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, threading\n"
            "from ticker.publish import Publisher, RunInfo\n"
            "p = Publisher(sys.argv[1], RunInfo(sys.argv[2])).start()\n"
            "assert p.flush(20)\n"
            "print('ready', flush=True)\n"
            "threading.Event().wait()\n"), backend.url, unique_run],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        watcher.wait_topic(status_topic, lambda m: m.json()["state"] == "running")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        child.stdout.close()
    watcher.wait_topic(status_topic, lambda m: m.json()["state"] == "offline")
    late = listen(backend.port, status_topic)
    offline = late.wait_topic(status_topic)
    assert offline.retain and offline.json()["state"] == "offline"
    assert offline.json()["run"] == unique_run


def test_order_frames_arrive_whole_and_in_order(backend: Backend, unique_run: str,
                                                listen) -> None:
    info = info_for(unique_run)
    batches = [make_batch(1000 * i, 1000) for i in range(6)]
    listener = listen(backend.port, f"ticker/{unique_run}/orders/#")
    with Publisher(backend.url, info) as publisher:
        for i, batch in enumerate(batches):
            publisher.orders(i % 2, batch.to_frame())
        assert publisher.flush(timeout=20)
    frames = listener.wait_count(6)
    assert all(f.qos == 1 and not f.retain for f in frames)
    assert [f.topic for f in frames] == [topics.orders_topic(unique_run, i % 2) for i in range(6)]
    for frame, batch in zip(frames, batches, strict=True):
        assert OrderBatch.from_frame(frame.payload).equals(batch)


# --- outbox semantics ---------------------------------------------------------------------------

def test_ticks_are_coalesced_and_rate_limited(mosquitto, unique_run: str, listen) -> None:
    info = info_for(unique_run)
    listener = listen(mosquitto.port, topics.gmv_topic(unique_run))
    publisher = Publisher(mosquitto.url, info, tick_hz=2).start()
    began = time.monotonic()
    for i in range(5000):
        publisher.tick(tick(info, i))
    report = publisher.close(timeout=10)
    elapsed = time.monotonic() - began
    # at most one per 1/tick_hz, plus the first one and the final flush
    assert 1 <= report.ticks_sent <= elapsed * 2 + 2
    last = listener.wait_topic(topics.gmv_topic(unique_run), lambda m: m.json()["seq"] == 4999)
    assert last.json() == tick(info, 4999)


def test_order_frames_beyond_the_bound_drop_the_oldest(mosquitto, unique_run: str,
                                                       listen) -> None:
    info = info_for(unique_run)
    frames = [make_batch(100 * i, 100).to_frame() for i in range(10)]
    publisher = Publisher(mosquitto.url, info, max_order_bytes=3 * len(frames[0]))
    for frame in frames:  # not started: nothing can leave yet, so the bound decides
        publisher.orders(0, frame)
    assert publisher.report().order_frames_dropped == 7
    listener = listen(mosquitto.port, f"ticker/{unique_run}/orders/#")
    publisher.start()
    assert publisher.flush(timeout=20)
    report = publisher.close()
    assert (report.order_frames_sent, report.order_frames_dropped) == (3, 7)
    assert report.order_bytes_dropped == 7 * len(frames[0])
    got = listener.wait_count(3)
    assert [m.payload for m in got] == frames[7:]


def test_milestones_queued_before_start_are_sent_on_connect(mosquitto, unique_run: str,
                                                            listen) -> None:
    milestones = make_milestones(unique_run, 5)
    publisher = Publisher(mosquitto.url, info_for(unique_run))
    for m in milestones:
        publisher.milestone(m)
    assert publisher.report().undelivered == tuple(m.id for m in milestones)
    with publisher:
        assert publisher.flush(timeout=20)
    assert publisher.report().ok
    late = listen(mosquitto.port, topics.milestones_filter(unique_run))
    assert len(late.wait_count(5)) == 5


def test_a_closed_publisher_refuses_more_work(mosquitto, unique_run: str) -> None:
    publisher = Publisher(mosquitto.url, info_for(unique_run)).start()
    first = publisher.close()
    assert publisher.close() is first  # idempotent
    for call in (lambda: publisher.tick(b"{}"), lambda: publisher.status("running"),
                 lambda: publisher.milestone(make_milestones(unique_run, 1)[0]),
                 lambda: publisher.orders(0, b"x"), publisher.start):
        with pytest.raises(PublishError):
            call()


# --- broker outages -----------------------------------------------------------------------------

def test_a_broker_restart_loses_no_milestone(mosquitto_factory, unique_run: str, listen) -> None:
    broker = mosquitto_factory()
    info = info_for(unique_run)
    milestones = make_milestones(unique_run, 40)
    frames = [make_batch(100 * i, 100).to_frame() for i in range(4)]
    publisher = Publisher(broker.url, info, min_backoff=0.05, max_backoff=0.5,
                          connect_timeout=2).start()
    for m in milestones[:20]:
        publisher.milestone(m)
    assert publisher.flush(timeout=20)

    broker.stop()  # the run goes on: everything now waits in the outbox
    for i, m in enumerate(milestones[20:]):
        publisher.milestone(m)
        publisher.tick(tick(info, i))
    for frame in frames:
        publisher.orders(0, frame)
    assert publisher.report().undelivered == tuple(m.id for m in milestones[20:])

    broker.start()
    assert publisher.flush(timeout=30)
    report = publisher.close(timeout=10)
    assert report.ok and report.reconnects >= 1, report
    assert report.milestones_delivered == 40 and report.order_frames_sent == 4

    late = listen(broker.port, topics.milestones_filter(unique_run))
    got = {m.topic: m.payload for m in late.wait_count(40)}
    assert got == {topics.milestone_topic(unique_run, m): topics.milestone_payload(info, m)
                   for m in milestones}
    status = listen(broker.port, topics.status_topic(unique_run)).wait_count(1)[0]
    assert status.json()["state"] == "finished"


def test_close_reports_what_a_dead_broker_never_acknowledged(mosquitto_factory,
                                                             unique_run: str) -> None:
    broker = mosquitto_factory()
    milestones = make_milestones(unique_run, 5)
    publisher = Publisher(broker.url, info_for(unique_run), min_backoff=0.05,
                          max_backoff=0.2, connect_timeout=1).start()
    publisher.milestone(milestones[0])
    assert publisher.flush(timeout=20)
    broker.stop()
    for m in milestones[1:]:
        publisher.milestone(m)
    report = publisher.close(timeout=1.0)
    assert report.undelivered == tuple(m.id for m in milestones[1:])
    assert report.milestones_delivered == 1 and not report.finished and not report.ok
    assert "4 milestones NOT delivered" in str(report)


# --- bad input: one clear line, in bounded time ---------------------------------------------------

def test_an_unreachable_broker_is_one_line() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(PublishError) as caught:
        Publisher(f"mqtt://127.0.0.1:{port}", RunInfo("r"), connect_timeout=2).start()
    assert "connection refused" in single_line(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_a_silent_broker_times_out_in_one_line() -> None:
    with socket.socket() as silent:  # accepts TCP (backlog) but never says CONNACK
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(PublishError) as caught:
            Publisher(f"mqtt://127.0.0.1:{port}", RunInfo("r"), connect_timeout=0.5).start()
    assert "did not answer within 0.5 s" in single_line(caught.value)


@pytest.mark.parametrize("protocol", ["auto", "3.1.1"])
def test_a_wrong_password_is_one_line_without_the_password(mosquitto, protocol: str,
                                                           caplog) -> None:
    url = mosquitto.auth_url(password="wrong-horse-battery")
    with pytest.raises(PublishError) as caught:
        Publisher(url, RunInfo("r"), protocol=protocol, connect_timeout=5).start()
    line = single_line(caught.value)
    assert "refused the connection" in line
    assert "bad user name or password" in line or "not authorised" in line
    assert "wrong-horse-battery" not in line and "wrong-horse-battery" not in caplog.text
    assert f"{mosquitto.user}:***@" in line


def test_the_right_password_publishes(mosquitto, unique_run: str, listen, caplog) -> None:
    publisher = Publisher(mosquitto.auth_url(), info_for(unique_run)).start()
    publisher.milestone(make_milestones(unique_run, 1)[0])
    report = publisher.close()
    assert report.ok
    text = " ".join([repr(publisher), str(report), repr(report), caplog.text])
    assert mosquitto.password not in text
    assert len(listen(mosquitto.port, topics.milestones_filter(unique_run)).wait_count(1)) == 1


def test_the_protocol_is_mqtt5_on_mosquitto_and_311_on_amqtt(backend: Backend,
                                                             unique_run: str) -> None:
    publisher = Publisher(backend.url, info_for(unique_run)).start()
    try:
        assert publisher.protocol == ("5" if backend.name == "mosquitto" else "3.1.1")
    finally:
        assert publisher.close().ok


# --- TLS ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory, require_binary):
    """A throwaway CA and a server certificate for ``localhost`` (openssl CLI)."""
    openssl = require_binary("openssl", install="apt-get install openssl")
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr",
                                                  "srv.pem"))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=ticker test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def test_mqtts_with_a_ca_file(mosquitto_factory, tls_files, unique_run: str, listen) -> None:
    ca, cert, key = tls_files
    broker = mosquitto_factory(tls=(ca, cert, key))
    url = f"mqtts://localhost:{broker.tls_port}"
    publisher = Publisher(url, info_for(unique_run), ca_file=ca).start()
    publisher.milestone(make_milestones(unique_run, 1)[0])
    assert publisher.close().ok
    assert len(listen(broker.port, topics.milestones_filter(unique_run)).wait_count(1)) == 1


# paho-mqtt 2.2 leaves the SSLSocket of a failed handshake to the garbage collector
# (client.py, _ssl_wrap_socket: do_handshake() raises, nothing closes the socket).
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning")
def test_mqtts_with_an_unknown_ca_is_one_line(mosquitto_factory, tls_files) -> None:
    broker = mosquitto_factory(tls=tls_files)
    with pytest.raises(PublishError) as caught:  # the system CAs do not know our test CA
        Publisher(f"mqtts://localhost:{broker.tls_port}", RunInfo("r"), connect_timeout=5).start()
    assert "certificate verify failed" in single_line(caught.value).lower()
    del caught
    gc.collect()  # collect paho's leaked socket now, under this test's filter


def test_status_payload_roundtrip_through_the_broker(mosquitto, unique_run: str, listen) -> None:
    info = info_for(unique_run)
    with Publisher(mosquitto.url, info) as publisher:
        publisher.status("running", note="warming up")
        assert publisher.flush(timeout=20)
        got = listen(mosquitto.port, topics.status_topic(unique_run)).wait_count(1)[0]
    assert got.json() == orjson.loads(f"""
        {{"run": "{unique_run}", "state": "running", "scenario": "double11-2021", "seed": 11,
          "scale": 0.01, "currency": "CNY", "zone": "+08:00", "version": "{version("ticker")}",
          "title": "Tmall 11.11 2021", "started": "2026-11-30T04:00:00.000+00:00",
          "windows": [{{"name": "main day", "start": "2021-11-11T00:00:00.000+08:00",
                       "end": "2021-11-12T00:00:00.000+08:00"}}],
          "topics": {{"gmv": "ticker/{unique_run}/gmv", "leaderboard": "ticker/{unique_run}/leaderboard",
                     "milestones": "ticker/{unique_run}/milestones/#"}},
          "note": "warming up"}}""")


def test_reconnect_delays_stay_under_a_second_and_start_over_at_each_connack() -> None:
    """The policy behind 'a broker that is back is found within a second' (measured in
    benchmarks/bench_reconnect.py): every delay, jitter included, is below 0.9 s, so a broker
    that comes back waits at most that long; the delays grow (a broker that stays down is not
    hammered) and start again from the smallest after a CONNACK."""
    from hypothesis import given
    from hypothesis import strategies as st

    from ticker.publish.session import Backoff

    @given(jitter=st.lists(st.floats(0.8, 1.2), min_size=1, max_size=40),
           connack_at=st.sets(st.integers(0, 39)))
    def check(jitter: list[float], connack_at: set[int]) -> None:
        draws = iter(jitter)
        backoff = Backoff(0.05, 0.75, uniform=lambda lo, hi: next(draws))
        plain = 0.05
        for i in range(len(jitter)):
            if i in connack_at:
                backoff.reset()
                plain = 0.05
            delay = backoff.next()
            assert delay == pytest.approx(plain * jitter[i])
            assert delay < 0.9
            plain = min(plain * 2, 0.75)

    check()
    slow = Backoff(0.05, 0.75, uniform=lambda lo, hi: 1.0)
    assert sum(slow.next() for _ in range(60)) > 40  # a minute down: ~1.3 attempts a second
