"""``[[dimensions]]`` in a scenario file: generated bad declarations are refused in one line
naming the key; the brands of a per-brand dimension are calibrated to the published counts."""

from __future__ import annotations

import copy
import math
import re
import tomllib

import numpy as np
import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from tests.aggregate.unit_scenario import UNIT_DIMS_TOML
from tests.scenario.toml_paths import key_paths
from ticker.scenario import parse_scenario
from ticker.scenario.brands import catalogue
from ticker.scenario.dimensions import MARGIN, MARGIN_ORDERS, tables
from ticker.scenario.model import ScenarioError

DOC = tomllib.loads(UNIT_DIMS_TOML)


PATHS = list(key_paths(DOC["dimensions"], ("dimensions",)))
JUNK = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, 1e300, 2**63 - 1, True, [], {}, "",
                     "Tmall Global", "a/b", "x" * 41, [math.nan], ["1.00", "0.50"], "per",
                     "brand", "order", 10**9, ["Nobody"], [{"threshold": 1, "brands": 99}]]),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
ONE_LINE = re.compile(r"^unit\.toml: dimensions(\[\d+\][\w.\[\]]*)?: .*(expected|missing|unknown|not "
                      r"used).*$")


@st.composite
def mutated(draw):
    doc = copy.deepcopy(DOC)
    path = draw(st.sampled_from(PATHS))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JUNK)
    return doc, path


@given(mutated())
def test_a_bad_dimension_is_refused_in_one_line_naming_it(case):
    doc, path = case
    text = tomli_w.dumps(doc)
    try:
        scenario = parse_scenario(text, "unit.toml")
    except ScenarioError as exc:
        original = DOC
        for part in path:
            original = original[part]
        # one mistake, one line; a whole table replaced or removed is one line per key it held
        if not isinstance(original, dict | list):
            assert len(exc.problems) == 1, exc.problems
        for line in exc.problems:
            assert ONE_LINE.match(line), line
        return
    # accepted: then it is a whole, usable declaration (its tables build)
    assert len(tables(scenario)) == len(scenario.dimensions)


def test_unknown_keys_and_per_kind_keys_are_named() -> None:
    doc = copy.deepcopy(DOC)
    doc["dimensions"][1]["count"] = 5
    with pytest.raises(ScenarioError) as err:
        parse_scenario(tomli_w.dumps(doc), "unit.toml")
    assert err.value.problems == ["unit.toml: dimensions[1].count: count not used by a "
                                  "per-brand dimension (expected values)"]


@given(st.integers(1, 40), st.integers(0, 30))
def test_per_brand_values_hold_their_counts_clear_of_the_thresholds(brands, over):
    """n brands of the value end over the threshold, each far enough from it to stay there."""
    over = min(over, brands)
    doc = copy.deepcopy(DOC)
    smoke = tomllib.loads(UNIT_DIMS_TOML.replace("brands = 12", "brands = 3000")
                          .replace("gmv = 100_000\n", "gmv = 10_000_000\n")
                          .replace("max_gmv = 9_000", "max_gmv = 20_000"))
    doc["festival"], doc["brands"] = smoke["festival"], smoke["brands"]
    doc["festival"]["default_scale"] = 1
    threshold = 10_000 * 100  # RMB 10,000 in fen
    doc["dimensions"][1]["values"][0].update(brands=brands, members=[],
                                             over=[{"threshold": threshold // 100, "brands": over}])
    scenario = parse_scenario(tomli_w.dumps(doc), "unit.toml")
    table = tables(scenario)[1]
    target = catalogue(scenario).gmv_target
    # clear of the threshold: 35 %, and four average orders at the default scale
    margin = max(MARGIN * threshold, MARGIN_ORDERS * scenario.gmv_minor / scenario.orders)
    mine = table.brand_value == 1
    assert int(mine.sum()) == brands
    assert int(np.count_nonzero(target[mine] >= threshold + margin)) == over
    assert not np.any(mine & (target > threshold * (1 - MARGIN)) & (target < threshold + margin))
