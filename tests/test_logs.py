"""Logging: library code logs instead of printing; other libraries' INFO and WARNING lines are quiet
unless ``--verbose``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CLI_MODULES = {"cli.py", "eval_cli.py", "show_episodes.py", "verl_cli.py"}
"""Modules that print a command's results (tables, transcripts, paths) to stdout."""

LIBRARY_LINES = """
import os, sys
from ftrl_gym.logs import configure_logging
configure_logging(verbose=sys.argv[1] == "verbose")
from vllm.logger import init_logger
from transformers.utils import logging as hf_logging
import logging, warnings
init_logger("vllm.engine").info("vllm-info")
init_logger("vllm.engine").warning("vllm-warning")
hf_logging.get_logger("transformers.modeling_utils").warning("hf-warning")
logging.getLogger("httpx").info("httpx-info")
logging.getLogger("ftrl_gym.agents.training.pipeline").info("ftrl-info")
warnings.warn("py-warning", FutureWarning)
print(os.environ.get("VLLM_LOGGING_LEVEL"))
"""


def test_library_code_has_no_print_calls() -> None:
    found = []
    for path in [*(ROOT / "ftrl_gym").rglob("*.py"), *(ROOT / "agents").rglob("*.py")]:
        if path.name in CLI_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize(
    ("mode", "shown", "hidden", "vllm_level"),
    [
        ("quiet", ["ftrl-info"], ["vllm-info", "vllm-warning", "hf-warning", "httpx-info", "py-warning"], "ERROR"),
        ("verbose", ["ftrl-info", "vllm-info", "vllm-warning", "hf-warning", "httpx-info", "py-warning"], [], "None"),
    ],
)
def test_third_party_logs_are_quiet_unless_verbose(
    mode: str, shown: list[str], hidden: list[str], vllm_level: str
) -> None:
    pytest.importorskip("vllm")
    unset = ("VLLM_LOGGING_LEVEL", "TRANSFORMERS_VERBOSITY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-c", LIBRARY_LINES, mode], capture_output=True, text=True, timeout=300,
        env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == vllm_level
    for text in shown:
        assert text in result.stderr, (text, result.stderr)
    for text in hidden:
        assert text not in result.stderr, (text, result.stderr)
