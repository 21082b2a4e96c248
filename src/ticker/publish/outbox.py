"""The publisher's outbox: what is held, per kind, until the broker acknowledges it.

Shared by two threads: the engine's (which offers work, and must never wait on the network) and
the publisher's session (which takes work out, sends it, and records acknowledgements). Every
method takes the one lock; none blocks on anything else, except :meth:`Outbox.wait_drained`.

Invariant 6, "nothing lost":

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
              this optional topic, is the record; a consumer sees the gap in ``seq``).
              Frames sent but not acknowledged when a connection drops go back to the
              front of the queue (QoS 1 is at least once: a consumer drops a repeat
              by ``seq``)
============  =========================================================================
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ticker.publish import topics
from ticker.publish.topics import RunInfo
from ticker.publish.url import PublishError

#: The two coalesced kinds: only the newest of each is kept.
Latest = Literal["tick", "leaderboard"]


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


@dataclass(order=True, slots=True)
class OrderFrame:
    """One raw order frame for an ``orders/{partition}`` topic; ``n`` orders frames by
    submission, so a re-queued frame goes back to its place."""

    n: int
    topic: str
    data: bytes


class _Latest:
    """One coalesced kind: the newest offer, and the last one sent (said again after a
    reconnection, since a broker may have lost it)."""

    __slots__ = ("last_sent", "pending", "sent")

    def __init__(self) -> None:
        self.pending: bytes | Mapping[str, Any] | None = None
        self.last_sent: bytes | None = None
        self.sent = 0


class Outbox:
    """Everything a publisher holds for the broker, and what it has delivered; thread-safe."""

    def __init__(self, info: RunInfo, url: str, *, max_order_bytes: int) -> None:
        self.info = info
        self.url = url
        self._max_order_bytes = max_order_bytes
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified at every acknowledgement
        self._status_extra: dict[str, Any] = {}
        self._status_bytes = topics.status_payload(info, "running")
        self._status_version = 1
        self._status_acked = 0
        self._latest: dict[Latest, _Latest] = {"tick": _Latest(), "leaderboard": _Latest()}
        self._milestones: dict[str, tuple[str, bytes]] = {}
        self._milestones_new: list[str] = []
        self._delivered = 0
        self._orders: collections.deque[OrderFrame] = collections.deque()
        self._orders_bytes = 0
        self._orders_n = 0
        self._orders_inflight: dict[int, OrderFrame] = {}
        self._frames_sent = 0
        self._frames_dropped = 0
        self._bytes_dropped = 0
        self._reconnects = 0
        self._finished = False
        # closing: no more offers; the session drains until the deadline, then says final_state
        self.closing = False
        self.final_state = "finished"
        self.deadline = math.inf
        self._final_report: DeliveryReport | None = None

    # --- the engine's side: offers (any thread, never blocking) ---------------------------

    def set_status(self, state: str, extra: Mapping[str, Any]) -> None:
        """The retained status from now on; ``extra`` fields are kept for every later one."""
        with self._lock:
            self._check_open()
            merged = {**self._status_extra, **extra}
            self._status_bytes = topics.status_payload(self.info, state, **merged)
            self._status_extra = merged
            self._status_version += 1

    def offer(self, kind: Latest, payload: bytes | Mapping[str, Any]) -> None:
        """The newest tick or leaderboard (a mapping is serialised only if it is sent)."""
        with self._lock:
            self._check_open()
            self._latest[kind].pending = payload

    def add_milestone(self, mid: str, topic: str, payload: bytes) -> None:
        with self._lock:
            self._check_open()
            self._milestones.pop(mid, None)  # a re-submission goes to the back
            self._milestones[mid] = (topic, payload)
            self._milestones_new.append(mid)

    def add_frame(self, topic: str, data: bytes) -> None:
        with self._lock:
            self._check_open()
            self._orders_n += 1
            self._orders.append(OrderFrame(self._orders_n, topic, data))
            self._orders_bytes += len(data)
            self._trim_orders()

    def report(self) -> DeliveryReport:
        """What has been delivered so far (the final report once :meth:`closed` made it)."""
        with self._lock:
            return self._final_report or self._snapshot()

    def wait_drained(self, timeout: float, alive: Callable[[], bool]) -> bool:
        """Block until everything is acknowledged (True), ``timeout`` s pass or ``alive()``
        turns False (then: whether it is drained)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._drained():
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    return self._drained()
                self._changed.wait(left)
            return True

    def wake_waiters(self) -> None:
        """Wake :meth:`wait_drained` callers to look again (the session's thread has ended)."""
        with self._changed:
            self._changed.notify_all()

    # --- closing ----------------------------------------------------------------------------

    def refuse_more(self) -> None:
        """No more offers (a publisher that never started)."""
        with self._lock:
            self.closing = True

    def begin_close(self, state: str, timeout: float,
                    extra: Mapping[str, Any] | None = None) -> DeliveryReport | None:
        """Start closing: drain for at most ``timeout`` s, then say ``state`` (with ``extra``
        fields too). Returns the final report if a close already finished (closing is
        idempotent), else None."""
        with self._lock:
            if self._final_report is not None:
                return self._final_report
            self.closing = True
            self.final_state = state
            self._status_extra = {**self._status_extra, **(extra or {})}
            self.deadline = time.monotonic() + max(0.0, timeout)
            return None

    def closed(self) -> DeliveryReport:
        """The final report, fixed from now on."""
        with self._lock:
            if self._final_report is None:
                self._final_report = self._snapshot()
            return self._final_report

    @property
    def is_closed(self) -> bool:
        return self._final_report is not None

    # --- the session's side -----------------------------------------------------------------

    def status_to_send(self) -> tuple[bytes, int]:
        with self._lock:
            return self._status_bytes, self._status_version

    def status_acknowledged(self, version: int) -> None:
        with self._changed:
            self._status_acked = max(self._status_acked, version)
            self._changed.notify_all()

    def final_status(self) -> bytes:
        """The last status to say: ``final_state`` with every extra field so far."""
        with self._lock:
            return topics.status_payload(self.info, self.final_state, **self._status_extra)

    def finished(self) -> None:
        """The final status was acknowledged."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def milestones_to_send(self, *, everything: bool) -> list[str]:
        """Ids to send: those offered since the last call, or (a new connection) every one
        not yet acknowledged."""
        with self._lock:
            if everything:
                self._milestones_new.clear()
                return list(self._milestones)
            ids, self._milestones_new = self._milestones_new, []
            return ids

    def milestone(self, mid: str) -> tuple[str, bytes] | None:
        """The pending ``(topic, payload)`` of milestone ``mid`` (None once acknowledged)."""
        with self._lock:
            return self._milestones.get(mid)

    def milestone_acknowledged(self, mid: str, entry: tuple[str, bytes]) -> bool:
        """The broker acknowledged ``entry`` of ``mid``. True if a newer copy replaced it while
        in flight: that one is queued again and must be sent."""
        with self._changed:
            again = False
            if self._milestones.get(mid) is entry:
                del self._milestones[mid]
                self._delivered += 1
            elif mid in self._milestones:
                self._milestones_new.append(mid)
                again = True
            self._changed.notify_all()
            return again

    def resend_latest(self) -> None:
        """A new connection: offer the last sent tick and leaderboard again unless newer wait."""
        with self._lock:
            for latest in self._latest.values():
                if latest.pending is None:
                    latest.pending = latest.last_sent

    def take_latest(self, kind: Latest) -> bytes | Mapping[str, Any] | None:
        with self._lock:
            latest = self._latest[kind]
            payload, latest.pending = latest.pending, None
            return payload

    def put_back_latest(self, kind: Latest, data: bytes) -> None:
        """A send of ``data`` failed: keep it, unless a newer one was offered meanwhile."""
        with self._lock:
            latest = self._latest[kind]
            if latest.pending is None:
                latest.pending = data

    def latest_sent(self, kind: Latest, data: bytes) -> None:
        with self._lock:
            latest = self._latest[kind]
            latest.last_sent = data
            latest.sent += 1

    def next_frame(self) -> OrderFrame | None:
        """The oldest queued order frame, now in flight (None if the queue is empty)."""
        with self._lock:
            if not self._orders:
                return None
            frame = self._orders.popleft()
            self._orders_bytes -= len(frame.data)
            self._orders_inflight[frame.n] = frame
            return frame

    def frame_acknowledged(self, frame: OrderFrame) -> None:
        with self._changed:
            self._orders_inflight.pop(frame.n, None)
            self._frames_sent += 1
            self._changed.notify_all()

    def requeue_frames(self) -> None:
        """A connection ended: frames in flight go back to the front, in their order."""
        with self._lock:
            back = sorted(self._orders_inflight.values())
            self._orders_inflight.clear()
            self._orders.extendleft(reversed(back))
            self._orders_bytes += sum(len(f.data) for f in back)
            self._trim_orders()

    def reconnected(self) -> None:
        with self._lock:
            self._reconnects += 1

    def drained(self) -> bool:
        """The status, every milestone and every order frame acknowledged."""
        with self._lock:
            return self._drained()

    # --- helpers (call with the lock held) ---------------------------------------------------

    def _check_open(self) -> None:
        if self.closing:
            raise PublishError(f"publisher for run {self.info.run} is closed")

    def _drained(self) -> bool:
        return (not self._milestones and not self._orders and not self._orders_inflight
                and self._status_acked >= self._status_version)

    def _trim_orders(self) -> None:
        while self._orders_bytes > self._max_order_bytes and len(self._orders) > 1:
            dropped = self._orders.popleft()
            self._orders_bytes -= len(dropped.data)
            self._frames_dropped += 1
            self._bytes_dropped += len(dropped.data)

    def _snapshot(self) -> DeliveryReport:
        return DeliveryReport(
            run=self.info.run, url=self.url, milestones_delivered=self._delivered,
            undelivered=tuple(self._milestones), ticks_sent=self._latest["tick"].sent,
            leaderboards_sent=self._latest["leaderboard"].sent,
            order_frames_sent=self._frames_sent, order_frames_dropped=self._frames_dropped,
            order_bytes_dropped=self._bytes_dropped, reconnects=self._reconnects,
            finished=self._finished)
