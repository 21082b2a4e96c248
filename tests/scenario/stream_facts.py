"""A festival's published figures, measured straight from its order stream with plain numpy.

This is the tests' own yardstick, written independently of ``ticker.aggregate`` on purpose: the
bundled scenarios are checked against ``FACTS.md`` through it, so a bug shared by the generator
and the aggregator cannot hide. Money stays in int64 minor units throughout.

The semantics are the ones the targets are defined by:

* ``brands_over`` counts brands whose running net GMV has reached the threshold (before ``at``);
* ``first_brands_over`` is the set of the first ``len(value)`` brands to reach it;
* ``time_to_value`` is the seconds from its rule's ``start`` until the subject's GMV since then
  reaches the threshold, passing when ``|measured - value| <= tolerance * value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ticker.comparisons import METRICS
from ticker.events import OrderBatch, OrderKind
from ticker.scenario import Scenario
from ticker.scenario.generate import Plan, chunks, make_plan

_US = 1_000_000


@dataclass
class Crossing:
    """Where a running total first reached a threshold."""

    seq: int
    event_time: int


@dataclass
class StreamFacts:
    plan: Plan
    events: int = 0
    orders: int = 0
    refunds: int = 0
    gmv_minor: int = 0
    peak_orders_per_s: int = 0
    peak_at_us: int = 0
    brand_gmv: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: threshold -> brand -> first crossing (brands that never reach it are absent)
    brand_crossings: dict[int, dict[int, Crossing]] = field(default_factory=dict)
    #: (subject, start_us, threshold) -> first crossing of the subject's GMV since start
    value_crossings: dict[tuple[str, int, int], Crossing | None] = field(default_factory=dict)

    def brands_over(self, threshold: int, at_us: int | None = None) -> int:
        crossed = self.brand_crossings[threshold].values()
        return sum(1 for x in crossed if at_us is None or x.event_time < at_us)

    def first_brands_over(self, threshold: int, count: int) -> list[str]:
        ranked = sorted(self.brand_crossings[threshold].items(), key=lambda kv: kv[1].seq)
        return [self.plan.catalogue.names[b] for b, _ in ranked[:count]]

    def time_to_value(self, subject: str, start_us: int, threshold: int) -> float | None:
        crossing = self.value_crossings[(subject, start_us, threshold)]
        return None if crossing is None else (crossing.event_time - start_us) / _US


def _subject_mask(plan: Plan, batch: OrderBatch, subject: str) -> np.ndarray | None:
    kind, _, name = subject.partition(":")
    if kind == "all":
        return None
    if kind == "brand":
        return batch.brand == plan.catalogue.index(name)
    names = [n for n, _ in (plan.scenario.platforms if kind == "platform" else plan.scenario.regions)]
    return getattr(batch, kind) == names.index(name)


def measure(scenario: Scenario, scale: float, seed: int | None = None, *,
            thresholds: tuple[int, ...] = (),
            time_to_value: tuple[tuple[str, int, int], ...] = ()) -> StreamFacts:
    """Stream the whole festival once and fold the figures the targets speak of; O(events)."""
    plan = make_plan(scenario, seed, scale)
    facts = StreamFacts(plan=plan)
    n_brands = len(plan.catalogue)
    gmv = np.zeros(n_brands, np.int64)
    first_second = scenario.start_us // _US
    per_second = np.zeros(scenario.end_us // _US - first_second + 1, np.int64)
    crossings: dict[int, dict[int, Crossing]] = {t: {} for t in thresholds}
    reached = {t: np.zeros(n_brands, bool) for t in thresholds}
    running = dict.fromkeys(time_to_value, 0)
    found: dict[tuple[str, int, int], Crossing | None] = dict.fromkeys(time_to_value)

    for batch in chunks(plan):
        facts.events += len(batch)
        placed = batch.kind == OrderKind.PLACED
        facts.orders += int(placed.sum())
        facts.refunds += int((~placed).sum())
        facts.gmv_minor += int(batch.amount_minor.sum())
        per_second += np.bincount(batch.event_time[placed] // _US - first_second,
                                  minlength=len(per_second))
        brand = batch.brand.astype(np.int64)
        gross = np.zeros(n_brands, np.int64)
        np.add.at(gross, brand[placed], batch.amount_minor[placed])
        for t in thresholds:
            # A brand can only cross inside this batch if its orders alone could carry it there.
            maybe = ~reached[t] & (gmv + gross >= t)
            if maybe.any():
                _first_crossings(batch, brand, maybe, gmv, t, crossings[t], reached[t])
        np.add.at(gmv, brand, batch.amount_minor)
        for key in time_to_value:
            if found[key] is not None:
                continue
            subject, start_us, threshold = key
            mask = batch.event_time >= start_us
            subject_mask = _subject_mask(plan, batch, subject)
            if subject_mask is not None:
                mask &= subject_mask
            rows = np.flatnonzero(mask)
            total = running[key] + np.cumsum(batch.amount_minor[rows])
            hit = np.flatnonzero(total >= threshold)
            if len(hit):
                row = rows[hit[0]]
                found[key] = Crossing(int(batch.seq[row]), int(batch.event_time[row]))
            elif len(total):
                running[key] = int(total[-1])

    facts.brand_gmv = gmv
    facts.peak_orders_per_s = int(per_second.max())
    facts.peak_at_us = int((first_second + int(per_second.argmax())) * _US)
    facts.brand_crossings = crossings
    facts.value_crossings = found
    return facts


def _first_crossings(batch: OrderBatch, brand: np.ndarray, maybe: np.ndarray, before: np.ndarray,
                     threshold: int, out: dict[int, Crossing], reached: np.ndarray) -> None:
    """Record where each brand flagged in ``maybe`` first reaches ``threshold`` in ``batch``."""
    rows = np.flatnonzero(maybe[brand])
    order = rows[np.argsort(brand[rows], kind="stable")]
    b = brand[order]
    amount = batch.amount_minor[order]
    total = np.cumsum(amount)
    starts = np.flatnonzero(np.concatenate([[True], b[1:] != b[:-1]]))
    group_base = np.repeat(total[starts] - amount[starts], np.diff(np.append(starts, len(b))))
    running = total - group_base + before[b]
    hits = order[running >= threshold]
    hit_brands = brand[hits]
    first = np.unique(hit_brands, return_index=True)[1]  # rows are in seq order per brand
    for row in hits[first]:
        out[int(brand[row])] = Crossing(int(batch.seq[row]), int(batch.event_time[row]))
        reached[brand[row]] = True


@dataclass
class Verdict:
    fact: str
    expected: object
    measured: object
    passed: bool

    def __str__(self) -> str:
        return (f"{'ok  ' if self.passed else 'FAIL'} {self.fact}: "
                f"expected {self.expected!r}, measured {self.measured!r}")


def rule_start(scenario: Scenario, subject: str, threshold: int) -> int:
    """The start of the ``time_to_value`` milestone rule a target of that metric refers to."""
    for rule in scenario.milestones.time_to_value:
        if rule.subject == subject and rule.value_minor == threshold:
            return rule.start_us
    raise LookupError(f"no milestones.time_to_value rule for {subject} at {threshold}")


def measure_targets(scenario: Scenario, scale: float, seed: int | None = None
                    ) -> tuple[StreamFacts, list[Verdict]]:
    """Stream the scenario at ``scale`` and judge each of its ``[[targets]]``."""
    thresholds = {t.threshold_minor for t in scenario.targets
                  if t.metric in ("brands_over", "first_brands_over")}
    thresholds |= set(scenario.milestones.brand_thresholds_minor)
    values = {(r.subject, r.start_us, r.value_minor) for r in scenario.milestones.time_to_value}
    facts = measure(scenario, scale, seed, thresholds=tuple(sorted(thresholds)),
                    time_to_value=tuple(sorted(values)))
    verdicts = []
    for t in scenario.targets:
        if t.metric in METRICS:  # dimensions and baselines: test_bundled_replays judges them
            continue
        want = t.value * scale if t.scaled else t.value
        if t.metric == "first_brands_over":
            got = facts.first_brands_over(t.threshold_minor, len(t.value))
            verdicts.append(Verdict(t.fact, t.value, got, set(got) == set(t.value)))
            continue
        if t.metric == "gmv":
            got = facts.gmv_minor
        elif t.metric == "orders":
            got = facts.orders
        elif t.metric == "peak_orders_per_s":
            got = facts.peak_orders_per_s
        elif t.metric == "brands_over":
            got = facts.brands_over(t.threshold_minor, t.at_us)
        elif t.metric == "brands":  # the catalogue the stream draws from
            got = len(facts.plan.catalogue)
        elif t.metric == "time_to_value":
            got = facts.time_to_value(t.subject, rule_start(scenario, t.subject, t.threshold_minor),
                                      t.threshold_minor)
        else:
            raise AssertionError(f"no measure for metric {t.metric!r}")
        if t.at_most:
            ok = got is not None and got <= want * (1 + t.tolerance)
        else:
            ok = got is not None and abs(got - want) <= t.tolerance * want
        verdicts.append(Verdict(t.fact, want, got, ok))
    return facts, verdicts
