"""The MQTT publisher: a synchronous, non-blocking front for the engine's sinks.

Why a thread: the aggregator's fold is a tight numpy loop that must never wait on the network.
Every method of :class:`Publisher` only stores into the :class:`~ticker.publish.outbox.Outbox`
(one lock) and, for the kinds sent at once, wakes the :class:`~ticker.publish.session.Session`,
which runs an aiomqtt client on its own thread and asyncio loop and does all the network work.

``close(timeout)`` drains the outbox (bounded by ``timeout``), publishes the final tick,
leaderboard and the "finished" status, disconnects cleanly (so the broker does not fire the
will) and returns a :class:`DeliveryReport` naming every milestone the broker never acknowledged.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from ticker.aggregate.milestones import Milestone
from ticker.publish import topics
from ticker.publish.connect import PROTOCOLS
from ticker.publish.outbox import DeliveryReport, Outbox
from ticker.publish.session import FINAL_GRACE_S, Session, Settings
from ticker.publish.topics import RunInfo
from ticker.publish.url import MqttUrl, PublishError, parse_url

log = logging.getLogger("ticker.publish")


class Publisher:
    """Publishes one run over MQTT from synchronous code, without ever blocking it.

    Args:
        url: ``mqtt://[user:pass@]host[:port]`` or ``mqtts://...`` (or a parsed :class:`MqttUrl`).
        info: the run (id, scenario, seed, scale, currency, zone) every payload names.
        tick_hz: the most ticks (and leaderboards) sent per wall-clock second.
        ca_file: a PEM file of CA certificates for ``mqtts://`` (default: the system's).
        protocol: ``"auto"`` (MQTT 5, falling back to 3.1.1 when the broker refuses it),
            ``"5"`` or ``"3.1.1"``.
        connect_timeout: seconds for one connection attempt (TCP, TLS and CONNACK).
        ack_timeout: seconds to wait for a PUBACK before treating the connection as dead.
        min_backoff, max_backoff: the reconnection delay starts at ``min_backoff`` seconds and
            doubles up to ``max_backoff`` (±20 % jitter), and starts over at each CONNACK. The
            defaults (0.05 s to 0.75 s) find a broker that is back within a second of it
            listening, while one that stays down sees about 1.3 attempts a second (a refused
            TCP connect each), not a stream.
        max_order_bytes: bound on queued raw order frames (the oldest is dropped beyond it).
        max_inflight: milestones awaiting PUBACK at once (each one costs one round trip).
        client_id: the MQTT client identifier (default: ``ticker-`` and random hex).

    Thread-safe. ``start()`` connects (blocking, bounded) and raises :class:`PublishError` if
    the first connection fails; after that, disconnections are survived. Cost per call from
    the engine: one uncontended lock; ``milestone`` also serialises the payload (~10 µs) and
    ``milestone``/``orders``/``status`` schedule a wake-up of the loop (one pipe write).
    """

    def __init__(self, url: str | MqttUrl, info: RunInfo, *, tick_hz: float = 10.0,
                 ca_file: str | os.PathLike[str] | None = None, protocol: str = "auto",
                 connect_timeout: float = 5.0, ack_timeout: float = 30.0,
                 min_backoff: float = 0.05, max_backoff: float = 0.75,
                 max_order_bytes: int = 64 << 20, max_inflight: int = 32,
                 client_id: str | None = None, keepalive: int = 30) -> None:
        self.url = parse_url(url)
        if ca_file is not None:
            if not self.url.tls:
                raise PublishError(f"a CA file was given but {self.url} is not TLS (use mqtts://)")
            if not os.path.isfile(ca_file):
                raise PublishError(f"CA file {os.fspath(ca_file)!r} not found")
        if protocol != "auto" and protocol not in PROTOCOLS:
            raise PublishError(f"MQTT protocol {protocol!r} is not auto, 5 or 3.1.1")
        if not tick_hz > 0:
            raise ValueError(f"tick_hz must be positive, not {tick_hz!r}")
        if not 0 < min_backoff <= max_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        self.info = info
        self.tick_hz = float(tick_hz)
        self._connect_timeout = float(connect_timeout)
        self._outbox = Outbox(info, str(self.url), max_order_bytes=int(max_order_bytes))
        self._session = Session(Settings(
            url=self.url, client_id=client_id or f"ticker-{secrets.token_hex(6)}",
            protocol=None if protocol == "auto" else PROTOCOLS[protocol],
            ca_file=os.fspath(ca_file) if ca_file is not None else None, tick_hz=self.tick_hz,
            connect_timeout=self._connect_timeout, ack_timeout=float(ack_timeout),
            min_backoff=float(min_backoff), max_backoff=float(max_backoff),
            max_inflight=int(max_inflight), keepalive=int(keepalive)), self._outbox)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = ("closed" if self._outbox.is_closed
                 else "connected" if self._session.connected else "not connected")
        return f"<Publisher run={self.info.run!r} url='{self.url}' {state}>"

    # --- the engine's side: thread-safe and non-blocking -----------------------------------

    def status(self, state: str = "running", **extra: Any) -> None:
        """Set the retained status (``running``/``finished``; the will says ``offline``).

        ``extra`` fields are kept and repeated in every later status, the final one included.
        """
        self._outbox.set_status(state, extra)
        self._session.wake("status")

    def tick(self, payload: bytes | Mapping[str, Any]) -> None:
        """Offer the latest GMV tick (bytes, or a dict from :func:`topics.tick_json`).

        Coalesced: only the newest is kept, and at most ``tick_hz`` are sent a second, so this
        may be called on every batch. A dict is serialised only if it is sent. Cost: a lock.
        """
        self._outbox.offer("tick", payload)

    def leaderboard(self, payload: bytes | Mapping[str, Any]) -> None:
        """Offer the latest leaderboard; coalesced like :meth:`tick`."""
        self._outbox.offer("leaderboard", payload)

    def milestone(self, milestone: Milestone, *, folded_us: int | None = None) -> None:
        """Queue a milestone: retained, QoS 1, re-sent until the broker acknowledges it.

        ``folded_us``: when the fold found it (wall clock, UTC µs), said in the payload.
        """
        self._outbox.add_milestone(milestone.id, topics.milestone_topic(self.info.run, milestone),
                                   topics.milestone_payload(self.info, milestone,
                                                            folded_us=folded_us))
        self._session.wake("milestones")

    def orders(self, partition: int | str, frame: bytes) -> None:
        """Queue a raw order frame for ``ticker/{run}/orders/{partition}`` (QoS 1, not retained).

        Bounded by ``max_order_bytes``: past it the oldest queued frame is dropped and counted
        in the report (the fold never waits for the network).
        """
        self._outbox.add_frame(topics.orders_topic(self.info.run, partition), bytes(frame))
        self._session.wake("orders")

    def report(self) -> DeliveryReport:
        """What has been delivered so far (the final one is returned by :meth:`close`)."""
        return self._outbox.report()

    @property
    def protocol(self) -> str | None:
        """The MQTT version spoken, ``"5"`` or ``"3.1.1"`` (None until "auto" has found out)."""
        spoken = self._session.protocol
        return None if spoken is None else next(k for k, v in PROTOCOLS.items() if v == spoken)

    @property
    def connected(self) -> bool:
        """Whether the publisher holds a live connection right now."""
        return self._session.connected

    def flush(self, timeout: float) -> bool:
        """Wait until the status, every milestone and every order frame are acknowledged.

        Returns False if ``timeout`` seconds pass first. Blocks the caller: not for the fold's
        hot path, but for a checkpoint or a test.
        """
        thread = self._thread
        return self._outbox.wait_drained(
            timeout, lambda: thread is None or thread.is_alive())

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> Publisher:
        """Connect, blocking for at most about ``2 × connect_timeout``; then return.

        Raises :class:`PublishError` (one line) if this FIRST connection fails, so a typo'd
        URL or a wrong password stops a run before it starts; later losses are survived.
        """
        if self._thread is not None:
            raise PublishError("publisher already started")
        self._thread = threading.Thread(target=self._session.run, daemon=True,
                                        name=f"ticker-publish-{self.info.run}")
        self._thread.start()
        budget = 2 * self._connect_timeout + 5.0
        if not self._session.ready.wait(budget):
            self.close(timeout=0)
            raise PublishError(f"no answer from MQTT broker {self.url} within {budget:g} s")
        if not self._session.ever_connected:
            self._thread.join(timeout=budget)
            self._outbox.refuse_more()
            raise PublishError(self._session.first_error or f"the publisher for {self.url} stopped")
        return self

    def close(self, timeout: float = 10.0, *, state: str = "finished", **extra: Any) -> DeliveryReport:
        """Flush (at most ``timeout`` s), publish "finished" (or ``state``: "offline" when
        interrupted) with ``extra`` fields added, disconnect; report what was lost. The final
        status goes out after everything queued before it is acknowledged (or the time is up).

        Returns within about ``timeout + 2 × FINAL_GRACE_S`` seconds, also when the broker is
        gone for good. Idempotent: a second call returns the same report.
        """
        done = self._outbox.begin_close(state, timeout, extra)
        if done is not None:
            return done
        self._session.wake("close")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout) + 2 * FINAL_GRACE_S + 1.0)
            if thread.is_alive():
                log.warning("publisher for %s did not stop in time; abandoning it", self.url)
                self._session.abandon()
        report = self._outbox.closed()
        if report.undelivered:
            log.warning("%s", report)
        return report

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
