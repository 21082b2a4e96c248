"""The test run's own guarantees: the hypothesis profile in force, a shrink bound below the timeout,
and a missing external program failing in CI."""

from __future__ import annotations

import inspect
import os

import pytest
from conftest import IN_CI, SHRINK_SECONDS
from hypothesis import settings
from hypothesis.internal.conjecture import engine


def test_the_profile_follows_the_environment() -> None:
    expected = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev")
    assert settings.get_current_profile_name() == expected
    if expected == "ci":
        assert settings.default.database is None
        assert settings.default.max_examples >= 200


def test_shrinking_ends_well_before_the_test_timeout(pytestconfig) -> None:
    """A failing property must report its example, not 'Timeout': the shrink cap is what bounds it.
    The cap is a private hypothesis constant, so check hypothesis still reads it where we set it."""
    assert engine.MAX_SHRINKING_SECONDS == SHRINK_SECONDS
    assert "MAX_SHRINKING_SECONDS" in inspect.getsource(engine.ConjectureRunner.shrink_interesting_test_cases)
    timeout = float(pytestconfig.getini("timeout"))
    assert timeout / 3 >= SHRINK_SECONDS, "generation + shrink + report must fit in the test timeout"


def test_a_missing_program_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path) -> None:
    import conftest

    absent = str(tmp_path / "no-such-broker")
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match=r"CI: no-such-broker not found .*apt-get install it"):
        conftest.require_binary("no-such-broker", absent, install="apt-get install it")
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no-such-broker not found"):
        conftest.require_binary("no-such-broker", absent, install="apt-get install it")
    assert conftest.require_binary("sh", install="-")  # present: its path
