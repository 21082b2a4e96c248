"""One exception root: every error a user can cause is a ``ticker.TickerError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import ticker
from ticker import TickerError
from ticker.cli import main


def _public_exceptions() -> list[type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(ticker.__path__, "ticker."):
        if info.name.startswith("ticker.__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and not name.startswith("_")
                    and obj.__module__.startswith("ticker.")):
                found[obj.__qualname__, obj.__module__] = obj
    return list(found.values())


def test_every_public_ticker_exception_lives_under_the_root():
    classes = _public_exceptions()
    assert len(classes) >= 10  # scenario, batch, log, snapshot, publish, run dir, report, export...
    strays = [c.__name__ for c in classes if not issubclass(c, TickerError)]
    assert strays == []


@pytest.mark.parametrize("name", ["ScenarioError", "BatchRejected", "CorruptLogError", "PublishError",
                                  "RunDirError", "SnapshotError", "LogLockedError"])
def test_the_named_families_are_reachable_from_the_package(name):
    classes = {c.__name__: c for c in _public_exceptions()}
    assert issubclass(classes[name], TickerError)


def test_the_cli_prints_a_ticker_error_as_one_line_without_traceback(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ticker: ") and "Traceback" not in err


def test_a_scenario_error_prints_each_problem_on_its_own_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[festival]\nname = 3\n")
    assert main(["replay", str(bad), "--mqtt", "none", "--no-log", "--quiet"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("ticker: ") for line in lines)
    assert all(str(bad) in line for line in lines)
