"""The README's commands are what CI runs, and what it shows is what ticker prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson

from ticker.scenario import resolve

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
    """What the README promises for its first command, checked against the published record and
    the scenario's declared figures (not against an earlier run's output)."""
    result = subprocess.run([sys.executable, "-m", "ticker", "replay", "double11-2021"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()
    assert any("milestones delivered" in line for line in last[-2:])
    assert "RMB 540.3 billion" in README  # FACTS.md: final GMV, Nov 1 - Nov 11
    scenario = resolve("double11-2021")
    scale = scenario.default_scale
    run_dir = tmp_path / "runs" / f"double11-2021-seed{scenario.seed}-x{scale:g}"
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    # the published RMB 540.3 billion, to the scenario's declared tolerance (0.1 %)
    assert abs(summary["gmv_minor"] - 540_300_000_000_00) <= 0.001 * 540_300_000_000_00
    # the windows' declared 2.513 billion orders at scale 0.001, plus the bursts' (Apple's RMB 300
    # million in Nov 1's first second and RMB 1.5 billion in the next 239: ~277 orders of its RMB
    # 6,500 average, at this scale)
    declared = round(sum(w.orders for w in scenario.windows) * scale)
    assert declared == 2_513_000
    bursts = sum(round(b.gmv_minor / 100 * scale / 6_500) for b in scenario.bursts)
    assert declared < summary["orders"] <= declared + 2 * bursts
    line = f"GMV RMB 540.3 billion from {summary['orders']:,} orders"
    assert any(line in text for text in last[-3:]), last[-3:]
    size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    assert 0 < size < 200 * 1024 * 1024


def test_the_scenario_list_in_the_readme_is_what_ticker_prints():
    shown = README.split("$ ticker scenarios\n", 1)[1].split("```", 1)[0]
    printed = subprocess.run([sys.executable, "-m", "ticker", "scenarios"], capture_output=True,
                             text=True, check=True).stdout
    assert printed == shown


def test_the_use_it_from_python_examples_run(capsys):
    section = README.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 3  # fold it yourself, replay as a function, your own sink
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "smoke-seed7-x0.1" in out and "first past RMB" in out
