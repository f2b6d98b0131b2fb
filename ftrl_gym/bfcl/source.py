"""What ftrl-gym reads from the installed ``bfcl-eval``: its prompts, possible answers and tool schemas."""

from __future__ import annotations

import copy
import difflib
import importlib.util
from functools import lru_cache
from typing import Any

from ftrl_gym.errors import EnvConfigError

INSTALL_HINT = "pip install 'ftrl-gym[bfcl]'"
"""What to run when ``bfcl-eval`` is missing."""

SINGLE_TURN_CATEGORIES: tuple[str, ...] = (
    "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
    "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
    "irrelevance", "live_irrelevance",
)
"""BFCL's one-shot categories judged by its AST checker (or, for the irrelevance ones, by no call)."""

CHECKER_MODEL = "gpt-4o-2024-11-20-FC"
"""A BFCL model entry whose function-calling style matches the tools ftrl-gym offers: names with dots
are sent with underscores (``math.factorial`` → ``math_factorial``), and the checker maps them back."""


def require_bfcl() -> None:
    """Raise one clear line when ``bfcl-eval`` is not installed.

    Raises:
        EnvConfigError: ``bfcl_eval`` cannot be imported.
    """
    if importlib.util.find_spec("bfcl_eval") is None:
        raise EnvConfigError(f"FTRL-BFCL-v0 reads BFCL from the bfcl-eval package, which is not installed: {INSTALL_HINT}")


def load_checker() -> Any:
    """BFCL's ``ast_checker`` function (importing it imports every model handler BFCL knows: seconds)."""
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker


MULTI_TURN_CATEGORIES: tuple[str, ...] = (
    "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context",
)
"""BFCL's multi-turn categories, judged by its state and response checks after every user turn."""

CATEGORIES: tuple[str, ...] = SINGLE_TURN_CATEGORIES + MULTI_TURN_CATEGORIES
"""Every category ``FTRL-BFCL-v0`` serves."""


def check_category(category: Any) -> str:
    """Return ``category`` when it is a category this env serves.

    Raises:
        EnvConfigError: Unknown category, with the closest match and the full list.
    """
    if category in CATEGORIES:
        return category
    close = difflib.get_close_matches(str(category), CATEGORIES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise EnvConfigError(
        f"unknown BFCL category {category!r}{hint}; gym.make('FTRL-BFCL-v0', category=...) takes one of "
        f"{', '.join(CATEGORIES)}"
    )


def language(category: str) -> Any:
    """BFCL's ``Language`` the checker applies to a category's argument types."""
    from bfcl_eval.constants.enums import Language

    if category == "simple_java":
        return Language.JAVA
    if category == "simple_javascript":
        return Language.JAVASCRIPT
    return Language.PYTHON


@lru_cache(maxsize=None)
def prompts(category: str, with_hints: bool) -> tuple[dict[str, Any], ...]:
    """A category's entries as BFCL loads them: ``with_hints`` as sent to models (generation), without
    them as its checker reads the function docs (evaluation)."""
    from bfcl_eval.utils import load_dataset_entry

    return tuple(load_dataset_entry(category, include_prereq=False, include_language_specific_hint=with_hints))


@lru_cache(maxsize=None)
def checker_functions(category: str) -> dict[str, list[dict[str, Any]]]:
    """Task id → the function docs BFCL's checker reads."""
    return {entry["id"]: entry["function"] for entry in prompts(category, with_hints=False)}


@lru_cache(maxsize=None)
def possible_answers(category: str) -> dict[str, list[dict[str, Any]]]:
    """Task id → BFCL's possible answer (``[{function: {param: [acceptable values]}}]``); ``[]`` for the
    irrelevance categories, whose right answer is no call."""
    if "irrelevance" in category:
        return {entry["id"]: [] for entry in prompts(category, with_hints=False)}
    from bfcl_eval.utils import load_ground_truth_entry

    return {entry["id"]: entry["ground_truth"] for entry in load_ground_truth_entry(category)}


def tools_as_sent(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The OpenAI tool schemas BFCL sends to function-calling models (``convert_to_tool``)."""
    from bfcl_eval.constants.enums import ModelStyle
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI
    from bfcl_eval.model_handler.utils import convert_to_tool

    return convert_to_tool(copy.deepcopy(functions), GORILLA_TO_OPENAPI, ModelStyle.OPENAI_COMPLETIONS)


def sent_name(name: str) -> str:
    """A function's name as BFCL sends it to function-calling models (dots become underscores)."""
    return name.replace(".", "_")
