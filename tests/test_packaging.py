"""The wheel carries what a user needs: the bundled scenarios and disorder profiles, the screen's
page, the type marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_bundled_scenario_and_py_typed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path)], check=True, capture_output=True,
                   timeout=240)
    (wheel,) = tmp_path.glob("ticker-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    scenarios = sorted(p.name for p in (ROOT / "scenarios").glob("*.toml"))
    assert len(scenarios) >= 6
    missing = [s for s in scenarios if f"ticker/scenarios/{s}" not in names]
    assert missing == []
    with zipfile.ZipFile(wheel) as zf:
        for s in scenarios:
            assert zf.read(f"ticker/scenarios/{s}") == (ROOT / "scenarios" / s).read_bytes()
        static = ROOT / "src" / "ticker" / "screen" / "static"  # the big screen's page
        pages = sorted(p.name for p in static.iterdir())
        assert {"index.html", "screen.css", "screen.js"} <= set(pages)
        for page in pages:
            assert zf.read(f"ticker/screen/static/{page}") == (static / page).read_bytes()
    assert "ticker/py.typed" in names
    profiles = sorted(p.name for p in (ROOT / "disorders").glob("*.toml"))
    assert "realistic.toml" in profiles
    with zipfile.ZipFile(wheel) as zf:
        for p in profiles:  # the disorder profiles, force-included like the scenarios
            assert zf.read(f"ticker/disorders/{p}") == (ROOT / "disorders" / p).read_bytes()
