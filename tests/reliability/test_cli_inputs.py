"""Generated command-line arguments for every command: a number outside its range (NaN and
infinity included) or a path of the wrong kind is one line naming the option and what was
expected, exit code 2, no traceback; anything inside is taken as given.

The numeric options are found by walking the parser, so an option added later is covered too.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker.cli import build_parser, main
from ticker.validate import Range

# The arguments each command needs besides the one under test.
REQUIRED = {"replay": ["smoke"], "verify": ["RUN"], "state": ["RUN", "--at", "2021-11-11T00:00"],
            "export": ["RUN", "--format", "csv"], "report": ["RUN"], "bench": [], "watch": [],
            "broker": [], "scenarios": [], "disorders": [], "import": ["orders.csv"],
            "sweep": ["smoke", "--seeds", "1-2"], "screen": [], "follow": [], "history": []}


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _numeric_options() -> list[tuple[str, str, Range, dict]]:
    found = []
    for name, parser in _commands().items():
        for action in parser._actions:
            valid = getattr(action.type, "range", None)
            if valid is not None:
                found.append((name, action.option_strings[-1], valid, action.type.words))
    return found


NUMERIC = _numeric_options()


def test_every_command_is_covered_and_every_number_has_a_range() -> None:
    assert set(REQUIRED) == set(_commands())
    options = {(c, o) for c, o, _, _ in NUMERIC}
    for command, parser in _commands().items():
        for action in parser._actions:
            if action.type in (int, float):  # a bare int/float would take NaN, inf, -5
                pytest.fail(f"{command} {action.option_strings}: a number without a range")
    assert ("replay", "--tick-hz") in options and ("state", "--last") in options
    assert ("bench", "--events") in options and len(options) >= 12


def _inside(valid: Range, value: float) -> bool:
    if not math.isfinite(value):
        return False
    if valid.integer and not float(value).is_integer():
        return False
    above = value > valid.low if valid.low_open else value >= valid.low
    below = value < valid.high if valid.high_open else value <= valid.high
    return above and below


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["0", "-0", "-1", "1e-300", "1e300", "inf", "-inf", "nan", "NaN", "1_000",
                     "0x10", "", " ", "1e3", "2.5", "١٢", "1,000", "max", "realtime", "ten"]),
    st.text(max_size=8),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=st.sampled_from(NUMERIC), text=VALUES)
def test_a_number_outside_its_range_is_one_line(case, text: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    command, option, valid, words = case
    argv = [command, *REQUIRED[command], f"{option}={text}"]
    try:
        value = float(text.replace("_", "")) if text.strip() else math.nan
    except ValueError:
        value = math.nan
    expected_ok = text in words or (_inside(valid, value) and text.strip() == text
                                    and "x" not in text.lower())
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 2
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"ticker {command}: {option}: expected "), lines[0]
        assert "Traceback" not in err
        assert not expected_ok, (argv, err)
        return
    got = getattr(args, option.lstrip("-").replace("-", "_"))
    assert expected_ok or text.isdecimal(), argv  # unicode digits parse as numbers: fine
    if text in words:
        assert got == words[text]
    else:
        assert _inside(valid, got)
        assert got == pytest.approx(float(text.replace("_", "")))


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paths")
    (root / "file.txt").write_text("x")
    (root / "dir").mkdir()
    return {"a file": root / "file.txt", "a directory": root / "dir",
            "a missing parent": root / "nope" / "x.json", "under a file": root / "file.txt" / "x",
            "in /proc": Path("/proc/ticker-test/x"), "/proc itself": Path("/proc"),
            "a new file": root / "dir" / "new.json", "a new directory": root / "dir" / "new" / "run",
            "empty": Path("")}


# (command, option, the places it accepts: missing parent directories are made)
PATH_OPTIONS = [("replay", "--summary", {"a file", "a new file", "a missing parent",
                                         "a new directory"}),
                ("replay", "--run-dir", {"a directory", "a new directory", "a missing parent", "a new file"}),
                ("import", "--summary", {"a file", "a new file", "a missing parent",
                                         "a new directory"}),
                ("import", "--run-dir", {"a directory", "a new directory", "a missing parent", "a new file"}),
                ("follow", "--summary", {"a file", "a new file", "a missing parent",
                                         "a new directory"}),
                ("follow", "--run-dir", {"a directory", "a new directory", "a missing parent", "a new file"}),
                ("export", "--out", {"a file", "a new file", "a missing parent", "a new directory"}),
                ("report", "--png", {"a file", "a new file", "a missing parent", "a new directory"}),
                ("history", "--png", {"a file", "a new file", "a missing parent", "a new directory"})]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=st.sampled_from(PATH_OPTIONS),
       where=st.sampled_from(["a file", "a directory", "a missing parent", "under a file", "in /proc",
                              "/proc itself", "a new file", "a new directory", "empty"]))
def test_a_path_of_the_wrong_kind_is_one_line(case, where: str, places: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    command, option, accepted = case
    path = "" if where == "empty" else str(places[where])
    argv = [command, *REQUIRED[command], option, path]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        lines = capsys.readouterr().err.splitlines()
        assert exc.code == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"ticker {command}: {option}: "), lines[0]
        assert where not in accepted, lines[0]
        return
    assert where in accepted, argv
    assert not Path(path).exists() or where in {"a file", "a directory"}  # the probe left nothing


def test_resume_without_a_log_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "smoke", "--no-log", "--resume"]) == 2
    assert "--resume: not allowed with argument --no-log" in capsys.readouterr().err
