"""The README's environment example runs and prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_env_example_runs_and_scores_one():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(block for block in blocks if "gym.make(\"FTRL-SingleHop-v0\"" in block)
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=120, cwd=README.parent, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Could you work out Pyyaex's founding date?"
    assert lines[-1] == (
        "1.0 True {'solve_p': 1.0, 'solve_r': 1.0, 'solve_f1': 1.0, 'calls': 1, 'solved': 1, "
        "'total_answers': 1}"
    )


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in README.read_text() and "<!-- test-command -->" in ci
