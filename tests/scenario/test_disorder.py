"""Disorder: the arrival-ordered stream is deterministic, complete, and as disordered as asked."""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker.events import OrderBatch, rebatch
from ticker.scenario import make_plan, parse_scenario, resolve
from ticker.scenario.disorder import (
    Arrivals,
    DisorderError,
    DisorderProfile,
    arrive,
    bundled_profiles,
    load_profile,
    parse_profile,
)
from ticker.scenario.generate import chunks


@cache
def ordered() -> OrderBatch:
    return OrderBatch.concat(chunks(make_plan(resolve("smoke"), scale=0.2)))


REALISTIC = load_profile("realistic")
HARSH = DisorderProfile(name="harsh", lateness_s=1.0, dedup_s=30.0, group_ms=50, delayed=0.3,
                        delay_median_s=0.2, delay_max_s=0.9, late=0.02, late_max_s=20.0,
                        duplicates=0.05, duplicate_delay_s=0.3, duplicate_delay_max_s=2.0)


def digest(batches) -> str:
    h = hashlib.sha256()
    for batch in rebatch(batches, 4096):
        h.update(batch.to_frame())
    return h.hexdigest()


def head() -> OrderBatch:
    """The first 8,000 orders: any ordered stream will do, and a cut into batches of one order
    each must stay cheap enough for the CI profile's example count."""
    return ordered().slice(0, 8_000)


@cache
def whole_digest(profile: DisorderProfile) -> str:
    return digest(arrive(iter([head()]), profile, 7))


@settings(deadline=None)
@given(size=st.integers(1, 10_000), profile=st.sampled_from([REALISTIC, HARSH]))
def test_the_same_bytes_whatever_the_ordered_stream_was_cut_into(size: int, profile) -> None:
    assert digest(arrive(rebatch(iter([head()]), size), profile, 7)) == whole_digest(profile)


def test_workers_do_not_change_the_arrival_stream() -> None:
    plan = make_plan(resolve("double11-2021"), scale=0.0003)
    one = digest(arrive(chunks(plan), REALISTIC, plan.seed))
    assert digest(arrive(chunks(plan, workers=2), REALISTIC, plan.seed)) == one


@pytest.mark.parametrize("profile", [REALISTIC, HARSH], ids=lambda p: p.name)
def test_every_order_arrives_and_exactly_the_sampled_ones_twice(profile) -> None:
    source = ordered()
    out = OrderBatch.concat(arrive(iter([source]), profile, 3))
    dups = profile.duplicates_before(len(source))
    assert len(out) == len(source) + dups
    assert np.array_equal(out.seq, np.arange(len(out)))
    key = np.lexsort((out.kind, out.order_id))
    src_key = np.lexsort((source.kind, source.order_id))
    ids = out.order_id[key].astype(np.uint64) * 2 + out.kind[key]
    unique, counts = np.unique(ids, return_counts=True)
    assert np.array_equal(unique, source.order_id[src_key].astype(np.uint64) * 2 + source.kind[src_key])
    assert (counts == 2).sum() == dups and counts.max() <= 2
    # each delivery carries its order's own columns, event time included
    first = np.unique(ids, return_index=True)[1]
    for name in ("event_time", "brand", "platform", "region", "amount_minor"):
        assert np.array_equal(getattr(out, name)[key][first], getattr(source, name)[src_key])
    assert digest([out]) != digest([source])


@pytest.mark.parametrize("profile", [REALISTIC, HARSH], ids=lambda p: p.name)
def test_only_the_late_class_arrives_behind_the_watermark(profile) -> None:
    """Group shuffles and delays stay within the lateness; the late class goes beyond it."""
    source = ordered()
    merge = Arrivals(profile, 3)
    _, arrival, _ = merge._deliveries(source)
    displaced = (arrival[: len(source)] - source.event_time) / 1e6
    u_late = displaced > profile.lateness_s
    assert abs(u_late.mean() - profile.late) < 0.3 * profile.late + 0.001
    assert displaced.max() <= profile.late_max_s + 1e-6
    on_time = displaced[~u_late]
    assert on_time.max() <= profile.group_ms / 1000 + profile.delay_max_s + 1e-6
    out = OrderBatch.concat(arrive(iter([source]), profile, 3))
    seen = np.maximum.accumulate(out.event_time)
    behind = out.event_time[1:] < seen[:-1] - profile.lateness_us
    assert 0 < behind.sum() <= u_late.sum() + profile.duplicates_before(len(source))
    assert (out.event_time[1:] < out.event_time[:-1]).mean() > 0.1  # really out of order


def test_the_bundled_profiles_load() -> None:
    assert "realistic" in bundled_profiles()
    for name in bundled_profiles():
        assert load_profile(name).name == name


