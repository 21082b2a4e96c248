"""The engine's MQTT sink: hands a run's milestones, ticks and leaderboards to a :class:`Publisher`.

Everything here is non-blocking for the fold (the publisher queues and sends on its own thread)
except :meth:`MqttSink.finish`, which waits a bounded time for the broker to acknowledge every
milestone and then records in the summary what, if anything, was not delivered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ticker.aggregate.milestones import Milestone
from ticker.events import OrderBatch
from ticker.publish import topics
from ticker.publish.broker import PROTOCOL as BROKER_PROTOCOL
from ticker.publish.broker import EmbeddedBroker
from ticker.publish.publisher import Publisher
from ticker.publish.topics import RunInfo
from ticker.publish.url import PublishError
from ticker.sink import RunStart
from ticker.views import Delivery, Summary, Tick

if TYPE_CHECKING:
    from ticker.engine import Run

ORDER_PARTITIONS = 8


DEFAULT_PORT = 1883


def connect(run: Run, url: str, *, tick_hz: float = 10.0, ca_file: str | None = None,
            orders: bool = False) -> MqttSink:
    """A started sink for ``run``: to ``url``, or with ``url=""`` to the local default broker.

    With no URL: an embedded broker on 127.0.0.1:1883, stopped at shutdown; if that port is
    taken by a broker that answers (``ticker broker`` in another terminal, a local Mosquitto),
    that broker, so its subscribers see the run; else an embedded broker on a free port.
    Raises :class:`PublishError` (one line) if the first connection fails.
    """
    info = RunInfo(run.run, run.scenario.name, run.seed, run.scale, run.scenario.currency,
                   run.scenario.zone, title=run.scenario.title,
                   windows=tuple((w.name, w.start_us, w.end_us) for w in run.scenario.windows),
                   started=datetime.now(UTC).isoformat(timespec="milliseconds"))
    broker = None
    if not url:
        try:
            broker = EmbeddedBroker("127.0.0.1", DEFAULT_PORT).start()
        except PublishError:
            local = f"mqtt://127.0.0.1:{DEFAULT_PORT}"
            try:
                publisher = Publisher(local, info, tick_hz=tick_hz, connect_timeout=2.0).start()
                return MqttSink(publisher, orders=orders, where=f"publishing to the broker already "
                                f"listening on {local}")
            except PublishError:  # the port is taken by something else: a private broker
                broker = EmbeddedBroker("127.0.0.1", 0).start()
        url = broker.url
    try:  # amqtt speaks 3.1.1 only: don't make it refuse an MQTT 5 probe first
        publisher = Publisher(url, info, tick_hz=tick_hz, ca_file=ca_file,
                              protocol=BROKER_PROTOCOL if broker is not None else "auto").start()
    except BaseException:
        if broker is not None:
            broker.stop()
        raise
    where = (f"publishing on the embedded broker at {broker.url} (subscribe: ticker watch "
             f"--mqtt {broker.url})") if broker is not None else ""
    return MqttSink(publisher, orders=orders, broker=broker, where=where)


class MqttSink:
    def __init__(self, publisher: Publisher, *, orders: bool = False, close_timeout: float = 10.0,
                 broker: EmbeddedBroker | None = None, where: str = ""):
        self.publisher = publisher
        self.broker = broker
        self.where = where  # where the run is published, for the terminal
        self.info = publisher.info
        self.close_timeout = close_timeout
        self.publish_orders = orders

    def start(self, run: RunStart) -> None:
        self.publisher.status("running", events=run.total_events)
        # A resumed run re-derived these from its log; re-publishing a retained topic is
        # idempotent, and it repairs any the crash kept from the broker.
        for m in run.milestones:
            self.publisher.milestone(m)

    def milestones(self, found: Sequence[Milestone]) -> None:
        folded_us = time.time_ns() // 1000  # the engine calls this as the fold returns them
        for m in found:
            self.publisher.milestone(m, folded_us=folded_us)

    def orders(self, batch: OrderBatch) -> None:
        """With ``--publish-orders``: the batch as one frame per brand partition (brand mod N),
        so an aggregator in another process can subscribe to a share of the brands."""
        if not self.publish_orders or not len(batch):
            return
        key = (batch.brand % ORDER_PARTITIONS).astype(np.uint8)
        order = np.argsort(key, kind="stable")  # a radix sort on uint8; keeps seq order inside
        counts = np.bincount(key, minlength=ORDER_PARTITIONS)
        start = 0
        for partition, count in enumerate(counts.tolist()):
            if count:
                part = batch.take(order[start:start + count])
                self.publisher.orders(partition, part.to_frame())
            start += count

    def tick(self, tick: Tick) -> None:
        self.publisher.tick(topics.tick_json(
            self.info, event_time_us=tick.event_time_us, seq=tick.seq,
            gmv_minor=tick.gmv_minor, orders=tick.orders, orders_per_s=tick.orders_per_s,
            watermark_us=tick.watermark_us))
        self.publisher.leaderboard(topics.leaderboard_json(
            self.info, event_time_us=tick.event_time_us, brands=list(tick.leaderboard)))

    def finish(self, summary: Summary) -> None:
        final: dict[str, Any] = {"gmv_minor": summary.gmv_minor, "orders": summary.orders,
                                 "milestones": len(summary.milestones)}
        if summary.partial:
            final["partial"] = summary.partial  # said everywhere
        # "finished" is said once, by close(), after every milestone and order frame is
        # acknowledged: a subscriber that hears it has heard everything before it (one QoS 1
        # queue per subscriber keeps the broker's order)
        report = self.publisher.close(self.close_timeout, **final)
        summary.mqtt = Delivery(url=str(self.publisher.url),
                                milestones_delivered=report.milestones_delivered,
                                undelivered=tuple(report.undelivered), report=str(report))

    def interrupted(self) -> None:
        """SIGINT/SIGTERM: say "offline" ourselves (retained) and deliver what is queued, rather
        than leave it to the will, which a clean disconnect cancels."""
        self.publisher.status("offline", reason="interrupted")
        self.publisher.close(min(self.close_timeout, 3.0), state="offline")

    def close(self) -> None:
        """Close the publisher (at once if :meth:`finish` has not) and stop an embedded broker."""
        self.publisher.close(timeout=0)
        if self.broker is not None:
            self.broker.stop()
