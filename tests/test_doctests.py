"""The examples in the docstrings run: documentation that cannot rot."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["ticker", "ticker.api", "ticker.sink", "ticker.views", "ticker.aggregate.aggregator",
           "ticker.errors", "ticker.money", "ticker.clock", "ticker.publish.url"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0
