"""Generated bad scenario files: every one is refused in lines naming the file and the key, or
replays cleanly — never a traceback, never NaN or infinity taken for a number.

The mutations start from the bundled ``smoke`` scenario (it exercises every part of the schema):
a key deleted, or its value replaced by NaN, ±infinity, a negative, zero or huge number, a wrong
type, an empty array or table, or odd unicode; windows moved to overlap. The CLI runs in-process.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scenario.toml_paths import key_paths
from ticker.cli import main
from ticker.scenario import bundled_names, resolve

SMOKE = tomllib.loads(resolve("smoke").text)
assert "smoke" in bundled_names()


PATHS = list(key_paths(SMOKE))

JUNK = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, -1e-300, 1e300, 2**63 - 1, -(2**63),
                     1e-300, 0.5, True, [], {}, "", "NaN", "1e999", [math.nan], [1, "a"]]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.lists(st.floats(min_value=-10, max_value=10), max_size=30),
)


LINE = re.compile(r"^ticker: \S+: (not valid TOML: .+|[\w.\[\]]+: .*(expected|missing|unknown|not "
                  r"used).*)$")


def _key_text(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@st.composite
def mutated(draw):
    doc = copy.deepcopy(SMOKE)
    path = draw(st.sampled_from(PATHS))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["delete", "replace", "replace", "overlap"]))
    if action == "overlap" and len(doc["windows"]) > 1:
        # the second window starts inside the first
        shift = draw(st.integers(min_value=0, max_value=200))
        doc["windows"][1]["start"] = doc["windows"][0]["start"] + timedelta(seconds=shift)
        return doc, ("windows", 1, "start")
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "delete" and isinstance(parent, list):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = draw(JUNK)
    return doc, path


def _write(tmp_path: Path, doc) -> Path | None:
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # e.g. an array mixing tables and values: not TOML
        return None
    path = tmp_path / "mutant.toml"
    path.write_text(text, encoding="utf-8")
    return path


_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(suppress_health_check=_FIXTURES)  # examples: the profile's (conftest)
@given(case=mutated())
def test_a_mutated_scenario_is_refused_in_lines_naming_the_key_or_replays(
        case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_mutant(case, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a long campaign: the suite's 300 s is per test
@settings(max_examples=3_000, suppress_health_check=_FIXTURES)
@given(case=mutated())
def test_a_long_campaign_of_mutated_scenarios(case, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    check_mutant(case, tmp_path, capsys)


def check_mutant(case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc, _mutated_key = case
    file = _write(tmp_path, doc)
    if file is None:
        return
    code = main(["replay", str(file), "--no-log", "--mqtt", "none", "--quiet", "--scale", "0.02"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    if code == 0:
        assert lines == []
        return
    assert code == 2
    assert lines, "refused without a word"
    for line in lines:  # each problem one line: the file, the key, what was expected
        assert LINE.match(line) or line.startswith("ticker: --scale: expected"), line
        assert line.startswith(f"ticker: {file}: ") or line.startswith("ticker: --scale: "), line


def test_nan_and_infinity_are_never_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every float-valued key, set to NaN, +inf and -inf in turn, is named in the refusal."""
    floats = [p for p in PATHS if isinstance(_get(SMOKE, p), float | int)
              and not isinstance(_get(SMOKE, p), bool)]
    assert len(floats) > 20
    for path in floats:
        for bad in (math.nan, math.inf, -math.inf):
            doc = copy.deepcopy(SMOKE)
            _set(doc, path, bad)
            file = _write(tmp_path, doc)
            assert main(["replay", str(file), "--no-log", "--mqtt", "none", "--quiet"]) == 2
            err = capsys.readouterr().err
            key = _key_text(path[:-1] if isinstance(path[-1], int) else path)
            assert f": {key}" in err, (path, bad, err)
            assert "Traceback" not in err


@pytest.mark.parametrize("extreme", [1e-300, 5e-324, 1e300])
def test_an_extreme_but_finite_number_anywhere_is_refused_or_replays(
        extreme: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every numeric key at a tiny or huge finite value (a peak's width, the rush's decay, a share):
    refused in lines naming the key, or a clean replay — never numpy's overflow from deep inside."""
    numbers = [p for p in PATHS if isinstance(_get(SMOKE, p), float | int)
               and not isinstance(_get(SMOKE, p), bool)]
    for path in numbers:
        doc = copy.deepcopy(SMOKE)
        _set(doc, path, extreme)
        check_mutant((doc, path), tmp_path, capsys)


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _set(doc, path, value):
    _get(doc, path[:-1])[path[-1]] = value


def test_windows_out_of_order_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = copy.deepcopy(SMOKE)
    doc["windows"][1]["start"] = doc["windows"][0]["start"] + timedelta(seconds=60)
    file = _write(tmp_path, doc)
    assert main(["replay", str(file), "--no-log", "--mqtt", "none", "--quiet"]) == 2
    assert "windows[1].start: expected a time at or after windows[0].end" in capsys.readouterr().err


def test_tomli_w_keeps_offsets() -> None:
    """The mutations rely on the writer keeping date-times' UTC offsets."""
    again = tomllib.loads(tomli_w.dumps(SMOKE))
    assert isinstance(again["windows"][0]["start"], datetime)
    assert again["windows"][0]["start"].utcoffset() == timedelta(hours=8)
