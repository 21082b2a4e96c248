"""Milestones as the contract spells them (DESIGN.md): ids, headlines, JSON, topic levels."""

from __future__ import annotations

from datetime import timedelta, timezone

import orjson
import pytest

from ticker.aggregate.milestones import (
    Milestone,
    brand_milestone,
    gmv_milestone,
    ordinal,
    rate_record_milestone,
    time_to_value_milestone,
    topic_safe,
)
from ticker.money import CNY

CST = timezone(timedelta(hours=8))
NOV11 = 1_636_560_000_000_000  # 2021-11-11T00:00:00+08:00
NOV1 = 1_635_696_000_000_000  # 2021-11-01T00:00:00+08:00


def test_each_kind_is_built_as_the_contract_says() -> None:
    assert brand_milestone("r", "Apple", 10_000_000_000_00, 10_000_000_001_00, 11, NOV11, 1, CNY) == \
        Milestone("r:brand_gmv:Apple:1000000000000", "brand_gmv", "Apple", 1_000_000_000_000,
                  1_000_000_000_100, 11, NOV11, 1, "Apple is the first brand to pass RMB 10 billion")
    assert gmv_milestone("r", 100_000_000_000_00, 100_000_000_123_00, 5, NOV11, CNY) == \
        Milestone("r:gmv:all:10000000000000", "gmv", "all", 10_000_000_000_000, 10_000_000_012_300,
                  5, NOV11, None, "Festival GMV passes RMB 100 billion")
    assert time_to_value_milestone("r", "brand:Apple", "Apple", "the first second", 300_000_000_00,
                                   300_000_100_00, 7, NOV1 + 500_000, 500_000, CNY) == \
        Milestone("r:time_to_value:brand:Apple:30000000000", "time_to_value", "brand:Apple",
                  30_000_000_000, 30_000_010_000, 7, NOV1 + 500_000, None,
                  "Apple reaches RMB 300 million in 0.50 seconds (the first second)")
    assert time_to_value_milestone("r", "all", "Fest", "", 100, 100, 1, NOV1, 0, CNY).headline == \
        "Fest reaches RMB 1 in 0.00 seconds"
    # dated at the last microsecond of its second; the id names the record it beat
    assert rate_record_milestone("r", 446, 583, 9, NOV11, CST) == \
        Milestone("r:rate_record:orders_per_s:446", "rate_record", "orders_per_s", 446, 583, 9,
                  NOV11 + 999_999, None, "New peak: 583 orders per second at Nov 11 00:00:00")


def test_json_is_the_design_payload_and_reads_back() -> None:
    m = brand_milestone("r", "Brand/3", 400_000_000, 400_000_123, 10_003, NOV11 + 3_000_000, 4, CNY)
    expected = {"id": "r:brand_gmv:Brand/3:400000000", "kind": "brand_gmv", "subject": "Brand/3",
                "threshold_minor": 400_000_000, "value_minor": 400_000_123, "seq": 10_003,
                "event_time": "2021-11-11T00:00:03.000000+08:00", "rank": 4,
                "headline": "Brand/3 is the fourth brand to pass RMB 4 million"}
    assert m.to_json(CST) == expected
    assert orjson.loads(m.to_bytes(CST)) == expected
    assert Milestone.from_json(expected) == m
    assert m.to_json_us() == {**{k: v for k, v in expected.items() if k != "event_time"},
                              "event_time_us": NOV11 + 3_000_000}
    assert m.topic_suffix == "milestones/brand_gmv/Brand_3/400000000"


def test_topic_levels_lose_only_what_mqtt_reserves() -> None:
    assert topic_safe("L'Oréal X a/b+c#d\0e") == "L'Oréal X a_b_c_d_e"


@pytest.mark.parametrize(("n", "word"), [(1, "first"), (2, "second"), (3, "third"), (4, "fourth"),
                                          (5, "fifth"), (6, "sixth"), (7, "seventh"), (8, "eighth"),
                                          (9, "ninth"), (10, "tenth"),
                                          (11, "11th"), (12, "12th"), (13, "13th"), (20, "20th"),
                                          (21, "21st"), (22, "22nd"), (23, "23rd"), (24, "24th"),
                                          (101, "101st"), (111, "111th"), (112, "112th"),
                                          (113, "113th"), (121, "121st"), (211, "211th"),
                                          (0, "0th")])
def test_ordinals(n: int, word: str) -> None:
    assert ordinal(n) == word
