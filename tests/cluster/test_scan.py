"""The two-pass scan in one process: any partition of the stream gives exactly the state, the
milestones and the summary of the single-process fold (no Dask needed here)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aggregate.unit_scenario import UNIT_DIMS_TOML
from ticker.aggregate import Aggregator
from ticker.cluster import scan
from ticker.engine import ReplayOptions, execute, prepare
from ticker.scenario import bundled_names, generate, make_plan, parse_scenario, resolve

#: The unit festival with both kinds of dimension, its thresholds spread over the festival (a
#: race crossed at any point, refunds included), every kind of milestone in a 10,000-event stream.
UNIT_RACES = parse_scenario(
    UNIT_DIMS_TOML.replace('brand_thresholds = ["1.00", "2.00", "4.00"]',
                           'brand_thresholds = ["2000.00", "5000.00", "8000.00"]')
    .replace('gmv_every = "5.00"', 'gmv_every = "20000.00"')
    .replace('thresholds = ["1.00", "3.00"]', 'thresholds = ["2000.00", "6000.00"]')
    .replace('thresholds = ["1.00", "2.00"]', 'thresholds = ["3000.00", "6000.00"]'), "unit.toml")


@functools.cache
def single(name: str, scale: float):
    """(plan, the single-process aggregator after finish()) for a scenario at a scale."""
    scenario = UNIT_RACES if name == "unit-races" else resolve(name)
    run = prepare(scenario, ReplayOptions(scale=scale, record=False))
    execute(run, [])
    return make_plan(scenario, run.seed, scale), run.aggregator


def scanned(name: str, scale: float, layout, fraction: float = scan.INDEX_FRACTION) -> Aggregator:
    plan, reference = single(name, scale)
    template = Aggregator(plan.scenario, reference.run)
    counters = scan.Counters.build(plan, template, fraction)
    scans = [scan.scan_part(plan, template, counters, pieces) for pieces in layout]
    summaries = [s.summary() for s in scans]  # what the driver sees: no per-piece sums
    starts = scan.counter_starts(summaries)
    probes = [p for s, start in zip(scans, starts, strict=True)
              for p in scan.piece_probes(s, start, template, counters)]
    probes += scan.part_probes(summaries, counters)
    crossings = [m for k in range(3) for m in scan.find_crossings(plan, template, probes[k::3])]
    return scan.assemble(template, summaries, crossings)


def assert_identical(name: str, scale: float, merged: Aggregator) -> None:
    _, reference = single(name, scale)
    assert reference.state.differences(merged.state) == []
    assert merged.state.milestones == reference.state.milestones
    assert merged.leaderboard() == reference.leaderboard()
    assert merged.peak() == reference.peak()


SMALL = [("smoke", 1.0), ("aliexpress-2021", 0.002), ("lazada-1111-2020", 0.004),
         ("singles-day-2016", 0.0005), ("double11-2020", 0.0002)]
#: Streams to cut anywhere: the dimensions' races (per order and per brand) among them.
ANY = [("smoke", 1.0), ("aliexpress-2021", 0.002), ("double11-2020", 0.0002), ("unit-races", 1.0)]


def test_the_cut_streams_race_every_kind_of_threshold() -> None:
    """Not vacuous: the streams cut below cross every kind of threshold, the dimensions' too."""
    kinds = {m.kind for name, scale in ANY for m in single(name, scale)[1].state.milestones}
    assert kinds >= {"gmv", "brand_gmv", "time_to_value", "rate_record", "channel_gmv",
                     "tmall_global_brand_gmv", "emerging_brand_gmv"}
    _, unit = single("unit-races", 1.0)
    late = [m for m in unit.state.milestones if m.kind.endswith("_gmv") and m.kind != "gmv"]
    assert max(m.seq for m in late) > 5_000, "some races are crossed in the second half"


@pytest.mark.parametrize(("name", "scale"), SMALL)
def test_every_part_count_up_to_one_chunk_per_part(name: str, scale: float) -> None:
    plan, _ = single(name, scale)
    assert plan.chunks >= 2, "a scenario of one chunk would not test the merge"
    for parts in range(1, plan.chunks + 1):
        layout = scan.split(plan, parts)
        assert len(layout) == parts
        assert [p.lo for part in layout for p in part] == plan.chunk_seq[:-1].tolist()
        assert_identical(name, scale, scanned(name, scale, layout))


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_scenario_one_chunk_per_part(name: str) -> None:
    scale = resolve(name).default_scale
    plan, reference = single(name, scale)
    assert reference.state.milestones, "a scenario without milestones proves nothing"
    assert_identical(name, scale, scanned(name, scale, scan.split(plan, plan.chunks)))


