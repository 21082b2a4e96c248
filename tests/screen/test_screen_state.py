"""The screen's fold of broker messages (no network): what the contract's payloads become, and
that nothing a broker can send — generated, not listed — raises or reaches the page unchecked."""

from __future__ import annotations

from datetime import timedelta, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker.aggregate.milestones import Milestone, milestone_id
from ticker.money import CNY
from ticker.publish import RunInfo, topics
from ticker.screen.state import FILTERS, MAX_TEXT, Festival

CST = timezone(timedelta(hours=8))
T0 = 1_636_560_000_000_000  # 2021-11-11T00:00:00+08:00
XSS = "<img src=x onerror=alert(1)>"


def info(run: str = "r1", **kw) -> RunInfo:
    return RunInfo(run, "smoke", 1111, 0.001, CNY, CST, title="Smoke", windows=(
        ("opening", T0, T0 + 180_000_000), ("gala", T0 + 72_000_000_000, T0 + 72_120_000_000)),
        started=kw.pop("started", "2026-11-30T03:00:00.000+00:00"), **kw)


def milestone(run: str, subject: str = XSS, threshold: int = 100_000_000, seq: int = 7) -> Milestone:
    return Milestone(id=milestone_id(run, "brand_gmv", subject, threshold), kind="brand_gmv",
                     subject=subject, threshold_minor=threshold, value_minor=threshold + 1,
                     seq=seq, event_time_us=T0 + 1_500, rank=1,
                     headline=f"{subject} is the first brand to pass RMB 1 million")


def test_the_contracts_payloads_are_folded_into_one_run() -> None:
    fest = Festival()
    i = info()
    status = fest.ingest(topics.status_topic("r1"), topics.status_payload(i, "running"))
    assert status is not None and status.kind == "status"
    assert status.data["windows"][0] == {"name": "opening", "start": "2021-11-11T00:00:00.000+08:00",
                                         "end": "2021-11-11T00:03:00.000+08:00"}
    tick = topics.tick_payload(i, event_time_us=T0 + 1_234_567, seq=9, gmv_minor=54_032_000_000_000,
                               orders=10, orders_per_s=583)
    update = fest.ingest(topics.gmv_topic("r1"), tick)
    assert update.data == {"event_time": "2021-11-11T00:00:01.234+08:00", "seq": 9,
                           "gmv_minor": 54_032_000_000_000, "gmv": "RMB 540.3 billion",
                           "orders": 10, "orders_per_s": 583}
    board = topics.leaderboard_payload(i, event_time_us=T0, brands=[(XSS, 500), ("Apple", 400)])
    assert fest.ingest(topics.leaderboard_topic("r1"), board).data["brands"][0]["brand"] == XSS
    m = milestone("r1")
    topic = topics.milestone_topic("r1", m)
    update = fest.ingest(topic, topics.milestone_payload(i, m))
    assert update.kind == "milestone" and update.data["subject"] == XSS  # data, passed on as is
    assert fest.ingest(topic, topics.milestone_payload(i, m)) is None  # re-sent retained: no news
    snap = fest.runs["r1"].snapshot()
    assert snap["status"]["state"] == "running" and [x["id"] for x in snap["milestones"]] == [m.id]
    assert sum(fest.malformed.values()) == 0


def test_the_will_keeps_what_the_page_needs() -> None:
    fest = Festival()
    fest.ingest(topics.status_topic("r1"), topics.status_payload(info(), "offline"))
    assert fest.runs["r1"].status["state"] == "offline"
    assert fest.runs["r1"].status["windows"]  # the progress bar survives the will


def test_newest_run_is_the_one_started_last_and_an_empty_status_forgets_a_run() -> None:
    fest = Festival()
    for run, started in (("old", "2026-11-30T01:00:00+00:00"), ("new", "2026-11-30T02:00:00+00:00"),
                         ("legacy", "")):
        fest.ingest(topics.status_topic(run), topics.status_payload(info(run, started=started),
                                                                    "finished"))
    assert fest.newest() == "new"
    assert [r["run"] for r in fest.run_list()] == ["new", "old", "legacy"]
    forget = fest.ingest(topics.status_topic("new"), b"")
    assert forget.kind == "forget" and fest.newest() == "old"


def test_a_deleted_milestone_leaves_the_run() -> None:
    fest = Festival()
    m = milestone("r1")
    fest.ingest(topics.milestone_topic("r1", m), topics.milestone_payload(info(), m))
    update = fest.ingest(topics.milestone_topic("r1", m), b"")
    assert update.kind == "snapshot" and update.data["milestones"] == []


# --- anything a broker can send ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)


