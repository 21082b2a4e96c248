"""The MQTT publisher: a synchronous, non-blocking front over an aiomqtt client on its own thread.

Why a thread: the aggregator's fold is a tight numpy loop that must never wait on the network.
Every public method of :class:`Publisher` only takes a lock, stores into the outbox and, for the
kinds that are sent at once, schedules a wake-up on the publisher's event loop; the loop (one
daemon thread running ``asyncio``) owns the aiomqtt ``Client`` and does all the network work.

The outbox (invariant 6, "nothing lost"):

============  =========================================================================
kind          what the outbox keeps
============  =========================================================================
status        the latest; re-published (retained, QoS 1) on every (re)connection, so a
              broker that fired the will ("offline") hears "running" again
tick          the latest only (coalesced); sent at most ``tick_hz`` times a second
leaderboard   the latest only (coalesced); same rate as ticks
milestone     every one, until the broker's PUBACK; never dropped, never coalesced
              (a milestone re-submitted with the same id replaces its pending copy:
              ids are stable, so it is the same milestone). Bounded by the run's
              distinct milestone ids (thresholds x subjects: hundreds to thousands,
              ~0.5 kB each), not by time: an outage costs no more than the whole run
order frame   a FIFO bounded by ``max_order_bytes``; when full the OLDEST frame is
              dropped and counted (the fold must not block, and the event log, not
              this optional topic, is the record; a consumer sees the gap in ``seq``)
============  =========================================================================

On a lost connection the loop reconnects with capped exponential backoff (:class:`Backoff`:
0.05 s doubling to 0.75 s, ±20 % jitter, from the start again at each CONNACK, so a broker
that is back is found within a second and one that stays down sees ~1.3 attempts a second)
while the run goes on filling the outbox; after each
reconnection it re-publishes the status, every milestone not yet acknowledged and the latest
tick and leaderboard, and re-queues order frames whose PUBACK never came (QoS 1 is at least
once: a consumer may see a frame twice and drops it by ``seq``). Milestone topics are retained
and their ids stable, so a re-send never duplicates a milestone.

``close(timeout)`` drains the outbox (bounded by ``timeout``), publishes the final tick,
leaderboard and the "finished" status, disconnects cleanly (so the broker does not fire the
will) and returns a :class:`DeliveryReport` naming every milestone the broker never acknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from ticker.aggregate.milestones import Milestone
from ticker.publish import topics, upstream_workarounds
from ticker.publish.topics import RunInfo
from ticker.publish.url import MqttUrl, PublishError, parse_url

log = logging.getLogger("ticker.publish")
#: paho-mqtt's own log lines (socket errors while a broker restarts...). Quiet by default: the
#: publisher logs lost connections itself, once, on ``ticker.publish``.
_paho_log = logging.getLogger("ticker.publish.paho")
_paho_log.setLevel(logging.CRITICAL)

#: Protocol names accepted by ``Publisher(protocol=...)``.
PROTOCOLS = {"5": aiomqtt.ProtocolVersion.V5, "3.1.1": aiomqtt.ProtocolVersion.V311}

#: Seconds allowed after ``close()``'s timeout for the final status and the DISCONNECT.
FINAL_GRACE_S = 1.0

# CONNACK codes that mean "this broker does not speak this protocol version" (3.1.1 code 1,
# MQTT 5 reason 132): the signal to fall back from MQTT 5 to 3.1.1 (amqtt sends it).
_UNSUPPORTED_PROTOCOL = {1, 132}
_AUTH_CODES = {4: "bad user name or password", 5: "not authorised",
               134: "bad user name or password", 135: "not authorised"}


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a publisher delivered, as acknowledged by the broker.

    ``undelivered`` lists, in submission order, the ids of milestones whose PUBACK never came.
    """

    run: str
    url: str
    milestones_delivered: int
    undelivered: tuple[str, ...]
    ticks_sent: int
    leaderboards_sent: int
    order_frames_sent: int
    order_frames_dropped: int
    order_bytes_dropped: int
    reconnects: int
    finished: bool

    @property
    def ok(self) -> bool:
        """Every milestone acknowledged and the "finished" status acknowledged."""
        return not self.undelivered and self.finished

    def __str__(self) -> str:
        text = (f"published run {self.run} to {self.url}: {self.milestones_delivered} milestones "
                f"delivered, {self.ticks_sent} ticks, {self.order_frames_sent} order frames")
        if self.order_frames_dropped:
            text += f" ({self.order_frames_dropped} frames dropped)"
        if self.reconnects:
            text += f", {self.reconnects} reconnections"
        if self.undelivered:
            shown = ", ".join(self.undelivered[:3]) + (", ..." if len(self.undelivered) > 3 else "")
            text += f"; {len(self.undelivered)} milestones NOT delivered: {shown}"
        elif not self.finished:
            text += "; the final status was not acknowledged"
        return text