def test_a_scenario_may_carry_its_own_disorder_section() -> None:
    text = resolve("smoke").text + '\n[disorder]\nlateness_s = 2\nlate = 0.01\nlate_max_s = 30\n'
    scenario = parse_scenario(text, "smoke-disordered.toml")
    assert scenario.disorder == DisorderProfile(name="scenario", lateness_s=2.0, late=0.01,
                                                late_max_s=30.0)
    assert resolve("smoke").disorder is None
    with pytest.raises(Exception) as err:
        parse_scenario(resolve("smoke").text + '\n[disorder]\nlatenes_s = 2\n', "x.toml")
    assert str(err.value) == ("x.toml: disorder.latenes_s: unknown key (expected one of: name, "
                              "dedup_s, delay_max_s, delay_median_s, delay_shape, delayed, "
                              "duplicate_delay_max_s, duplicate_delay_s, duplicates, group_ms, late, "
                              "late_max_s, lateness_s)")


_KNOB = st.sampled_from(["lateness_s", "dedup_s", "group_ms", "delayed", "delay_median_s",
                         "delay_max_s", "delay_shape", "late", "late_max_s", "duplicates",
                         "duplicate_delay_s", "duplicate_delay_max_s"])
_BAD = st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")),
                 st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=86_401),
                 st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2))


@settings(deadline=None)
@given(knob=_KNOB, value=_BAD)
def test_a_bad_knob_is_one_line_naming_it(knob: str, value) -> None:
    with pytest.raises(DisorderError) as err:
        parse_profile({knob: value}, "p.toml", "p")
    assert any(line.startswith(f"p.toml.{knob}: expected a number") for line in err.value.problems)
    assert all("\n" not in line for line in err.value.problems)


def test_an_unknown_profile_name_lists_the_bundled_ones(tmp_path) -> None:
    with pytest.raises(DisorderError, match=r"no such profile .*realistic"):
        load_profile("realistik")
    broken = tmp_path / "p.toml"
    broken.write_text("late = [", encoding="utf-8")
    with pytest.raises(DisorderError, match="not valid TOML"):
        load_profile(str(broken))


@cache
def festival() -> tuple:
    """double11-2021 at a scale of a dozen chunks, and its whole arrival stream per profile."""
    plan = make_plan(resolve("double11-2021"), scale=0.0003)
    return plan, {p.name: OrderBatch.concat(arrive(chunks(plan), p, plan.seed)) for p in (REALISTIC, HARSH)}


def resumed(plan, profile, start: int, count: int) -> OrderBatch:
    """``count`` deliveries from arrival seq ``start``, made from the resume point on."""
    from ticker.scenario.disorder import resume_point

    c, first = resume_point(plan, profile, start)
    stream = rebatch(arrive(chunks(plan, start_chunk=c), profile, plan.seed, first_seq=first),
                     from_seq=start)
    out, have = [], 0
    for batch in stream:
        out.append(batch)
        have += len(batch)
        if have >= count:
            break
    return OrderBatch.concat(out).slice(0, count)


@settings(deadline=None)
@given(data=st.data(), profile=st.sampled_from([REALISTIC, HARSH]))
def test_a_resume_makes_the_arrival_stream_from_its_point_the_same(data, profile) -> None:
    """Started at the resume point's chunk, numbered from its first seq: the deliveries from
    any arrival seq on are the whole stream's, byte for byte."""
    plan, whole = festival()
    stream = whole[profile.name]
    start = data.draw(st.one_of(st.integers(0, len(stream)),
                                st.sampled_from([int(s) + d for s in plan.chunk_seq for d in (-1, 0, 1)
                                                 if 0 <= int(s) + d <= len(stream)])))
    count = min(3_000, len(stream) - start)
    got = resumed(plan, profile, start, count)
    assert got.equals(stream.slice(start, start + count))


def test_a_late_resume_starts_a_few_chunks_back_not_at_the_start() -> None:
    from ticker.scenario.disorder import resume_point

    plan, whole = festival()
    c, first = resume_point(plan, REALISTIC, len(whole["realistic"]) - 10)
    assert plan.chunks - 4 <= c < plan.chunks
    assert first <= len(whole["realistic"]) - 10


def test_ticker_disorders_lists_the_profiles_of_the_top_level_folder(capsys) -> None:
    from pathlib import Path

    from ticker.cli import main

    folder = Path(__file__).resolve().parents[2] / "disorders"
    assert bundled_profiles() == sorted(p.stem for p in folder.glob("*.toml")) and bundled_profiles()
    assert main(["disorders"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == bundled_profiles()
    realistic = next(line for line in lines if line.startswith("realistic "))
    assert "lateness 5 s" in realistic and "0.10% late (up to 120 s)" in realistic
    assert "0.20% delivered twice" in realistic
