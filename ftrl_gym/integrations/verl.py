"""verl: FTRL tasks as verl's RL parquet rows (openings or every turn's prefix) and verl's ``compute_score``."""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ftrl_gym.envs.rendering import render_message, tool_call_block
from ftrl_gym.sandbox import Sandbox, SandboxConfig
from ftrl_gym.tasks import TaskRecord

ABILITY = "tool_use"
"""The ``ability`` column of every row."""
DATA_SOURCE_PREFIX = "ftrl_gym/"
"""``data_source`` is this prefix plus the task's scenario (``ftrl_gym/multi_hop``)."""
AGENT_NAME = "ftrl_agent"
"""The ``agent_name`` column value of rows that ``FTRLAgentLoop`` plays as whole episodes."""
EPISODE_KEY = "ftrl_episode"
"""Key of the episode summary that ``FTRLAgentLoop`` puts in verl's ``extra_fields``."""
EPISODE_SCORES = ("solve_f1", "return")
"""What ``compute_score`` returns for a whole episode: its Solve-F1 metric or its summed turn rewards."""

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


def hermes_text_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A conversation as plain ``{"role", "content"}`` messages in the Hermes text convention.

    Assistant calls become ``<tool_call>`` blocks in the content; each run of tool messages becomes
    one user message of ``<tool_response>`` blocks joined by newlines, the env's own observation
    text. Any chat template renders these, including templates (SmolLM2's) that know no tool role.

    Args:
        messages: OpenAI chat messages (``info["messages"]`` of the env).

    Returns:
        New messages; the input is not changed.
    """
    out: list[dict[str, str]] = []
    previous_role = None
    for message in messages:
        role, text = message.get("role"), render_message(dict(message))
        if role == "tool" and previous_role == "tool":
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": "user" if role == "tool" else str(role), "content": text})
        previous_role = role
    return out


def task_to_row(
    task: TaskRecord,
    index: int,
    tools_in_prompt: bool = True,
    agent_name: str | None = None,
    turn: int = 0,
) -> dict[str, Any]:
    """One row of verl's RL dataset.

    Args:
        task: The task (or a prefix of an episode of it: :meth:`ToolUseEnv.resume_task`).
        index: Its index (kept in ``extra_info["index"]``).
        tools_in_prompt: Put :func:`tools_system_prompt` in the system message.
        agent_name: verl agent loop that plays the row (``"ftrl_agent"`` for whole episodes with
            ``FTRLAgentLoop``); None leaves the column out (verl's default agent loop plays it).
        turn: Assistant turns already played in ``task.messages`` (kept in ``extra_info["turn"]``).

    Returns:
        ``{"data_source", "prompt", "ability", "reward_model": {"style", "ground_truth"}, "extra_info"}``
        (and ``agent_name`` when given) where ``prompt`` holds ``{"role", "content"}`` messages
        (:func:`hermes_text_messages`) and ``extra_info`` holds what :func:`compute_score` needs:
        ``tools``, ``codes``, ``unsolved_set`` and ``state`` as JSON strings, ``answer``,
        ``solve_rate``, ``split``, ``scenario``, ``index`` and ``turn``.
    """
    messages = hermes_text_messages(task.messages)
    if tools_in_prompt:
        tools_text = tools_system_prompt(task.tools)
        if messages[0]["role"] == "system":
            messages[0] = {
                "role": "system",
                "content": messages[0]["content"] + "\n\n" + tools_text,
            }
        else:
            messages.insert(0, {"role": "system", "content": tools_text})
    row: dict[str, Any] = {
        "data_source": DATA_SOURCE_PREFIX + (task.scenario or "custom"),
        "prompt": messages,
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": task.answer or ""},
        "extra_info": {
            "index": index,
            "turn": turn,
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
    if agent_name is not None:
        row["agent_name"] = agent_name
    return row


CONFIG_DIR = Path(__file__).parent / "verl_configs"
"""verl configs shipped with the package: ``ftrl_grpo.yaml``, ``ftrl_reinforce_pp.yaml``, ``agent_loop.yaml``."""


def reference_turns(task: TaskRecord) -> list[str]:
    """The task's reference trajectory as assistant turns: each ``solution`` turn's calls, then the answer.

    Args:
        task: A task with a ``solution``.

    Returns:
        Hermes ``<tool_call>`` turns and a final ``The answer is ….`` turn (every turn earns its
        full reward on a valid task); ``[]`` for a task without a solution.
    """
    if not task.solution:
        return []
    calls = [
        "\n".join(tool_call_block(c["name"], c.get("arguments", {})) for c in turn)
        for turn in task.solution
    ]
    return [*calls, f"The answer is {task.answer}." if task.answer else "I have finished the task."]


def turn_rows(
    task: TaskRecord, responses: Sequence[str], index: int, tools_in_prompt: bool = True
) -> list[dict[str, Any]]:
    """The reference's per-turn samples: one row per assistant turn of an episode, its prefix as prompt.

    The responses are stepped through a ``ToolUseEnv`` (calls run in the sandbox); before each turn
    the episode so far becomes a record (:meth:`ToolUseEnv.resume_task`: messages so far, answers
    still unsolved, solve rate, world state), so :func:`compute_score` on row ``k`` gives a response
    the reward the env gives turn ``k`` of the episode. Stepping stops when the episode ends.

    Args:
        task: The task.
        responses: The assistant turns of a sampled trajectory (any agent's, or the reference's).
        index: The task's index (``extra_info["index"]`` of every row).
        tools_in_prompt: See :func:`task_to_row`.

    Returns:
        One row per turn played, ``extra_info["turn"]`` = 0, 1, ...
    """
    from ftrl_gym.envs.tool_use_env import ToolUseEnv

    env = ToolUseEnv([task], sandbox=shared_sandbox(), max_turns=max(1, len(responses)))
    rows = []
    try:
        env.reset(options={"task_index": 0})
        for turn, response in enumerate(responses):
            rows.append(task_to_row(env.resume_task(), index, tools_in_prompt, turn=turn))
            _, _, terminated, truncated, _ = env.step(response)
            if terminated or truncated:
                break
    finally:
        env.close()
    return rows


def write_turn_parquet(
    episodes: Iterable[tuple[TaskRecord, Sequence[str]]],
    path: str | os.PathLike[str],
    tools_in_prompt: bool = True,
) -> Path:
    """Write every turn of sampled episodes as verl rows (:func:`turn_rows`), the paper's training set.

    Args:
        episodes: ``(task, responses)`` pairs; the episode's index is its position here.
        path: The ``.parquet`` file to write.
        tools_in_prompt: See :func:`task_to_row`.

    Returns:
        The path written.

    Raises:
        ImportError: pyarrow is not installed (the message says how to install it).
    """
    rows = [
        row
        for index, (task, responses) in enumerate(episodes)
        for row in turn_rows(task, responses, index, tools_in_prompt)
    ]
    return _write_rows(rows, path)


def write_parquet(
    tasks: Iterable[TaskRecord],
    path: str | os.PathLike[str],
    tools_in_prompt: bool = True,
    agent_name: str | None = None,
) -> Path:
    """Write tasks as the parquet file verl's trainer reads (``data.train_files``).

    Args:
        tasks: The tasks, e.g. ``gym.make("FTRL-MultiHop-v0").unwrapped.tasks``.
        path: The ``.parquet`` file to write.
        tools_in_prompt: See :func:`task_to_row`.
        agent_name: See :func:`task_to_row` (``"ftrl_agent"``: whole episodes with ``FTRLAgentLoop``).

    Returns:
        The path written.

    Raises:
        ImportError: pyarrow is not installed (the message says how to install it).
    """
    rows = [task_to_row(task, i, tools_in_prompt, agent_name) for i, task in enumerate(tasks)]
    return _write_rows(rows, path)


def _write_rows(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write rows with pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            "writing verl parquet files needs pyarrow: pip install 'ftrl-gym[verl]'"
        ) from exc
    target = Path(path)
    pq.write_table(pa.Table.from_pylist(rows), target)
    return target


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    variant: str = "solve_f1",
    episode_score: str = "solve_f1",
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward: score a response to a row written by :func:`write_parquet`.

    A whole episode played by ``FTRLAgentLoop`` arrives with the env's own numbers in
    ``extra_info["ftrl_episode"]`` (verl's reward loop merges the agent loop's ``extra_fields`` into
    ``extra_info``): its score is read from there, nothing is replayed. Any other response is one
    assistant turn: it is stepped through a ``ToolUseEnv`` holding the row's task (calls run in the
    sandbox, stateful tasks start from the row's ``state``) and scored by
    ``ftrl_gym.reward.turn_reward`` (SPEC 3), exactly as the env scores that turn of the episode.
    Point verl at it with ``reward.custom_reward_function.path=<this file>`` and
    ``reward.custom_reward_function.name=compute_score``.

    Args:
        data_source: The row's ``data_source`` (not needed: the row carries its task).
        solution_str: The decoded response.
        ground_truth: The row's ``reward_model.ground_truth`` (the final answer; used when
            ``extra_info`` has none).
        extra_info: The row's ``extra_info`` (verl adds ``num_turns`` and such; ignored).
        variant: ``solve_f1`` (default), ``solve_p``, ``solve_r`` or ``solve_pr``; set it with verl's
            ``custom_reward_function.reward_kwargs`` (episodes: set the agent loop's ``reward``).
        episode_score: For an episode: ``solve_f1`` (the episode's Solve-F1, 2S/(C+T)) or
            ``return`` (the sum of its turn rewards).
        **kwargs: Other keywords verl may pass (ignored).

    Returns:
        One turn: ``{"score": reward, "num_calls": p, "num_solved": q}``. An episode: ``score`` and
        ``return``, ``solve_p``, ``solve_r``, ``solve_f1``, ``num_calls`` (C), ``num_solved`` (S),
        ``num_turns``. verl uses ``score`` and logs the rest.

    Raises:
        ValueError: ``episode_score`` is not one of :data:`EPISODE_SCORES`.
    """
    from ftrl_gym.envs.tool_use_env import ToolUseEnv

    episode = (extra_info or {}).get(EPISODE_KEY)
    if episode:
        return score_episode(episode, episode_score)
    task = row_task(extra_info or {}, ground_truth)
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


def score_episode(episode: Mapping[str, Any], episode_score: str = "solve_f1") -> dict[str, float]:
    """verl's reward entry for an episode summary written by ``FTRLAgentLoop``.

    Args:
        episode: ``extra_fields["ftrl_episode"]``: the env's ``info["metrics"]`` after the last
            turn plus ``return`` and ``turns``.
        episode_score: ``solve_f1`` or ``return``.

    Returns:
        ``score`` (the chosen number) and the episode's numbers beside it.

    Raises:
        ValueError: ``episode_score`` is not one of :data:`EPISODE_SCORES`.
    """
    if episode_score not in EPISODE_SCORES:
        raise ValueError(
            f"episode_score must be one of {EPISODE_SCORES}, got {episode_score!r}; set it with "
            "reward.custom_reward_function.reward_kwargs.episode_score"
        )
    return {
        "score": float(episode[episode_score]),
        "return": float(episode["return"]),
        "solve_p": float(episode["solve_p"]),
        "solve_r": float(episode["solve_r"]),
        "solve_f1": float(episode["solve_f1"]),
        "num_calls": int(episode["calls"]),
        "num_solved": int(episode["solved"]),
        "num_turns": int(episode["turns"]),
    }


def row_task(extra_info: Mapping[str, Any], ground_truth: str) -> TaskRecord:
    """Rebuild the task of a row from its ``extra_info`` (as :func:`task_to_row` writes it).

    Args:
        extra_info: The row's ``extra_info``.
        ground_truth: The row's ``reward_model.ground_truth`` (the answer when ``extra_info`` has none).

    Returns:
        A record with the row's tools, codes, unsolved answers, solve rate, answer and state (its
        messages are a placeholder: the prompt travels in the row).
    """
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
