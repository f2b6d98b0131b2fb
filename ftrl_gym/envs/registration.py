"""Registration of the ``FTRL-*-v0`` ids with Gymnasium (idempotent, no env is built at import)."""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "ftrl_gym.envs.tool_use_env:ToolUseEnv"
"""What every id builds."""

BUILTIN_IDS: dict[str, str] = {
    "FTRL-SingleHop-v0": "single_hop",
    "FTRL-ParallelSingleHop-v0": "parallel_single_hop",
    "FTRL-MultiHop-v0": "multi_hop",
    "FTRL-ParallelMultiHop-v0": "parallel_multi_hop",
    "FTRL-Mixed-v0": "mixed",
}
"""Built-in ids and the scenario of ``envs_generated/`` each one serves."""

SCENARIO_IDS: tuple[str, ...] = tuple(i for i, s in BUILTIN_IDS.items() if s != "mixed")
"""The four scenarios' ids, one per scenario: the default of evaluation and training."""

CUSTOM_ID = "FTRL-Custom-v0"
"""The id that takes ``tasks=`` (a JSONL path or a list of records)."""

ENV_IDS: tuple[str, ...] = (*BUILTIN_IDS, CUSTOM_ID)
"""The ids of the generated datasets (every id this package registers, BFCL's aside)."""

BFCL_ID = "FTRL-BFCL-v0"
"""BFCL's single-turn and multi-turn categories (``category=``), read from the optional bfcl-eval package."""
BFCL_ENTRY_POINT = "ftrl_gym.bfcl.env:make_bfcl_env"

BFCL_CATEGORY_IDS: dict[str, str] = {
    f"FTRL-BFCL-{''.join(part.capitalize() for part in category.split('_'))}-v0": category
    for category in (
        "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
        "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "irrelevance",
        "live_irrelevance", "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
        "multi_turn_long_context",
    )
}
"""One id per BFCL category (``FTRL-BFCL-SimplePython-v0`` ...), for tools that take ids only
(``ftrl-gym eval --env``); the same env as ``FTRL-BFCL-v0`` with ``category=``."""


def register_envs() -> None:
    """Register every id that is not registered yet (safe to call many times)."""
    for env_id, scenario in BUILTIN_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"scenario": scenario})
    if CUSTOM_ID not in gym.registry:
        gym.register(id=CUSTOM_ID, entry_point=ENTRY_POINT)
    if BFCL_ID not in gym.registry:
        gym.register(id=BFCL_ID, entry_point=BFCL_ENTRY_POINT)
    for env_id, category in BFCL_CATEGORY_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=BFCL_ENTRY_POINT, kwargs={"category": category})
