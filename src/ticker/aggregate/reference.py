"""The reference fold: the same rules as :class:`~ticker.aggregate.Aggregator`, one event at a time.

Plain Python, written to be obviously right rather than fast: it is the executable
specification the vectorised aggregator must agree with exactly (state and milestones, under
hypothesis in ``tests/aggregate``), and the baseline ``ticker bench`` measures the aggregator
against. It costs a few microseconds per event.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from sortedcontainers import SortedList

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

    def __init__(self, scenario: Scenario, brand_names: Sequence[str], run: str, *,
                 time_rules: bool = True, rate_records: bool = True):
        self.time_rules, self.rate_records = time_rules, rate_records
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
        self.rules: list[dict[str, Any]] = []
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
            for rule in self.rules if self.time_rules else ():
                found += self._time_to_value(rule, seq, t, b, p, g, amount)
        self.milestones += found
        return found

    def _time_to_value(self, rule: dict[str, Any], seq: int, t: int, b: int, p: int, g: int, amount: int
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
        if not self.rate_records:
            return []
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
    being checked against every final milestone announced so far). Time rules see each order
    at its own event time, in either stream. Then the watermark moves, the buffer releases what
    it passed, and the seconds it passed are decided: the final rate-record chain, recomputed
    whole (over the decided seconds) whenever a late order lands in a decided second.
    """

    def __init__(self, scenario: Scenario, brand_names: Sequence[str], run: str,
                 lateness_us: int, dedup_us: int):
        self.scenario, self.run, self.zone = scenario, run, scenario.zone
        self.start_us = scenario.start_us
        self.lateness, self.dedup = lateness_us, dedup_us
        self.gain = scenario.milestones.rate_record_min_gain
        self.live = ReferenceFold(scenario, brand_names, run, time_rules=False)
        self.final = ReferenceFold(scenario, brand_names, run, time_rules=False, rate_records=False)
        self.rules = {"live": copy.deepcopy(self.live.rules), "final": copy.deepcopy(self.final.rules)}
        self.max_seen: int | None = None
        self.remembered: dict[tuple[int, int, int], int] = {}  # (time, id, kind) -> until
        # (time, order id, kind, arrival seq, event)
        self.buffer: SortedList[tuple[int, int, int, int, dict[str, int]]] = SortedList()
        self.buffer_max = 0
        self.second_orders: dict[int, int] = {}
        self.second_gmv: dict[int, int] = {}
        self.duplicates = self.late = self.late_us_max = self.late_us_total = 0
        self.clocks: dict[str, int | None] = {"live": None, "final": None}
        #: arrival seq, event time and the event of each event fed to an inner fold
        self.fed: dict[str, list[tuple[int, int, dict[str, int]]]] = {"live": [], "final": []}
        self.open_finals: list[dict[str, Any]] = []
        self.decided = 0  # seconds < decided: their rate records decided
        self.records: list[tuple[int, int, str]] = []  # the final chain: (second, count, id)
        self.last_event: dict[int, tuple[tuple[int, int, int], int]] = {}  # second -> (key, seq)
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
        self.remembered = {k: u for k, u in self.remembered.items()
                           if watermark is None or u > watermark}
        self.milestones += found
        return found

    def _arrive(self, e: dict[str, int]) -> list[Milestone]:
        t = e["event_time"]
        before = self.watermark()
        self.max_seen = t if self.max_seen is None else max(self.max_seen, t)
        key = (t, e["order_id"] & (2**63 - 1), e["kind"])
        if key in self.remembered and before is not None and self.remembered[key] > before:
            self.duplicates += 1
            return []
        self.remembered[key] = max(t, before if before is not None else t) + self.dedup
        second = (t - self.start_us) // US_PER_S
        into_decided = before is not None and self.start_us + (second + 1) * US_PER_S <= before
        self.second_orders[second] = self.second_orders.get(second, 0) + (e["kind"] == 0)
        self.second_gmv[second] = self.second_gmv.get(second, 0) + e["amount_minor"]
        if not into_decided:
            mine = ((t, e["order_id"], e["kind"]), e["seq"])
            self.last_event[second] = max(self.last_event.get(second, mine), mine)
        found = self._feed("live", e)
        if before is not None and t < before:
            self.late += 1
            self.late_us_total += before - t
            self.late_us_max = max(self.late_us_max, before - t)
            found += self._corrections(e)
            found += self._feed("final", e)
            if into_decided and e["kind"] == 0:
                found += self._rechain(e)
        else:
            self.buffer.add((t, e["order_id"], e["kind"], e["seq"], e))
        watermark = self.watermark()
        assert watermark is not None
        while self.buffer and self.buffer[0][0] < watermark:
            found += self._feed("final", self.buffer.pop(0)[4])
        self.buffer_max = max(self.buffer_max, len(self.buffer))
        passed = (watermark - self.start_us) // US_PER_S
        found += self._decide(min(max(passed, self.decided), self.seconds()))
        return found

    def seconds(self) -> int:
        return (self.scenario.end_us - self.start_us) // US_PER_S

    def _feed(self, timing: str, e: dict[str, int]) -> list[Milestone]:
        fold = self.live if timing == "live" else self.final
        last = self.clocks[timing]
        clock = e["event_time"] if last is None else max(last, e["event_time"])
        self.clocks[timing] = clock
        inner = len(self.fed[timing])
        self.fed[timing].append((e["seq"], e["event_time"], e))
        one = OrderBatch(**{name: np.array([e[name] if name not in ("seq", "event_time") else
                                            (inner if name == "seq" else clock)], dtype)
                            for name, dtype in COLUMNS.items()})
        return self._remap(timing, fold.apply(one)) + self._time_rules(timing, e, inner)

    def _time_rules(self, timing: str, e: dict[str, int], inner: int) -> list[Milestone]:
        """Each rule counts an order whose own event time is inside its window."""
        found = []
        t = e["event_time"]
        for rule in self.rules[timing]:
            deadline = rule["deadline"] if rule["deadline"] is not None else 2**63
            column = {"all": rule["index"], "brand": e["brand"], "platform": e["platform"],
                      "region": e["region"]}[rule["kind"]]
            if rule["done"] or not rule["start"] <= t < deadline or column != rule["index"]:
                continue
            rule["acc"] += e["amount_minor"]
            if rule["acc"] < rule["value"]:
                continue
            rule["done"] = True
            m = time_to_value_milestone(self.run, rule["subject"], rule["name"], rule["label"],
                                        rule["value"], rule["acc"], e["seq"], t, t - rule["start"],
                                        self.scenario.currency)
            if timing == "live":
                found.append(dataclasses.replace(m, id=f"{m.id}:live", timing="live"))
            else:
                found.append(dataclasses.replace(m, timing="final"))
                self.open_finals.append({"m": m, "e": e, "before": m.value_minor - e["amount_minor"],
                                         "delta": 0})
        return found

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

    def _corrections(self, late: dict[str, int]) -> list[Milestone]:
        found = []
        for f in list(self.open_finals):
            m, x = f["m"], f["e"]
            if (late["event_time"], late["order_id"], late["kind"]) >= (
                    x["event_time"], x["order_id"], x["kind"]) or not self._counts_for(late, m):
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

    def _counts_for(self, e: dict[str, int], m: Milestone) -> bool:
        if m.kind == "gmv":
            return True
        if m.kind == "brand_gmv":
            return self.live.names[e["brand"]] == m.subject
        for rule in self.final.rules:
            if rule["subject"] == m.subject and rule["value"] == m.threshold_minor:
                column = {"all": rule["index"], "brand": e["brand"], "platform": e["platform"],
                          "region": e["region"]}[rule["kind"]]
                deadline = rule["deadline"] if rule["deadline"] is not None else 2**63
                return bool(column == rule["index"] and rule["start"] <= e["event_time"] < deadline)
        return False

    # --- the final rate-record chain ------------------------------------------------------------

    def _chain(self, lo: int, hi: int, record: int) -> list[tuple[int, int]]:
        """Records (second, count) among the seconds [lo, hi), each beating the one before."""
        out = []
        for second in sorted(s for s, c in self.second_orders.items() if lo <= s < hi and c):
            count = self.second_orders[second]
            if count > record * (1 + self.gain):
                record = count
                out.append((second, count))
        return out

    def _decide(self, until: int) -> list[Milestone]:
        found = []
        for second, count in self._chain(self.decided, until, self.records[-1][1] if self.records else 0):
            previous = self.records[-1][1] if self.records else 0
            m = rate_record_milestone(self.run, previous, count, self.last_event[second][1],
                                      self.start_us + second * US_PER_S, self.zone)
            found.append(dataclasses.replace(m, timing="final"))
            self.records.append((second, count, m.id))
        self.decided = max(self.decided, until)
        self.last_event = {s: v for s, v in self.last_event.items() if s >= self.decided}
        return found

    def _rechain(self, e: dict[str, int]) -> list[Milestone]:
        """A placed order into a decided second: the whole chain again; every record from the
        first that differs until the two chains meet again is a correction."""
        old = self.records
        new = self._chain(0, self.decided, 0)
        with_prev = [(s, c, new[i - 1][1] if i else 0) for i, (s, c) in enumerate(new)]
        old_prev = {(s, c, old[i - 1][1] if i else 0): i for i, (s, c, _) in enumerate(old)}
        j = 0
        while j < min(len(new), len(old)) and with_prev[j] in old_prev and old_prev[with_prev[j]] == j:
            j += 1
        chain, found = old[:j], []
        when = format_time(e["event_time"], self.zone, precision="milliseconds")
        second = (e["event_time"] - self.start_us) // US_PER_S
        for s, count, previous in with_prev[j:]:
            if (s, count, previous) in old_prev:
                chain += old[old_prev[s, count, previous]:]
                break
            standing = [r for r in old if r[0] <= s]
            m = rate_record_milestone(self.run, previous, count, e["seq"],
                                      self.start_us + s * US_PER_S, self.zone)
            how = "raises that second's count" if s == second else "changes the record before it"
            ident = f"{m.id}:correction:{e['order_id']}"
            found.append(dataclasses.replace(
                m, id=ident, headline=f"Correction: {m.headline} — a late order of {when} {how}",
                timing="correction", corrects=standing[-1][2] if standing else m.id))
            chain.append((s, count, ident))
        self.records = chain
        return found

    def finish(self) -> list[Milestone]:
        found = []
        while self.buffer:
            found += self._feed("final", self.buffer.pop(0)[4])
        for timing, fold in (("live", self.live), ("final", self.final)):
            found += self._remap(timing, fold.finish())
        found += self._decide(self.seconds())
        self.milestones += found
        return found
