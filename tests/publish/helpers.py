"""Helpers for the publishing tests: an independent subscriber (plain paho-mqtt, not ours).

The subscriber checks what the broker really holds and forwards: topics, payloads, QoS, the
retain flag. It runs paho's own network thread and reconnects by itself (a broker restart).
Tests wait on its messages with timeouts; nothing sleeps to synchronise.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ticker.aggregate.milestones import Milestone, milestone_id, ordinal
from ticker.money import CNY, format_money

CST = timezone(timedelta(hours=8))
T0_US = 1_636_560_000_000_000  # 2021-11-11T00:00:00+08:00


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def json(self) -> dict:
        return orjson.loads(self.payload)


class Listener:
    """Subscribe to ``filters`` on 127.0.0.1:``port`` and collect every message."""

    def __init__(self, port: int, filters: list[str], *, qos: int = 1,
                 protocol: int = paho.MQTTv311, client_id: str | None = None,
                 clean_session: bool = True) -> None:
        self.filters = filters
        self.qos = qos
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        kwargs = {"clean_session": clean_session} if protocol != paho.MQTTv5 else {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"listener-{secrets.token_hex(4)}",
                                  protocol=protocol, **kwargs)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError(f"listener could not subscribe to {filters} on port {port}")

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if not reason_code.is_failure:
            client.subscribe([(f, self.qos) for f in self.filters])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        self._subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append(Received(message.topic, bytes(message.payload), message.qos,
                                          bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0,
                 what: str = "the expected messages") -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.messages), timeout):
                seen = [m.topic for m in self.messages][-20:]
                raise AssertionError(f"timed out waiting for {what}; last topics: {seen}")
            return list(self.messages)

    def wait_count(self, n: int, timeout: float = 15.0) -> list[Received]:
        return self.wait_for(lambda ms: len(ms) >= n, timeout, f"{n} messages")

    def wait_topic(self, topic: str, check: Callable[[Received], bool] = lambda m: True,
                   timeout: float = 15.0) -> Received:
        def found(ms: list[Received]) -> bool:
            return any(m.topic == topic and check(m) for m in ms)

        messages = self.wait_for(found, timeout, f"a matching message on {topic}")
        return next(m for m in reversed(messages) if m.topic == topic and check(m))

    def by_topic(self) -> dict[str, Received]:
        with self._cond:
            return {m.topic: m for m in self.messages}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_milestones(run: str, n: int, *, kind: str = "brand_gmv") -> list[Milestone]:
    """``n`` distinct milestones of ``run`` (one brand each, the ``i``-th crossing RMB i million)."""
    out = []
    for i in range(n):
        threshold = (i + 1) * 100_000_000
        subject = f"Brand/{i}" if i % 7 == 3 else f"Brand {i}"  # some need topic_safe
        out.append(Milestone(
            id=milestone_id(run, kind, subject, threshold), kind=kind, subject=subject,
            threshold_minor=threshold, value_minor=threshold + 123, seq=10_000 + i,
            event_time_us=T0_US + i * 1_000_000, rank=i + 1,
            headline=f"{subject} is the {ordinal(i + 1)} brand to pass RMB {i + 1} million"))
    return out


def contract_milestone(run: str, m: Milestone, zone: timezone = CST) -> tuple[str, dict]:
    """The topic and JSON payload DESIGN.md promises for ``m`` in a CNY run, written out from the
    contract, not by ``ticker.publish.topics`` (the code under test). Only the money text comes from
    ``format_money``, the one place that turns money into text."""
    subject_level = "".join("_" if ch in "/+#\0" else ch for ch in m.subject)
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=m.event_time_us)
    value = (f"{m.value_minor:,} orders/s" if m.kind == "rate_record"
             else format_money(m.value_minor, CNY))
    return (f"ticker/{run}/milestones/{m.kind}/{subject_level}/{m.threshold_minor}",
            {"id": f"{run}:{m.kind}:{m.subject}:{m.threshold_minor}", "kind": m.kind,
             "subject": m.subject, "threshold_minor": m.threshold_minor, "value_minor": m.value_minor,
             "seq": m.seq, "event_time": when.astimezone(zone).isoformat(timespec="microseconds"),
             "rank": m.rank, "headline": m.headline, "value": value})


def interrupt_after_first_line(code: str, *args: str) -> tuple[str, str, str, int]:
    """Run ``python -c code args``, wait for its first line of output, send it Ctrl-C (SIGINT);
    return (first line, rest of stdout, stderr, exit code)."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        first = child.stdout.readline()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return first, out, err, child.returncode