@pytest.mark.slow
@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_scenario_many_part_counts(name: str) -> None:
    scale = resolve(name).default_scale
    plan, _ = single(name, scale)
    for parts in sorted({1, 2, 3, 5, 8, plan.chunks // 2}):
        assert_identical(name, scale, scanned(name, scale, scan.split(plan, parts)))


@pytest.mark.parametrize(("name", "scale"), SMALL[:2])
def test_parts_on_seq_boundaries_inside_chunks(name: str, scale: float) -> None:
    """Parts cut on multiples of a log segment's events cut chunks; both neighbours make them."""
    plan, _ = single(name, scale)
    for align in (1 << 16, 3 * (1 << 16), 12_345):
        layout = scan.split(plan, 7, align)
        bounds = [part[0].lo for part in layout[1:]]
        assert all(b % align == 0 for b in bounds)
        assert_identical(name, scale, scanned(name, scale, layout))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fraction=st.sampled_from([0.0, 1e-9, 0.5, 1.0, 1e9]))
def test_any_partition_gives_the_same_result(data, fraction: float) -> None:
    """Invariant: cut the stream anywhere (seq boundaries inside chunks included), index any set
    of brands (from none: every brand through the whole-part path, to all of them): the result
    is the single-process fold's."""
    name, scale = data.draw(st.sampled_from(ANY), label="scenario")
    plan, _ = single(name, scale)
    total = plan.total_events
    cuts = data.draw(st.lists(st.integers(1, total - 1), max_size=12, unique=True), label="cuts")
    layout = scan.parts_at(plan, [0, *cuts, total])
    assert_identical(name, scale, scanned(name, scale, layout, fraction))


def states_between(name: str, scale: float, cuts: list[int]) -> list:
    """The single-process aggregator's state after each seq of ``cuts`` (ascending), folding
    batches cut there as a run's snapshots are."""
    plan, reference = single(name, scale)
    agg = Aggregator(plan.scenario, reference.run)
    out = []
    for batch in generate(plan.scenario, seed=plan.seed, scale=scale):
        for piece in _cut_at(batch, cuts):
            agg.apply(piece)
            if piece.end_seq in cuts:
                out.append(agg.state.copy())
    return out


def _cut_at(batch, cuts: list[int]):
    lo = batch.first_seq
    for c in [c for c in cuts if batch.first_seq < c < batch.end_seq] + [batch.end_seq]:
        yield batch.slice(lo - batch.first_seq, c - batch.first_seq)
        lo = c


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_state_at_any_part_boundary_is_the_single_process_state_there(data) -> None:
    """What a recorded cluster run writes as snapshots: the state after any prefix of parts,
    the last second still open (no rate record for it yet), is the single-process state at
    that seq."""
    name, scale = data.draw(st.sampled_from(ANY), label="scenario")
    plan, reference = single(name, scale)
    total = plan.total_events
    cuts = sorted(data.draw(st.lists(st.integers(1, total - 1), min_size=1, max_size=8,
                                     unique=True), label="cuts"))
    at = set(data.draw(st.lists(st.sampled_from(cuts), min_size=1, unique=True), label="at"))
    template = Aggregator(plan.scenario, reference.run)
    counters = scan.Counters.build(plan, template)
    scans = scan.scan_parts(plan, template, counters, scan.parts_at(plan, [0, *cuts, total]))
    probes = scan.plan_crossings(scans, template, counters)
    crossings = scan.find_crossings(plan, template, probes)
    got = list(scan.states(template, [s.summary() for s in scans], crossings, at))
    expected = states_between(name, scale, sorted(at))
    assert len(got) == len(expected) + 1
    for mine, theirs in zip(got, expected, strict=False):
        assert theirs.differences(mine) == []
        assert mine.milestones == theirs.milestones
    assert reference.state.differences(got[-1]) == []


def test_pass_two_regenerates_only_pieces_that_can_cross() -> None:
    """The indexed search: at a scale with many chunks per crossing, pass 2 touches few pieces."""
    name, scale = "double11-2021", 0.002
    plan, reference = single(name, scale)
    template = Aggregator(plan.scenario, reference.run)
    counters = scan.Counters.build(plan, template)
    scans = [scan.scan_part(plan, template, counters, p) for p in scan.split(plan, 4)]
    probes = scan.plan_crossings(scans, template, counters)
    assert scan.part_probes(scans, counters) == [], "no brand should need a whole part"
    crossings = {m.seq for m in reference.state.milestones if m.kind != "rate_record"}
    touched = [piece.chunk for p in probes for piece in p.pieces]
    assert len(set(touched)) == len(touched) <= len(crossings)
    assert len(touched) < plan.chunks
    # candidate pieces next to each other in a part are one probe: one seeded fold over their run
    ends = {p.pieces[-1].hi for p in probes} - {s.end_seq for s in scans}
    assert not any(p.pieces[0].lo in ends for p in probes)
    assert any(len(p.pieces) > 1 for p in probes), "the opening rush has adjacent candidates"


def test_fingerprint_names_the_plan() -> None:
    a = make_plan(resolve("smoke"), 1, 0.5)
    assert scan.plan_fingerprint(a) == scan.plan_fingerprint(make_plan(resolve("smoke"), 1, 0.5))
    assert scan.plan_fingerprint(a) != scan.plan_fingerprint(make_plan(resolve("smoke"), 2, 0.5))
    assert scan.plan_fingerprint(a) != scan.plan_fingerprint(make_plan(resolve("smoke"), 1, 0.25))