@given(st.integers(3, 6), st.permutations(range(4)))  # room for the three new runs
def test_a_run_heard_of_before_its_status_is_not_forgotten_for_finished_ones(
        max_runs: int, order: list[int]) -> None:
    """More runs than the screen keeps: finished runs fill it; then a new run whose milestone,
    status and the messages of other new runs arrive in any order. The new run keeps its
    milestone whenever a finished run could be forgotten instead."""
    import ticker.screen.state as state

    saved, state.MAX_RUNS = state.MAX_RUNS, max_runs
    try:
        fest = Festival()
        for k in range(max_runs):
            old = info(f"old{k}", started=f"2026-11-30T0{k}:00:00.000+00:00")
            fest.ingest(topics.status_topic(f"old{k}"), topics.status_payload(old, "finished"))
        new = info("new", started="2026-11-30T09:00:00.000+00:00")
        m = milestone("new")
        messages = [
            (topics.milestone_topic("new", m), topics.milestone_payload(new, m)),
            (topics.status_topic("new"), topics.status_payload(new, "finished")),
            (topics.gmv_topic("other1"), topics.dumps(topics.tick_json(
                info("other1"), event_time_us=T0, seq=1, gmv_minor=1, orders=1, orders_per_s=1))),
            (topics.gmv_topic("other2"), topics.dumps(topics.tick_json(
                info("other2"), event_time_us=T0, seq=1, gmv_minor=1, orders=1, orders_per_s=1))),
        ]
        for i in order:
            fest.ingest(*messages[i])
        assert [x["id"] for x in fest.runs["new"].snapshot()["milestones"]] == [m.id]
    finally:
        state.MAX_RUNS = saved


def _dumps(value) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits: write them as text
        return repr(value).encode()


def valid_payloads() -> dict[str, dict]:
    i = info()
    m = milestone("r1")
    return {
        "status": topics.status_json(i, "running"),
        "gmv": topics.tick_json(i, event_time_us=T0, seq=1, gmv_minor=100, orders=1, orders_per_s=1),
        "leaderboard": topics.leaderboard_json(i, event_time_us=T0, brands=[("A", 1)]),
        "milestones/brand_gmv/A/1": topics.milestone_json(i, m),
    }


@st.composite
def damaged(draw) -> tuple[str, bytes]:
    """A contract payload with one field replaced, removed or added, or the payload replaced."""
    rest, payload = draw(st.sampled_from(sorted(valid_payloads().items())))
    how = draw(st.sampled_from(["replace", "drop", "whole", "bytes"]))
    if how == "bytes":
        return rest, draw(st.binary(max_size=200))
    if how == "whole":
        return rest, _dumps(draw(json_values))
    key = draw(st.sampled_from(sorted(payload)))
    payload = dict(payload)
    if how == "drop":
        payload.pop(key)
    else:
        payload[key] = draw(json_values)
    return rest, _dumps(payload)


@settings(max_examples=400, deadline=None)
@given(damaged(), st.sampled_from(["r1", "other-run"]))
def test_no_payload_breaks_the_fold_and_every_refusal_is_counted(case, run) -> None:
    rest, payload = case
    fest = Festival()
    update = fest.ingest(f"ticker/{run}/{rest}", payload)
    kind = rest.split("/")[0]
    if update is None:
        assert fest.malformed[kind] == 1 or not payload
        return
    # accepted: then it is as the page expects it, whatever was sent
    data = update.data
    assert fest.malformed[kind] == 0
    strings = [v for v in _leaves(data) if isinstance(v, str)]
    assert all(len(s) <= MAX_TEXT for s in strings)
    assert not any(isinstance(v, float) and v != v for v in _leaves(data))  # no NaN
    if kind == "gmv":
        assert isinstance(data["gmv_minor"], int) and not isinstance(data["gmv_minor"], bool)
        assert data["orders_per_s"] >= 0 and data["orders_per_s"] != float("inf")
    if kind == "leaderboard":
        assert all(isinstance(b["brand"], str) and b["rank"] >= 1 for b in data["brands"])
    orjson.dumps(data)  # what the page receives is always valid JSON


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60).filter(lambda t: not t.startswith("ticker/")), st.binary(max_size=60))
def test_foreign_topics_are_ignored_not_counted_as_malformed(topic, payload) -> None:
    fest = Festival()
    assert fest.ingest(topic, payload) is None
    assert sum(fest.malformed.values()) == 0 and fest.ignored == 1 and fest.runs == {}


def test_the_filters_leave_out_order_frames() -> None:
    assert "ticker/+/milestones/#" in FILTERS
    assert not any(f.endswith("/#") and "orders" in f for f in FILTERS) and "ticker/#" not in FILTERS


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
