"""Topic names and payloads: pure functions, no broker."""

from __future__ import annotations

import inspect

import orjson
import pytest

import ticker.publish
from ticker.aggregate.milestones import Milestone
from ticker.money import CNY, USD
from ticker.publish import topics
from ticker.publish.topics import RunInfo

from .helpers import CST, T0_US, make_milestones

INFO = RunInfo("d11-s1", scenario="double11-2021", seed=7, scale=0.01, currency=CNY, zone=CST)


def test_topic_names_follow_the_design_table() -> None:
    m = make_milestones("d11-s1", 4)[3]  # subject "Brand/3": a '/' in a topic level
    assert topics.status_topic("d11-s1") == "ticker/d11-s1/status"
    assert topics.gmv_topic("d11-s1") == "ticker/d11-s1/gmv"
    assert topics.leaderboard_topic("d11-s1") == "ticker/d11-s1/leaderboard"
    assert topics.milestone_topic("d11-s1", m) == "ticker/d11-s1/milestones/brand_gmv/Brand_3/400000000"
    assert topics.orders_topic("d11-s1", 3) == "ticker/d11-s1/orders/3"
    assert topics.milestones_filter() == "ticker/+/milestones/#"
    assert topics.milestones_filter("d11-s1") == "ticker/d11-s1/milestones/#"


def test_delivery_per_topic_is_the_design_table() -> None:
    assert (topics.STATUS.retain, topics.STATUS.qos) == (True, 1)
    assert (topics.GMV.retain, topics.GMV.qos) == (True, 0)
    assert (topics.LEADERBOARD.retain, topics.LEADERBOARD.qos) == (True, 0)
    assert (topics.MILESTONE.retain, topics.MILESTONE.qos) == (True, 1)
    assert (topics.ORDERS.retain, topics.ORDERS.qos) == (False, 1)


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "a#", "nul\0", " padded "])
def test_a_run_id_must_be_one_topic_level(bad: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        RunInfo(bad)


def test_status_payload() -> None:
    data = orjson.loads(topics.status_payload(INFO, "running", orders=12))
    assert data["run"] == "d11-s1" and data["state"] == "running"
    assert (data["scenario"], data["seed"], data["scale"]) == ("double11-2021", 7, 0.01)
    assert data["currency"] == "CNY" and data["zone"] == "+08:00" and data["orders"] == 12
    assert data["topics"]["milestones"] == "ticker/d11-s1/milestones/#"
    with pytest.raises(ValueError, match="not one of"):
        topics.status_payload(INFO, "paused")


def test_tick_payload_has_integer_money_and_its_display_string() -> None:
    data = orjson.loads(topics.tick_payload(
        INFO, event_time_us=T0_US + 61_500_000, seq=999, gmv_minor=1_000_000_000_000,
        orders=1_234_567, orders_per_s=583_000))
    assert data == {"run": "d11-s1", "event_time": "2021-11-11T00:01:01.500000+08:00", "seq": 999,
                    "gmv_minor": 1_000_000_000_000, "gmv": "RMB 10.0 billion",
                    "orders": 1_234_567, "orders_per_s": 583_000}


def test_leaderboard_payload_ranks_from_one() -> None:
    data = orjson.loads(topics.leaderboard_payload(
        INFO, event_time_us=T0_US, brands=[("Apple", 1_000_000_000_000), ("Haier", 123_456)]))
    assert data["event_time"] == "2021-11-11T00:00:00.000000+08:00"
    assert data["brands"] == [
        {"rank": 1, "brand": "Apple", "gmv_minor": 1_000_000_000_000, "gmv": "RMB 10.0 billion"},
        {"rank": 2, "brand": "Haier", "gmv_minor": 123_456, "gmv": "RMB 1,234.56"},
    ]


def test_milestone_payload_is_the_design_contract() -> None:
    m = make_milestones("d11-s1", 1)[0]
    data = orjson.loads(topics.milestone_payload(INFO, m))
    assert data == {"id": "d11-s1:brand_gmv:Brand 0:100000000", "kind": "brand_gmv",
                    "subject": "Brand 0", "threshold_minor": 100_000_000, "value_minor": 100_000_123,
                    "seq": 10_000, "event_time": "2021-11-11T00:00:00.000000+08:00", "rank": 1,
                    "headline": "Brand 0 is the first brand to pass RMB 1 million",
                    "value": "RMB 1.0 million"}
    assert Milestone.from_json({k: v for k, v in data.items() if k != "value"}) == m


def test_a_rate_record_value_is_orders_per_second_not_money() -> None:
    m = Milestone("r:rate_record:orders_per_s:1", "rate_record", "orders_per_s", 500_000, 583_000,
                  5, T0_US, None, "New record: 583,000 orders/s")
    assert topics.milestone_json(INFO, m)["value"] == "583,000 orders/s"
    usd = RunInfo("r", currency=USD)
    assert topics.milestone_json(usd, make_milestones("r", 1)[0])["value"].startswith("US$ ")


@pytest.mark.parametrize(("given", "run", "expected"), [
    ("milestones/#", None, "ticker/+/milestones/#"),
    ("gmv", "r1", "ticker/r1/gmv"),
    ("#", "r1", "ticker/r1/#"),
    ("ticker/+/gmv", "r1", "ticker/r1/gmv"),
    ("ticker/other/milestones/#", "r1", "ticker/r1/milestones/#"),
    ("ticker/#", "r1", "ticker/r1/#"),
    ("ticker/#", None, "ticker/#"),
    ("ticker", "r1", "ticker/r1"),
])
def test_watch_filters_are_narrowed_to_a_run(given: str, run: str | None, expected: str) -> None:
    assert topics.narrow_filter(given, run) == expected


def test_parse_topic() -> None:
    assert topics.parse_topic("ticker/r1/milestones/gmv/all/1") == ("r1", "milestones/gmv/all/1")
    with pytest.raises(ValueError):
        topics.parse_topic("other/r1/gmv")


def test_public_names_are_exported() -> None:
    exported = set(ticker.publish.__all__)
    # submodules (mqtt, topics, sink, ...) are attributes once anything imported them
    assert exported == {name for name in dir(ticker.publish) if not name.startswith("_")
                        and not inspect.ismodule(getattr(ticker.publish, name))}
    for name in exported:
        assert getattr(ticker.publish, name) is not None
