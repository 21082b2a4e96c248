"""The reference fold: the same rules as :class:`~ticker.aggregate.Aggregator`, one event at a time.

Plain Python, written to be obviously right rather than fast: it is the executable
specification the vectorised aggregator must agree with exactly (state and milestones, under
hypothesis in ``tests/aggregate``), and the baseline ``ticker bench`` measures the aggregator
against. It costs a few microseconds per event.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ticker.aggregate.milestones import (
    Milestone,
    brand_milestone,
    gmv_milestone,
    rate_record_milestone,
    time_to_value_milestone,
)
from ticker.clock import US_PER_S, format_time
from ticker.events import COLUMNS, OrderBatch
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


class EventTimeReferenceFold:
    """The arrival-ordered rules of :mod:`ticker.aggregate.eventtime`, one event at a time.

    Per arrival: the watermark before it (largest event time seen − lateness); a redelivery of a
    remembered (order id, kind, event time) is dropped; an accepted event counts in the totals
    and per-second series, goes to the live fold (on the running-maximum clock), and either
    waits in a sorted reorder buffer (on time) or enters the final stream at once (late, after
    being checked against every final milestone announced so far). Then the watermark moves
    and the buffer releases what it passed.
    """

    def __init__(self, scenario: Scenario, brand_names: tuple[str, ...] | list[str], run: str,
                 lateness_us: int, dedup_us: int):
        from sortedcontainers import SortedList

        self.scenario, self.run, self.zone = scenario, run, scenario.zone
        self.lateness, self.dedup = lateness_us, dedup_us
        self.live = ReferenceFold(scenario, brand_names, run)
        self.final = ReferenceFold(scenario, brand_names, run)
        self.max_seen: int | None = None
        self.remembered: dict[tuple[int, int, int], int] = {}  # (time, id, kind) -> until
        self.buffer = SortedList()  # (time, order id, kind, arrival seq, event)
        self.buffer_max = 0
        self.second_orders: dict[int, int] = {}
        self.second_gmv: dict[int, int] = {}
        self.duplicates = self.late = self.late_us_max = self.late_us_total = 0
        self.clocks = {"live": None, "final": None}
        self.fed = {"live": [], "final": []}  # arrival seq and event time of each fed event
        self.open_finals: list[dict] = []
        self.milestones: list[Milestone] = []

    def watermark(self) -> int | None:
        return None if self.max_seen is None else self.max_seen - self.lateness

    def apply(self, batch: OrderBatch) -> list[Milestone]:
        found: list[Milestone] = []
        for row in range(len(batch)):
            event = {name: int(getattr(batch, name)[row]) for name in
                     ("seq", "event_time", "order_id", "brand", "platform", "region",
                      "amount_minor", "kind")}
            found += self._arrive(event)
        watermark = self.watermark()
        self.remembered = {k: u for k, u in self.remembered.items() if u > watermark}
        self.milestones += found
        return found

    def _arrive(self, e: dict) -> list[Milestone]:
        t = e["event_time"]
        before = self.watermark()
        self.max_seen = t if self.max_seen is None else max(self.max_seen, t)
        key = (t, e["order_id"] & (2**63 - 1), e["kind"])
        if key in self.remembered and before is not None and self.remembered[key] > before:
            self.duplicates += 1
            return []
        self.remembered[key] = max(t, before if before is not None else t) + self.dedup
        second = (t - self.scenario.start_us) // US_PER_S
        self.second_orders[second] = self.second_orders.get(second, 0) + (e["kind"] == 0)
        self.second_gmv[second] = self.second_gmv.get(second, 0) + e["amount_minor"]
        found = self._feed("live", e)
        if before is not None and t < before:
            self.late += 1
            self.late_us_total += before - t
            self.late_us_max = max(self.late_us_max, before - t)
            found += self._corrections(e)
            found += self._feed("final", e)
        else:
            self.buffer.add((t, e["order_id"], e["kind"], e["seq"], e))
        watermark = self.watermark()
        while self.buffer and self.buffer[0][0] < watermark:
            found += self._feed("final", self.buffer.pop(0)[4])
        self.buffer_max = max(self.buffer_max, len(self.buffer))
        return found

    def _feed(self, timing: str, e: dict) -> list[Milestone]:
        fold = self.live if timing == "live" else self.final
        clock = e["event_time"] if self.clocks[timing] is None else max(self.clocks[timing], e["event_time"])
        self.clocks[timing] = clock
        inner = len(self.fed[timing])
        self.fed[timing].append((e["seq"], e["event_time"], e))
        one = OrderBatch(**{name: np.array([e[name] if name not in ("seq", "event_time") else
                                            (inner if name == "seq" else clock)], dtype)
                            for name, dtype in COLUMNS.items()})
        return self._remap(timing, fold.apply(one))

    def _remap(self, timing: str, found: list[Milestone]) -> list[Milestone]:
        out = []
        for m in found:
            seq, t, e = self.fed[timing][m.seq]
            when = m.event_time_us if m.kind == "rate_record" else t
            ident = f"{m.id}:live" if timing == "live" else m.id
            out.append(dataclasses.replace(m, id=ident, seq=seq, event_time_us=when, timing=timing))
            if timing == "final" and m.kind != "rate_record":
                self.open_finals.append({"m": m, "e": e, "before": m.value_minor - e["amount_minor"],
                                         "delta": 0})
        return out

    def _corrections(self, late: dict) -> list[Milestone]:
        found = []
        for f in list(self.open_finals):
            m, x = f["m"], f["e"]
            if (late["event_time"], late["order_id"], late["kind"]) >= (
                    x["event_time"], x["order_id"], x["kind"]) or not self._counts_for(late, m, x):
                continue
            f["delta"] += late["amount_minor"]
            earlier = f["before"] + f["delta"] >= m.threshold_minor
            if earlier or m.value_minor + f["delta"] < m.threshold_minor:
                when = format_time(late["event_time"], self.zone, precision="milliseconds")
                how = "it was reached before that order" if earlier else "that order no longer reaches it"
                found.append(Milestone(
                    f"{m.id}:correction", m.kind, m.subject, m.threshold_minor,
                    m.value_minor + f["delta"], late["seq"], late["event_time"], m.rank,
                    f"Correction: {m.headline} — a late order of {when} means {how}",
                    timing="correction", corrects=m.id))
                self.open_finals.remove(f)
        return found

    def _counts_for(self, e: dict, m: Milestone, x: dict) -> bool:
        if m.kind == "gmv":
            return True
        if m.kind == "brand_gmv":
            return e["brand"] == x["brand"]
        for rule in self.final.rules:
            if rule["subject"] == m.subject and rule["value"] == m.threshold_minor:
                column = {"all": rule["index"], "brand": e["brand"], "platform": e["platform"],
                          "region": e["region"]}[rule["kind"]]
                deadline = rule["deadline"] if rule["deadline"] is not None else 2**63
                return column == rule["index"] and rule["start"] <= e["event_time"] < deadline
        return False

    def finish(self) -> list[Milestone]:
        found = []
        while self.buffer:
            found += self._feed("final", self.buffer.pop(0)[4])
        for timing, fold in (("live", self.live), ("final", self.final)):
            found += self._remap(timing, fold.finish())
        self.milestones += found
        return found