class _ConnectFailed(Exception):
    """A connection attempt failed; ``str()`` is the one-line reason."""


class _Drained(Exception):
    """Raised inside the session's task group to end it once ``close()`` has drained the outbox."""


@dataclass(order=True, slots=True)
class _Frame:
    n: int
    topic: str
    data: bytes


def describe_connect_error(exc: BaseException, url: MqttUrl, timeout: float) -> str:
    """One line saying why connecting to ``url`` failed (never the password)."""
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        code = getattr(exc.rc, "value", exc.rc)
        if code in _AUTH_CODES:
            why = _AUTH_CODES[code]
        else:
            why = str(exc.rc) if hasattr(exc.rc, "value") else str(exc).partition("] ")[2]
            why = (why or f"code {code}")
        return f"MQTT broker {url} refused the connection: {why[:1].lower()}{why[1:]}"
    text = " ".join(str(exc).split())
    low = text.lower()
    if "timed out" in low:
        line = f"MQTT broker {url} did not answer within {timeout:g} s"
    elif "refused" in low:
        line = f"cannot connect to MQTT broker {url}: connection refused (is a broker running?)"
    elif any(s in low for s in ("name or service", "nodename nor servname", "name resolution",
                                "no address associated", "getaddrinfo")):
        line = f"cannot connect to MQTT broker {url}: unknown host {url.host!r}"
    elif "ssl" in low or "certificate" in low or "tls" in low:
        line = f"TLS handshake with MQTT broker {url} failed: {text}"
    else:
        line = f"cannot connect to MQTT broker {url}: {text or type(exc).__name__}"
    if url.password:
        line = line.replace(url.password, "***")
    return line


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
        self._ca_file = os.fspath(ca_file) if ca_file is not None else None
        self._protocol = None if protocol == "auto" else PROTOCOLS[protocol]
        self._connect_timeout = float(connect_timeout)
        self._ack_timeout = float(ack_timeout)
        self._min_backoff = float(min_backoff)
        self._max_backoff = float(max_backoff)
        self._max_order_bytes = int(max_order_bytes)
        self._max_inflight = int(max_inflight)
        self._orders_window = 4
        self._client_id = client_id or f"ticker-{secrets.token_hex(6)}"
        self._keepalive = int(keepalive)

        self._status_topic = topics.status_topic(info.run)
        self._gmv_topic = topics.gmv_topic(info.run)
        self._board_topic = topics.leaderboard_topic(info.run)
        self._will = aiomqtt.Will(self._status_topic, topics.status_payload(info, "offline"),
                                  qos=topics.STATUS.qos, retain=topics.STATUS.retain)

        # --- the outbox: everything below is guarded by _lock --------------------------------
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._status_extra: dict[str, Any] = {}
        self._status_bytes = topics.status_payload(info, "running")
        self._status_version = 1
        self._status_acked = 0
        self._tick: bytes | Mapping[str, Any] | None = None
        self._last_tick: bytes | None = None
        self._board: bytes | Mapping[str, Any] | None = None
        self._last_board: bytes | None = None
        self._milestones: dict[str, tuple[str, bytes]] = {}
        self._milestones_new: list[str] = []
        self._orders: collections.deque[_Frame] = collections.deque()
        self._orders_bytes = 0
        self._orders_n = 0
        self._orders_inflight: dict[int, _Frame] = {}
        self._delivered = 0
        self._ticks_sent = 0
        self._boards_sent = 0
        self._frames_sent = 0
        self._frames_dropped = 0
        self._bytes_dropped = 0
        self._reconnects = 0
        self._session_connected = False  # the current connection attempt got its CONNACK
        self._finished = False
        self._connected = False
        self._closing = False
        self._final_state = "finished"  # what close() says last ("offline" when interrupted)
        self._deadline = math.inf
        self._report: DeliveryReport | None = None

        # --- the loop's side (set on the publisher thread) -----------------------------------
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._first_error: str | None = None
        self._ever_connected = False
        self._status_kick: asyncio.Event
        self._milestones_kick: asyncio.Event
        self._orders_kick: asyncio.Event
        self._close_kick: asyncio.Event
        self._progress: asyncio.Event

    def __repr__(self) -> str:
        state = "closed" if self._report else ("connected" if self._connected else "not connected")
        return f"<Publisher run={self.info.run!r} url='{self.url}' {state}>"

    # --- the engine's side: thread-safe and non-blocking -----------------------------------

    def status(self, state: str = "running", **extra: Any) -> None:
        """Set the retained status (``running``/``finished``; the will says ``offline``).

        ``extra`` fields are kept and repeated in every later status, the final one included.
        """
        with self._lock:
            self._check_open()
            merged = {**self._status_extra, **extra}
            self._status_bytes = topics.status_payload(self.info, state, **merged)
            self._status_extra = merged
            self._status_version += 1
        self._kick("_status_kick")

    def tick(self, payload: bytes | Mapping[str, Any]) -> None:
        """Offer the latest GMV tick (bytes, or a dict from :func:`topics.tick_json`).

        Coalesced: only the newest is kept, and at most ``tick_hz`` are sent a second, so this
        may be called on every batch. A dict is serialised only if it is sent. Cost: a lock.
        """
        with self._lock:
            self._check_open()
            self._tick = payload

    def leaderboard(self, payload: bytes | Mapping[str, Any]) -> None:
        """Offer the latest leaderboard; coalesced like :meth:`tick`."""
        with self._lock:
            self._check_open()
            self._board = payload

    def milestone(self, milestone: Milestone) -> None:
        """Queue a milestone: retained, QoS 1, re-sent until the broker acknowledges it."""
        topic = topics.milestone_topic(self.info.run, milestone)
        payload = topics.milestone_payload(self.info, milestone)
        with self._lock:
            self._check_open()
            self._milestones.pop(milestone.id, None)  # a re-submission goes to the back
            self._milestones[milestone.id] = (topic, payload)
            self._milestones_new.append(milestone.id)
        self._kick("_milestones_kick")

    def orders(self, partition: int | str, frame: bytes) -> None:
        """Queue a raw order frame for ``ticker/{run}/orders/{partition}`` (QoS 1, not retained).

        Bounded by ``max_order_bytes``: past it the oldest queued frame is dropped and counted
        in the report (the fold never waits for the network).
        """
        topic = topics.orders_topic(self.info.run, partition)
        data = bytes(frame)
        with self._lock:
            self._check_open()
            self._orders_n += 1
            self._orders.append(_Frame(self._orders_n, topic, data))
            self._orders_bytes += len(data)
            self._trim_orders()
        self._kick("_orders_kick")

    def report(self) -> DeliveryReport:
        """What has been delivered so far (the final one is returned by :meth:`close`)."""
        with self._lock:
            return self._snapshot()

    @property
    def connected(self) -> bool:
        """Whether the publisher holds a live connection right now."""
        return self._connected

    def flush(self, timeout: float) -> bool:
        """Wait until the status, every milestone and every order frame are acknowledged.

        Returns False if ``timeout`` seconds pass first. Blocks the caller: not for the fold's
        hot path, but for a checkpoint or a test.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._drained():
                left = deadline - time.monotonic()
                if left <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    return self._drained()
                self._changed.wait(left)
            return True

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> Publisher:
        """Connect, blocking for at most about ``2 × connect_timeout``; then return.

        Raises :class:`PublishError` (one line) if this FIRST connection fails, so a typo'd
        URL or a wrong password stops a run before it starts; later losses are survived.
        """
        if self._thread is not None:
            raise PublishError("publisher already started")
        self._thread = threading.Thread(target=self._thread_main, daemon=True,
                                        name=f"ticker-publish-{self.info.run}")
        self._thread.start()
        budget = 2 * self._connect_timeout + 5.0
        if not self._ready.wait(budget):
            self.close(timeout=0)
            raise PublishError(f"no answer from MQTT broker {self.url} within {budget:g} s")
        if not self._ever_connected:
            self._thread.join(timeout=budget)
            with self._lock:
                self._closing = True
            raise PublishError(self._first_error or f"the publisher for {self.url} stopped")
        return self

    def close(self, timeout: float = 10.0, *, state: str = "finished") -> DeliveryReport:
        """Flush (at most ``timeout`` s), publish "finished" (or ``state``: "offline" when
        interrupted), disconnect; report what was lost.

        Returns within about ``timeout + 2 × FINAL_GRACE_S`` seconds, also when the broker is
        gone for good. Idempotent: a second call returns the same report.
        """
        with self._lock:
            if self._report is not None:
                return self._report
            self._closing = True
            self._final_state = state
            self._deadline = time.monotonic() + max(0.0, timeout)
        self._kick("_close_kick")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout) + 2 * FINAL_GRACE_S + 1.0)
            if thread.is_alive():
                log.warning("publisher for %s did not stop in time; abandoning it", self.url)
                self._stop_loop()
        with self._lock:
            self._report = self._snapshot()
            report = self._report
        if report.undelivered:
            log.warning("%s", report)
        return report

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- helpers (call with _lock held unless said otherwise) --------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise PublishError(f"publisher for run {self.info.run} is closed")

    def _snapshot(self) -> DeliveryReport:
        return DeliveryReport(
            run=self.info.run, url=str(self.url), milestones_delivered=self._delivered,
            undelivered=tuple(self._milestones), ticks_sent=self._ticks_sent,
            leaderboards_sent=self._boards_sent, order_frames_sent=self._frames_sent,
            order_frames_dropped=self._frames_dropped, order_bytes_dropped=self._bytes_dropped,
            reconnects=self._reconnects, finished=self._finished)

    def _drained(self) -> bool:
        return (not self._milestones and not self._orders and not self._orders_inflight
                and self._status_acked >= self._status_version)

    def _trim_orders(self) -> None:
        while self._orders_bytes > self._max_order_bytes and len(self._orders) > 1:
            dropped = self._orders.popleft()
            self._orders_bytes -= len(dropped.data)
            self._frames_dropped += 1
            self._bytes_dropped += len(dropped.data)

    def _kick(self, name: str) -> None:
        """Wake the loop's worker waiting on event ``name`` (no lock held; any thread)."""
        loop = self._loop
        if loop is None:
            return  # not started yet: the first connection sends everything queued
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            loop.call_soon_threadsafe(self._set_event, name)

    def _set_event(self, name: str) -> None:
        getattr(self, name).set()

    def _stop_loop(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._cancel_all)

    def _cancel_all(self) -> None:
        for task in asyncio.all_tasks():
            task.cancel()

    # --- the publisher thread -----------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException:  # a bug: keep the engine running, say so once
            log.exception("publisher for %s stopped", self.url)
        finally:
            self._connected = False
            self._ready.set()
            with self._changed:
                self._changed.notify_all()

    async def _main(self) -> None:
        self._status_kick = asyncio.Event()
        self._milestones_kick = asyncio.Event()
        self._orders_kick = asyncio.Event()
        self._close_kick = asyncio.Event()
        self._progress = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # from now on, _kick() reaches the events above
        if self._closing:
            self._close_kick.set()
        backoff = Backoff(self._min_backoff, self._max_backoff)
        while True:
            self._session_connected = False
            try:
                await self._session()
                return
            except _ConnectFailed as exc:
                if not self._ever_connected:
                    self._first_error = str(exc)
                    return
                reason = str(exc)
            except BaseExceptionGroup as group:
                reason = _group_reason(group)
            except Exception as exc:  # a bug, not the network: say so, and keep the outbox alive
                log.exception("publisher error")
                reason = f"publisher error: {type(exc).__name__}: {exc}"
            finally:
                self._connected = False
                self._requeue_frames()
            if self._session_connected:  # a CONNACK came: the next outage starts fast again
                backoff.reset()
            delay = backoff.next()
            if self._closing:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    return
                log.warning("%s; retrying in %.1f s (closing, %.1f s left)", reason, delay, left)
                await asyncio.sleep(min(delay, left))
            else:
                log.warning("%s; reconnecting in %.1f s", reason, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # not wait_for: see upstream_workarounds
                        await self._close_kick.wait()

    def _requeue_frames(self) -> None:
        with self._lock:
            back = sorted(self._orders_inflight.values())
            self._orders_inflight.clear()
            self._orders.extendleft(reversed(back))
            self._orders_bytes += sum(len(f.data) for f in back)
            self._trim_orders()

    async def _session(self) -> None:
        """One connection: serve the outbox until it is lost or ``close()`` has drained it."""
        stack = contextlib.AsyncExitStack()
        client = await self._connect(stack)
        self._session_connected = True
        if self._ever_connected:
            self._reconnects += 1
            log.warning("reconnected to %s", self.url)
        self._ever_connected = True
        self._connected = True
        self._ready.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(client))
                group.create_task(self._status_worker(client))
                group.create_task(self._milestone_worker(client, group))
                group.create_task(self._tick_worker(client))
                group.create_task(self._orders_worker(client, group))
                group.create_task(self._closer())
        except BaseExceptionGroup as group:
            leaves = _leaves(group)
            if not all(isinstance(e, _Drained) for e in leaves):
                _retrieve_disconnect(client)
                with contextlib.suppress(aiomqtt.MqttError):
                    await stack.aclose()
                raise
        except BaseException:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()
            raise
        await self._final(client)
        self._connected = False
        with contextlib.suppress(aiomqtt.MqttError):
            await stack.aclose()  # DISCONNECT: a clean goodbye, so the broker drops the will
        _retrieve_disconnect(client)

    async def _connect(self, stack: contextlib.AsyncExitStack) -> aiomqtt.Client:
        timeout = self._connect_timeout
        if self._closing:
            timeout = max(0.2, min(timeout, self._deadline - time.monotonic()))
        if self._protocol is None:
            self._protocol = await self._detect_protocol(timeout)
        client = self._make_client(self._protocol, timeout)
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            _discard(client)
            raise _ConnectFailed(describe_connect_error(exc, self.url, timeout)) from None
        return client

    async def _detect_protocol(self, timeout: float) -> aiomqtt.ProtocolVersion:
        """MQTT 5 if the broker accepts it, else 3.1.1: one probe connection, without a will.

        Why a probe: a 3.1.1-only broker should answer an MQTT 5 CONNECT with "unsupported
        protocol version", but amqtt 0.12 misreads one that carries a will and drops the
        connection without a CONNACK, which would cost a whole ``connect_timeout``. Costs one
        extra connect round trip, once per publisher (the answer is kept for reconnections).
        """
        probe = self._make_client(aiomqtt.ProtocolVersion.V5, timeout, will=False)
        try:
            async with probe:
                pass
        except MqttConnectError as exc:
            _discard(probe)
            code = getattr(exc.rc, "value", exc.rc)
            if code in _UNSUPPORTED_PROTOCOL:
                return aiomqtt.ProtocolVersion.V311
            raise _ConnectFailed(describe_connect_error(exc, self.url, timeout)) from None
        except aiomqtt.MqttError as exc:
            _discard(probe)
            raise _ConnectFailed(describe_connect_error(exc, self.url, timeout)) from None
        _retrieve_disconnect(probe)
        return aiomqtt.ProtocolVersion.V5

    def _make_client(self, protocol: aiomqtt.ProtocolVersion, timeout: float, *,
                     will: bool = True) -> aiomqtt.Client:
        kwargs: dict[str, Any] = {}
        if protocol == aiomqtt.ProtocolVersion.V311:
            kwargs["clean_session"] = True  # the outbox, not the broker, keeps what is unsent
        if self.url.tls:
            kwargs["tls_params"] = aiomqtt.TLSParameters(ca_certs=self._ca_file)
        client = aiomqtt.Client(
            self.url.host, self.url.port, username=self.url.username,
            password=self.url.password, identifier=self._client_id, protocol=protocol,
            will=self._will if will else None, timeout=timeout, keepalive=self._keepalive, logger=_paho_log,
            max_inflight_messages=self._max_inflight + self._orders_window + 4, **kwargs)
        client.pending_calls_threshold = 1 << 30  # many PUBACKs in flight is the point
        # paho's TCP/TLS connect timeout defaults to 5 s; make the whole attempt obey ours.
        with contextlib.suppress(AttributeError, RuntimeError, ValueError):
            client._client.connect_timeout = timeout
        return client

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Raise ``MqttError`` as soon as the connection drops (aiomqtt's public signal)."""
        async for _ in client.messages:
            pass

    async def _status_worker(self, client: aiomqtt.Client) -> None:
        self._status_kick.set()  # every connection starts by saying "running" again
        while True:
            await self._status_kick.wait()
            self._status_kick.clear()
            with self._lock:
                payload, version = self._status_bytes, self._status_version
            await self._send(client, self._status_topic, payload, topics.STATUS)
            with self._changed:
                self._status_acked = max(self._status_acked, version)
                self._changed.notify_all()
            self._progress.set()

    async def _milestone_worker(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        inflight: set[str] = set()
        window = asyncio.Semaphore(self._max_inflight)
        first = True
        self._milestones_kick.set()
        while True:
            await self._milestones_kick.wait()
            self._milestones_kick.clear()
            with self._lock:
                if first:  # a new connection: everything not yet acknowledged
                    ids, first = list(self._milestones), False
                    self._milestones_new.clear()
                else:
                    ids, self._milestones_new = self._milestones_new, []
            for mid in ids:
                with self._lock:
                    entry = self._milestones.get(mid)
                if entry is None or mid in inflight:
                    continue
                await window.acquire()
                inflight.add(mid)
                group.create_task(self._send_milestone(client, mid, entry, inflight, window))

    async def _send_milestone(self, client: aiomqtt.Client, mid: str, entry: tuple[str, bytes],
                              inflight: set[str], window: asyncio.Semaphore) -> None:
        topic, payload = entry
        try:
            await self._send(client, topic, payload, topics.MILESTONE)
        finally:
            inflight.discard(mid)
            window.release()
        with self._changed:
            if self._milestones.get(mid) is entry:
                del self._milestones[mid]
                self._delivered += 1
            elif mid in self._milestones:  # replaced while in flight: send the new copy
                self._milestones_new.append(mid)
                self._milestones_kick.set()
            self._changed.notify_all()
        self._progress.set()

    async def _tick_worker(self, client: aiomqtt.Client) -> None:
        with self._lock:  # after a reconnection, say the latest again (a broker may have lost it)
            if self._tick is None:
                self._tick = self._last_tick
            if self._board is None:
                self._board = self._last_board
        interval = 1.0 / self.tick_hz
        while True:
            await self._send_latest(client)
            await asyncio.sleep(interval)

    async def _send_latest(self, client: aiomqtt.Client) -> None:
        """Send the pending tick and leaderboard, if any (QoS 0, retained)."""
        for kind in ("_tick", "_board"):
            with self._lock:
                payload = getattr(self, kind)
                setattr(self, kind, None)
            if payload is None:
                continue
            data = payload if isinstance(payload, bytes) else topics.dumps(payload)
            topic = self._gmv_topic if kind == "_tick" else self._board_topic
            try:
                await self._send(client, topic, data, topics.GMV)
            except BaseException:
                with self._lock:
                    if getattr(self, kind) is None:
                        setattr(self, kind, data)
                raise
            with self._lock:
                if kind == "_tick":
                    self._last_tick, self._ticks_sent = data, self._ticks_sent + 1
                else:
                    self._last_board, self._boards_sent = data, self._boards_sent + 1

    async def _orders_worker(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        window = asyncio.Semaphore(self._orders_window)
        self._orders_kick.set()
        while True:
            await self._orders_kick.wait()
            self._orders_kick.clear()
            while True:
                await window.acquire()
                with self._lock:
                    frame = self._orders.popleft() if self._orders else None
                    if frame is not None:
                        self._orders_bytes -= len(frame.data)
                        self._orders_inflight[frame.n] = frame
                if frame is None:
                    window.release()
                    break
                group.create_task(self._send_frame(client, frame, window))

    async def _send_frame(self, client: aiomqtt.Client, frame: _Frame,
                          window: asyncio.Semaphore) -> None:
        try:
            await self._send(client, frame.topic, frame.data, topics.ORDERS)
        finally:
            window.release()
        with self._changed:
            self._orders_inflight.pop(frame.n, None)
            self._frames_sent += 1
            self._changed.notify_all()
        self._progress.set()

    async def _send(self, client: aiomqtt.Client, topic: str, payload: bytes,
                    delivery: topics.Delivery, *, timeout: float | None = None) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 0: for the write), at most
        ``timeout`` s (default ``ack_timeout``); a cancellation is never lost on the way."""
        await upstream_workarounds.publish(
            client, topic, payload, qos=delivery.qos, retain=delivery.retain,
            timeout=self._ack_timeout if timeout is None else timeout)

    async def _closer(self) -> None:
        """On ``close()``: wait until drained (or the deadline), then end the session."""
        await self._close_kick.wait()
        while True:
            self._progress.clear()
            with self._lock:
                drained = self._drained()
            left = self._deadline - time.monotonic()
            if drained or left <= 0:
                raise _Drained
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._progress.wait()

    async def _final(self, client: aiomqtt.Client) -> None:
        """Last words on a live connection: the latest tick and leaderboard, then "finished"."""
        left = max(0.0, self._deadline - time.monotonic()) + FINAL_GRACE_S
        with self._lock:
            payload = topics.status_payload(self.info, self._final_state, **self._status_extra)
        try:
            async with asyncio.timeout(left):
                await self._send_latest(client)
                await self._send(client, self._status_topic, payload, topics.STATUS, timeout=left)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("could not publish the final status to %s: %s", self.url, exc)
            return
        with self._changed:
            self._finished = True
            self._changed.notify_all()


class Backoff:
    """Reconnection delays: ``low`` doubling to ``high``, each ±20 % (jitter, so that many
    publishers cut off together do not come back in step); :meth:`reset` at every CONNACK.

    >>> b = Backoff(0.05, 0.75, uniform=lambda lo, hi: 1.0)
    >>> [round(b.next(), 2) for _ in range(6)]
    [0.05, 0.1, 0.2, 0.4, 0.75, 0.75]
    """

    def __init__(self, low: float, high: float, *,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.low, self.high, self.uniform = low, high, uniform
        self.current = low

    def next(self) -> float:
        delay = self.current * self.uniform(0.8, 1.2)
        self.current = min(self.current * 2, self.high)
        return delay

    def reset(self) -> None:
        self.current = self.low


def _discard(client: aiomqtt.Client) -> None:
    """Close the socket a failed connection attempt may have left open.

    aiomqtt leaves it to the garbage collector (a ``ResourceWarning``) when the CONNACK never
    comes; paho's ``_sock_close`` also unregisters it from our loop.
    """
    paho_client = getattr(client, "_client", None)
    if paho_client is not None and paho_client.socket() is not None:
        with contextlib.suppress(Exception):
            paho_client._sock_close()
    _retrieve_disconnect(client)


def _retrieve_disconnect(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's disconnect future as seen, so asyncio does not log it as never retrieved."""
    future = getattr(client, "_disconnected", None)
    if future is not None and future.done() and not future.cancelled():
        future.exception()


def _group_reason(group: BaseExceptionGroup) -> str:
    for exc in _leaves(group):
        if isinstance(exc, aiomqtt.MqttError):
            return f"lost connection to MQTT broker ({' '.join(str(exc).split()) or 'no reason'})"
    for exc in _leaves(group):
        if not isinstance(exc, asyncio.CancelledError):
            log.error("publisher error", exc_info=exc)
            return f"publisher error: {type(exc).__name__}: {exc}"
    return "publisher session ended"


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
