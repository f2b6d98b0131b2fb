"""verl: FTRL tasks as verl's RL parquet rows, and a ``compute_score`` that scores one turn with Solve-F1."""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ftrl_gym.parsing import content_text
from ftrl_gym.sandbox import Sandbox, SandboxConfig
from ftrl_gym.tasks import TaskRecord

ABILITY = "tool_use"
"""The ``ability`` column of every row."""
DATA_SOURCE_PREFIX = "ftrl_gym/"
"""``data_source`` is this prefix plus the task's scenario (``ftrl_gym/multi_hop``)."""

_sandbox: Sandbox | None = None
_sandbox_lock = threading.Lock()


def tools_system_prompt(tools: list[dict[str, Any]]) -> str:
    """The tool list as a system-prompt text in the Hermes ``<tools>`` / ``<tool_call>`` convention.

    verl renders each row's ``prompt`` with the model's chat template and one global tool list, so
    per-task tools travel inside the prompt.

    Args:
        tools: OpenAI function-tool schemas.

    Returns:
        The instructions, the schemas one per line inside ``<tools>``, and the call format.
    """
    schemas = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "You can call the functions described inside <tools></tools> to answer the user.\n"
        f"<tools>\n{schemas}\n</tools>\n"
        "To call a function, write a JSON object with its name and arguments inside <tool_call></tool_call>:\n"
        '<tool_call>\n{"name": "<function name>", "arguments": {"<parameter>": <value>}}\n</tool_call>\n'
        "Calls in one reply run in order; when you know the answer, reply with it and no call."
    )


def task_to_row(task: TaskRecord, index: int, tools_in_prompt: bool = True) -> dict[str, Any]:
    """One row of verl's RL dataset.

    Args:
        task: The task.
        index: Its index (kept in ``extra_info["index"]``).
        tools_in_prompt: Put :func:`tools_system_prompt` in the system message.

    Returns:
        ``{"data_source", "prompt", "ability", "reward_model": {"style", "ground_truth"}, "extra_info"}``
        where ``prompt`` holds ``{"role", "content"}`` messages and ``extra_info`` holds what
        :func:`compute_score` needs: ``tools``, ``codes``, ``unsolved_set`` and ``state`` as JSON
        strings, ``answer``, ``solve_rate``, ``split``, ``scenario`` and ``index``.
    """
    messages = [
        {"role": m["role"], "content": content_text(m.get("content"))} for m in task.messages
    ]
    if tools_in_prompt:
        tools_text = tools_system_prompt(task.tools)
        if messages[0]["role"] == "system":
            messages[0] = {
                "role": "system",
                "content": messages[0]["content"] + "\n\n" + tools_text,
            }
        else:
            messages.insert(0, {"role": "system", "content": tools_text})
    return {
        "data_source": DATA_SOURCE_PREFIX + (task.scenario or "custom"),
        "prompt": messages,
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": task.answer or ""},
        "extra_info": {
            "index": index,
            "split": task.split or "",
            "scenario": task.scenario or "",
            "tools": json.dumps(task.tools, ensure_ascii=False),
            "codes": json.dumps(task.codes, ensure_ascii=False),
            "unsolved_set": json.dumps(task.unsolved_set, ensure_ascii=False),
            "state": json.dumps(task.state, ensure_ascii=False),
            "answer": task.answer or "",
            "solve_rate": float(task.solve_rate),
        },
    }


def write_parquet(
    tasks: Iterable[TaskRecord], path: str | os.PathLike[str], tools_in_prompt: bool = True
) -> Path:
    """Write tasks as the parquet file verl's trainer reads (``data.train_files``).

    Args:
        tasks: The tasks, e.g. ``gym.make("FTRL-MultiHop-v0").unwrapped.tasks``.
        path: The ``.parquet`` file to write.
        tools_in_prompt: See :func:`task_to_row`.

    Returns:
        The path written.

    Raises:
        ImportError: pyarrow is not installed (the message says how to install it).
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            "writing verl parquet files needs pyarrow: pip install 'ftrl-gym[verl]'"
        ) from exc
    rows = [task_to_row(task, i, tools_in_prompt) for i, task in enumerate(tasks)]
    target = Path(path)
    pq.write_table(pa.Table.from_pylist(rows), target)
    return target


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    variant: str = "solve_f1",
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward: score one assistant turn of a row written by :func:`write_parquet`.

    The response is stepped through a ``ToolUseEnv`` holding the row's task: its calls run in the
    sandbox (stateful tasks start from the row's ``state``) and the turn is scored by
    ``ftrl_gym.reward.turn_reward`` (SPEC 3), exactly as the env scores the first turn of the task.
    Point verl at it with ``reward.custom_reward_function.path=<this file>`` and
    ``reward.custom_reward_function.name=compute_score``.

    Args:
        data_source: The row's ``data_source`` (not needed: the row carries its task).
        solution_str: The decoded response.
        ground_truth: The row's ``reward_model.ground_truth`` (the final answer; used when
            ``extra_info`` has none).
        extra_info: The row's ``extra_info`` (verl adds ``num_turns`` and such; ignored).
        variant: ``solve_f1`` (default), ``solve_p``, ``solve_r`` or ``solve_pr``; set it with verl's
            ``custom_reward_function.reward_kwargs``.
        **kwargs: Other keywords verl may pass (ignored).

    Returns:
        ``{"score": reward, "num_calls": p, "num_solved": q}``; verl uses ``score`` and logs the rest.
    """
    from ftrl_gym.envs.tool_use_env import ToolUseEnv

    task = _row_task(extra_info or {}, ground_truth)
    env = ToolUseEnv([task], sandbox=shared_sandbox(), reward=variant)
    try:
        env.reset(options={"task_index": 0})
        _, reward, _, _, info = env.step(solution_str)
    finally:
        env.close()
    breakdown = info["reward_breakdown"]
    return {
        "score": float(reward),
        "num_calls": breakdown["num_calls"],
        "num_solved": breakdown["num_solved"],
    }


def _row_task(extra_info: Mapping[str, Any], ground_truth: str) -> TaskRecord:
    """Rebuild the task of a row from its ``extra_info``."""
    record = {
        key: extra_info[key] for key in ("tools", "codes", "unsolved_set") if key in extra_info
    }
    state = extra_info.get("state")
    record.update(
        messages=[{"role": "user", "content": ""}],
        answer=extra_info.get("answer") or ground_truth or None,
        solve_rate=float(extra_info.get("solve_rate") or 0.0),
        state=json.loads(state) if isinstance(state, str) else state,
    )
    return TaskRecord.from_dict(record, f"extra_info[index={extra_info.get('index')}]")


def shared_sandbox() -> Sandbox:
    """The process's sandbox for scoring (started on first use, closed at exit).

    Returns:
        A sandbox with the default limits (``FTRL_VERL_TOOL_TIMEOUT`` overrides the per-call seconds).
    """
    global _sandbox
    with _sandbox_lock:
        if _sandbox is None:
            timeout = float(os.environ.get("FTRL_VERL_TOOL_TIMEOUT", "10"))
            _sandbox = Sandbox(SandboxConfig(timeout_s=timeout))
            atexit.register(_sandbox.close)
        return _sandbox
