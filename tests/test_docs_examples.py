"""Every Python example in README.md and docs/*.md runs and prints what its comments say it prints.

An example that is not meant to run is marked by a ``<!-- not-run: REASON -->`` line right before its
fence. In a runnable example, a ``print(...)`` line's trailing ``# TEXT`` comment (or a ``# TEXT`` line
right after it) is the expected output: ``\\n`` in it is a line break and ``...`` matches anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?:<!-- not-run: (?P<reason>[^\n]*?) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One ``python`` fence of a Markdown file."""

    path: Path
    line: int
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    """Every ``python`` fence of README.md and docs/*.md, in file order."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            found.append(Example(path, line, match.group("code"), match.group("reason")))
    return found


def expected_output(code: str) -> list[str]:
    """The printed lines the example's comments promise, one pattern per line."""
    lines = code.splitlines()
    expected: list[str] = []
    for index, line in enumerate(lines):
        if not line.startswith("print("):
            continue
        comment = re.search(r"\)\s+# (.*)$", line)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if comment:
            expected.extend(comment.group(1).rstrip().split("\\n"))
        elif following.startswith("# "):
            expected.extend(following[2:].rstrip().split("\\n"))
    return expected


def matches(pattern: str, line: str) -> bool:
    """Whether a printed line fits an expected line, ``...`` standing for any text."""
    regex = ".*".join(re.escape(part) for part in pattern.split("..."))
    return re.fullmatch(regex, line) is not None


RUNNABLE = [e for e in examples() if e.not_run is None]


def test_the_docs_hold_runnable_and_marked_examples() -> None:
    names = {e.name.split(":")[0] for e in RUNNABLE}
    assert {"README.md", "docs/envs.md", "docs/agents.md", "docs/integrations.md"} <= names
    assert all(e.not_run for e in examples() if e not in RUNNABLE)


def test_expected_output_reads_trailing_and_following_comments() -> None:
    code = 'x = 1\nprint(x)  # 1\\n2\nprint(x)\n# 3 ...\nprint(x)\n'
    assert expected_output(code) == ["1", "2", "3 ..."]
    assert matches("1.0 {'a': 1, ...}", "1.0 {'a': 1, 'b': 2}")
    assert not matches("1.0 True", "0.0 True")


@pytest.mark.parametrize("example", RUNNABLE, ids=lambda e: e.name)
def test_doc_example_runs_and_prints_what_it_says(example: Example, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", example.code], capture_output=True, text=True, timeout=300,
        cwd=tmp_path, check=False,
    )
    assert result.returncode == 0, f"{example.name} failed:\n{result.stderr}"
    printed = result.stdout.splitlines()
    wanted = expected_output(example.code)
    assert len(printed) == len(wanted), f"{example.name} printed {printed}, its comments say {wanted}"
    for pattern, line in zip(wanted, printed):
        assert matches(pattern, line), f"{example.name}: printed {line!r}, its comment says {pattern!r}"
