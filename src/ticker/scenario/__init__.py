"""Scenarios: festival specs (TOML), their rate curves and brands, and the order generator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ticker.scenario.generate import Plan, generate, make_plan
from ticker.scenario.model import SalesWindow, Scenario, ScenarioError
from ticker.scenario.spec import load_scenario, parse_scenario

__all__ = [
    "Plan",
    "SalesWindow",
    "Scenario",
    "ScenarioError",
    "bundled_names",
    "generate",
    "load_scenario",
    "make_plan",
    "parse_scenario",
    "resolve",
]


def bundled_dir(folder: str = "scenarios") -> Path:
    """Where a bundled folder of the repository's top level is (``scenarios``, ``disorders``):
    inside the installed package (the wheel force-includes each as ``ticker/<folder>``), else —
    running from a source checkout or an editable install — the repository's folder itself."""
    installed = Path(str(resources.files("ticker") / folder))
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[3] / folder


def bundled_names() -> list[str]:
    """Names of the scenarios that ship with ticker, sorted."""
    return sorted(p.stem for p in bundled_dir().glob("*.toml"))


def resolve(name_or_path: str) -> Scenario:
    """A bundled scenario by name (``double11-2021``) or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_scenario(path)
    bundled = bundled_dir() / f"{name_or_path}.toml"
    if not bundled.exists():
        raise ScenarioError([f"{name_or_path}: no such scenario (expected a bundled name: "
                             f"{', '.join(bundled_names())}; or a path to a .toml file)"])
    return load_scenario(bundled)
