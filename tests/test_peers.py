"""``ticker bench --peers``: polars, DuckDB and pandas compute the same answers as ticker's fold,
and a peer that answers differently is reported as such."""

from __future__ import annotations

import pytest

from ticker.aggregate import Aggregator
from ticker.events import rebatch
from ticker.peers import PEERS, Answers, run_peers, ticker_answers
from ticker.scenario import make_plan, resolve
from ticker.scenario.generate import chunks


@pytest.fixture(scope="module")
def folded():
    scenario = resolve("double11-2021")
    plan = make_plan(scenario, scale=0.0002)  # ~500,000 events, 290,000 brands, every rule
    batches = list(rebatch(chunks(plan), 100_000))
    agg = Aggregator(scenario, "peers")
    for batch in batches:
        agg.apply(batch)
    agg.finish()
    thresholds = list(scenario.milestones.brand_thresholds_minor)
    return batches, ticker_answers(agg, plan.catalogue.names), thresholds


def test_every_peer_gives_ticker_s_answers(folded) -> None:
    batches, answers, thresholds = folded
    assert answers.crossings and answers.per_second and len(answers.brand_gmv) > 1000
    results = run_peers(batches, answers, thresholds, repeats=1)
    assert [r.name for r in results] == list(PEERS)
    for r in results:
        assert r.same, f"{r.name}: {r.note}"
        assert len(r.runs_s) == 1 and r.runs_s[0] > 0


def test_a_peer_that_answers_differently_is_reported(folded) -> None:
    batches, answers, thresholds = folded
    (brand, threshold), seq = next(iter(answers.crossings.items()))
    off_by_one = Answers(answers.brand_gmv, {**answers.crossings, (brand, threshold): seq + 1},
                         answers.per_second)
    for r in run_peers(batches, off_by_one, thresholds, repeats=1):
        assert r.same is False and r.note == "differs: crossings"
