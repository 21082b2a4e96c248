"""The README's commands are what CI runs, and what it shows is what ticker prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def bash_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S)]


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first, second = bash_blocks()[:2]
    assert first.endswith("pip install . && ticker replay double11-2021")
    assert second == "bash scripts/test"
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == second


def test_the_main_command_replays_2021_into_a_small_run_directory(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ticker", "replay", "double11-2021"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()
    assert any("GMV RMB 540.3 billion from 2,513,046 orders" in line for line in last[-3:])
    assert any("milestones delivered" in line for line in last[-2:])
    run_dir = tmp_path / "runs" / "double11-2021-seed20211111-x0.001"
    size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    assert 0 < size < 200 * 1024 * 1024


def test_the_scenario_list_in_the_readme_is_what_ticker_prints():
    shown = README.split("$ ticker scenarios\n", 1)[1].split("```", 1)[0]
    printed = subprocess.run([sys.executable, "-m", "ticker", "scenarios"], capture_output=True,
                             text=True, check=True).stdout
    assert printed == shown
