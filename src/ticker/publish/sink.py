"""The engine's MQTT sink: hands a run's milestones, ticks and leaderboards to a :class:`Publisher`.

Everything here is non-blocking for the fold (the publisher queues and sends on its own thread)
except :meth:`MqttSink.finish`, which waits a bounded time for the broker to acknowledge every
milestone and then records in the summary what, if anything, was not delivered.
"""

from __future__ import annotations

import numpy as np

from ticker.aggregate.milestones import Milestone
from ticker.events import OrderBatch
from ticker.publish import topics
from ticker.publish.mqtt import Publisher

ORDER_PARTITIONS = 8


class MqttSink:
    def __init__(self, publisher: Publisher, *, orders: bool = False, close_timeout: float = 10.0):
        self.publisher = publisher
        self.info = publisher.info
        self.close_timeout = close_timeout
        self.orders = orders

    def start(self, run) -> None:
        self.publisher.status("running", events=run.total_events)
        # A resumed run re-derived these from its log; re-publishing a retained topic is
        # idempotent, and it repairs any the crash kept from the broker.
        for m in run.aggregator.state.milestones:
            self.publisher.milestone(m)

    def note(self, text: str) -> None:
        pass

    def milestone(self, m: Milestone) -> None:
        self.publisher.milestone(m)

    def batch(self, batch: OrderBatch) -> None:
        """With ``--publish-orders``: the batch as one frame per brand partition (brand mod N),
        so an aggregator in another process can subscribe to a share of the brands."""
        if not self.orders or not len(batch):
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

    def tick(self, view: dict) -> None:
        self.publisher.tick(topics.tick_json(
            self.info, event_time_us=view["event_time_us"], seq=view["seq"],
            gmv_minor=view["gmv_minor"], orders=view["orders"], orders_per_s=view["orders_per_s"]))
        self.publisher.leaderboard(topics.leaderboard_json(
            self.info, event_time_us=view["event_time_us"], brands=view["leaderboard"]))

    def finish(self, summary: dict) -> None:
        self.publisher.status("finished", gmv_minor=summary["gmv_minor"], orders=summary["orders"],
                              milestones=len(summary["milestones"]))
        report = self.publisher.close(self.close_timeout)
        summary["mqtt"] = {
            "url": str(self.publisher.url),
            "milestones_delivered": report.milestones_delivered,
            "undelivered": list(report.undelivered),
            "report": str(report),
        }
