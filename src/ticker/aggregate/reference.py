"""The reference fold: the same rules as :class:`~ticker.aggregate.Aggregator`, one event at a time.

Plain Python, written to be obviously right rather than fast: it is the executable
specification the vectorised aggregator must agree with exactly (state and milestones, under
hypothesis in ``tests/aggregate``), and the baseline ``ticker bench`` measures the aggregator
against. It costs a few microseconds per event.
"""

from __future__ import annotations

from ticker.aggregate.milestones import (
    Milestone,
    brand_milestone,
    gmv_milestone,
    rate_record_milestone,
    time_to_value_milestone,
)
from ticker.clock import US_PER_S
from ticker.events import OrderBatch
from ticker.scenario.model import Scenario


class ReferenceFold:
    """Per-event fold into dicts and lists; exposes the same totals as the aggregator."""

    def __init__(self, scenario: Scenario, brand_names: tuple[str, ...] | list[str], run: str):
        self.run = run
        self.names = list(brand_names)
        self.currency = scenario.currency
        self.zone = scenario.zone
        self.start_us = scenario.start_us
        rules = scenario.milestones
        self.thresholds = list(rules.brand_thresholds_minor)
        self.every = rules.gmv_every_minor
        self.gain = rules.rate_record_min_gain
        platforms = [p for p, _ in scenario.platforms]
        regions = [r for r, _ in scenario.regions]
        self.rules = []
        for rule in rules.time_to_value:
            kind, _, name = rule.subject.partition(":")
            index = {"brand": self.names, "platform": platforms, "region": regions}.get(kind, [name])
            deadline = None if rule.within_s is None else rule.start_us + round(rule.within_s * US_PER_S)
            self.rules.append({"kind": kind, "index": index.index(name), "start": rule.start_us,
                               "deadline": deadline, "value": rule.value_minor, "acc": 0,
                               "done": False, "subject": rule.subject,
                               "name": name or scenario.title, "label": rule.label})
        self.gmv = 0
        self.orders = 0
        self.refunds = 0
        self.next_seq = 0
        self.brand_gmv = [0] * len(self.names)
        self.brand_orders = [0] * len(self.names)
        self.brand_level = [0] * len(self.names)
        self.race = [0] * len(self.thresholds)
        self.second_orders: dict[int, int] = {}
        self.second_gmv: dict[int, int] = {}
        self.mix_gmv: dict[tuple[int, int], int] = {}
        self.mix_orders: dict[tuple[int, int], int] = {}
        self.gmv_level = 0
        self.open_second = -1
        self.open_last_seq = -1
        self.record = 0
        self.milestones: list[Milestone] = []

    def apply(self, batch: OrderBatch) -> list[Milestone]:
        found: list[Milestone] = []
        for seq, t, b, p, g, amount, kind in zip(
                batch.seq.tolist(), batch.event_time.tolist(), batch.brand.tolist(),
                batch.platform.tolist(), batch.region.tolist(), batch.amount_minor.tolist(),
                batch.kind.tolist(), strict=True):
            second = (t - self.start_us) // US_PER_S
            if self.open_second >= 0 and second != self.open_second:
                found += self._complete(self.open_second, self.open_last_seq)
            self.open_second, self.open_last_seq = second, seq
            placed = 1 if kind == 0 else 0
            self.gmv += amount
            self.orders += placed
            self.refunds += 1 - placed
            self.next_seq = seq + 1
            self.second_orders[second] = self.second_orders.get(second, 0) + placed
            self.second_gmv[second] = self.second_gmv.get(second, 0) + amount
            self.mix_gmv[p, g] = self.mix_gmv.get((p, g), 0) + amount
            self.mix_orders[p, g] = self.mix_orders.get((p, g), 0) + placed
            self.brand_orders[b] += placed
            while self.every and self.gmv >= (self.gmv_level + 1) * self.every:
                self.gmv_level += 1
                found.append(gmv_milestone(self.run, self.gmv_level * self.every, self.gmv, seq, t,
                                           self.currency))
            self.brand_gmv[b] += amount
            level = self.brand_level[b]
            while level < len(self.thresholds) and self.brand_gmv[b] >= self.thresholds[level]:
                self.race[level] += 1
                found.append(brand_milestone(self.run, self.names[b], self.thresholds[level],
                                             self.brand_gmv[b], seq, t, self.race[level],
                                             self.currency))
                level += 1
            self.brand_level[b] = level
            for rule in self.rules:
                found += self._time_to_value(rule, seq, t, b, p, g, amount)
        self.milestones += found
        return found

    def _time_to_value(self, rule: dict, seq: int, t: int, b: int, p: int, g: int, amount: int
                       ) -> list[Milestone]:
        if rule["done"] or t < rule["start"]:
            return []
        if rule["deadline"] is not None and t >= rule["deadline"]:
            rule["done"] = True
            return []
        column = {"all": rule["index"], "brand": b, "platform": p, "region": g}[rule["kind"]]
        if column != rule["index"]:
            return []
        rule["acc"] += amount
        if rule["acc"] < rule["value"]:
            return []
        rule["done"] = True
        return [time_to_value_milestone(self.run, rule["subject"], rule["name"], rule["label"],
                                        rule["value"], rule["acc"], seq, t, t - rule["start"],
                                        self.currency)]

    def _complete(self, second: int, last_seq: int) -> list[Milestone]:
        count = self.second_orders.get(second, 0)
        if count <= self.record * (1 + self.gain):
            return []
        previous, self.record = self.record, count
        return [rate_record_milestone(self.run, previous, count, last_seq,
                                      self.start_us + second * US_PER_S, self.zone)]

    def finish(self) -> list[Milestone]:
        found = []
        if self.open_second >= 0:
            found = self._complete(self.open_second, self.open_last_seq)
            self.open_second = -1
        self.milestones += found
        return found
