"""TRL: FTRL tasks, tools and the Solve-F1 reward in the form ``trl.GRPOTrainer`` takes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym

from ftrl_gym.envs.chat_template import render_chat_prompt
from ftrl_gym.envs.registration import CUSTOM_ID
from ftrl_gym.integrations.trl_tools import tool_method
from ftrl_gym.sandbox import Sandbox, SandboxConfig, SandboxSession, ToolCall
from ftrl_gym.tasks import TaskRecord


class TaskToolEnvironment:
    """Base of the per-task TRL environments: the task's tools are its public methods.

    TRL's ``environment_factory`` exposes every public method except ``reset`` and ``get_reward`` as a
    tool, so this class defines no other public method; :meth:`TRLAdapter.environment_factory` makes
    one subclass per task with one method per tool. A call runs in the sandbox, in the episode's
    session (the world state of a stateful task persists across the episode's calls), and returns the
    text the agent reads; failures come back as the error line, never as an exception.
    """

    task: TaskRecord
    """The task whose tools the subclass exposes (set on the subclass)."""

    def __init__(self, sandbox: Callable[[], Sandbox]) -> None:
        """Create an environment; no process starts before the first ``reset``.

        Args:
            sandbox: Returns the shared sandbox the episode's session opens in.
        """
        self._sandbox = sandbox
        self._session: SandboxSession | None = None

    def reset(self, **row: Any) -> None:
        """Open a fresh sandbox session with the task's code and initial world state.

        Args:
            **row: The dataset row (TRL passes it; the prompt already holds the question).
        """
        self._close()
        self._session = self._sandbox().open_session(self.task.tool_codes, state_json=self.task.state_json)

    def _run(self, name: str, arguments: dict[str, Any]) -> str:
        if self._session is None:
            self.reset()
        assert self._session is not None
        return self._session.call([ToolCall(self.task.entry_point(name), dict(arguments))])[0].text

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _run_tool(environment: TaskToolEnvironment, name: str, arguments: dict[str, Any]) -> str:
    return environment._run(name, arguments)


class SolveF1Reward:
    """A TRL reward function: each completion replayed through the env, its turn rewards summed.

    TRL calls it as ``reward(prompts=..., completions=..., task_index=[...], **columns)``. A completion
    is either text (one assistant turn, the paper's per-turn scheme) or TRL's list of messages of a
    multi-turn rollout (assistant turns with ``tool_calls``, tool messages between them); its assistant
    turns are stepped through a ``ToolUseEnv`` reset to the row's task, so the reward is exactly the
    env's SPEC 3 reward (summed over the turns: the episode return so far).
    """

    __name__ = "solve_f1"

    def __init__(self, env: gym.Env) -> None:
        """Score with an env.

        Args:
            env: A ``ToolUseEnv`` over the dataset's tasks (``task_index`` indexes its tasks).
        """
        self.env = env

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        task_index: Sequence[int],
        **kwargs: Any,
    ) -> list[float]:
        """One reward per completion.

        Args:
            prompts: The prompts (unused: the task fixes the opening conversation).
            completions: Completion texts, or lists of messages.
            task_index: The dataset column naming each row's task.
            **kwargs: Other columns and TRL's extras (ignored).

        Returns:
            The summed turn rewards.
        """
        return [
            self.score(int(index), completion) for index, completion in zip(task_index, completions)
        ]

    def score(self, task_index: int, completion: str | Sequence[Mapping[str, Any]]) -> float:
        """Replay one completion from the start of task ``task_index``.

        Args:
            task_index: The task.
            completion: Text, or messages in which every assistant message is one turn.

        Returns:
            The sum of the turn rewards until the episode ends or the turns run out.
        """
        self.env.reset(options={"task_index": task_index})
        total = 0.0
        for turn in assistant_turns(completion):
            _, reward, terminated, truncated, _ = self.env.step(turn)
            total += float(reward)
            if terminated or truncated:
                break
        return total


def assistant_turns(completion: str | Sequence[Mapping[str, Any]]) -> list[Any]:
    """The assistant turns of a completion: the text itself, or its assistant messages.

    Args:
        completion: Completion text, or chat messages.

    Returns:
        Actions ``ToolUseEnv.step`` takes, in order.
    """
    if isinstance(completion, str):
        return [completion]
    return [dict(message) for message in completion if message.get("role") == "assistant"]


class TRLAdapter:
    """An FTRL env's tasks, tools and reward for ``trl.GRPOTrainer``.

    Two ways to train:

    - **per turn** (the paper's scheme, any TRL version): ``prompt_dataset(tokenizer)`` holds each
      task's opening prompt rendered with its tools; :attr:`reward_func` scores the completion as one
      assistant turn.
    - **multi-turn with tools** (TRL's ``environment_factory``): ``environment_dataset()`` routes each row
      to its task's environment, whose methods are the task's tools; TRL runs the calls between
      generations and :attr:`reward_func` scores the whole rollout.

    Example:
        >>> adapter = TRLAdapter("FTRL-MultiHop-v0", split="test", num_tasks=64)
        >>> trainer = GRPOTrainer(model, reward_funcs=adapter.reward_func, args=config,
        ...                       train_dataset=adapter.environment_dataset(),
        ...                       environment_factory=adapter.environment_factory())
    """

    def __init__(
        self,
        env_id: str = "FTRL-MultiHop-v0",
        *,
        tasks: str | Iterable[TaskRecord | Mapping[str, Any]] | None = None,
        num_tasks: int | None = None,
        tool_timeout: float = 10.0,
        tool_memory_mb: int = 1024,
        **env_kwargs: Any,
    ) -> None:
        """Load the tasks and start the sandbox the tools and the reward share.

        Args:
            env_id: A built-in FTRL id (ignored when ``tasks`` is given).
            tasks: A JSONL path or records (``FTRL-Custom-v0``).
            num_tasks: Keep only the first ``num_tasks`` tasks.
            tool_timeout: Seconds per tool call.
            tool_memory_mb: Memory limit of the sandbox worker.
            **env_kwargs: More ``gym.make`` keywords (``split``, ``max_turns``, ``reward``).
        """
        self.sandbox = Sandbox(SandboxConfig(timeout_s=tool_timeout, memory_mb=tool_memory_mb))
        kwargs = dict(
            env_kwargs,
            sandbox=self.sandbox,
            tool_timeout=tool_timeout,
            tool_memory_mb=tool_memory_mb,
        )
        env = (
            gym.make(CUSTOM_ID, tasks=tasks, **kwargs)
            if tasks is not None
            else gym.make(env_id, **kwargs)
        )
        if num_tasks is not None:
            env.unwrapped.tasks = env.unwrapped.tasks[:num_tasks]
        self.env = env
        self.tasks: list[TaskRecord] = env.unwrapped.tasks
        self.reward_func = SolveF1Reward(env)

    def prompt_dataset(self, tokenizer: Any, **template_kwargs: Any) -> Any:
        """Rows ``{"prompt": text, "task_index": i}``: each task's opening prompt rendered with its tools.

        Args:
            tokenizer: A ``transformers`` tokenizer with a tool-aware chat template.
            **template_kwargs: Passed to the chat template.

        Returns:
            A ``datasets.Dataset`` in TRL's standard (text) format.
        """
        from datasets import Dataset

        prompts = [
            render_chat_prompt(tokenizer, t.messages, t.tools, **template_kwargs)
            for t in self.tasks
        ]
        return Dataset.from_dict({"prompt": prompts, "task_index": list(range(len(self.tasks)))})

    def environment_dataset(self) -> Any:
        """Rows ``{"prompt": messages, "environment": key, "task_index": i}`` for ``environment_factory``.

        Returns:
            A ``datasets.Dataset`` in TRL's conversational format.
        """
        from datasets import Dataset

        return Dataset.from_dict(
            {
                "prompt": [t.messages for t in self.tasks],
                "environment": [environment_key(i) for i in range(len(self.tasks))],
                "task_index": list(range(len(self.tasks))),
            }
        )

    def environment_factory(self) -> dict[str, Callable[[], TaskToolEnvironment]]:
        """One environment class per task, keyed like ``environment_dataset``'s ``environment`` column.

        Returns:
            ``{key: factory}`` for ``GRPOTrainer(environment_factory=...)``.

        Raises:
            ValueError: A task's tool or parameter name cannot be a Python method or argument.
        """
        return {
            environment_key(i): _environment_class(task, i, self._get_sandbox)
            for i, task in enumerate(self.tasks)
        }

    def close(self) -> None:
        """Close the env and the sandbox (kills its worker process)."""
        self.env.close()
        self.sandbox.close()

    def _get_sandbox(self) -> Sandbox:
        return self.sandbox


def environment_key(task_index: int) -> str:
    """The ``environment`` value of task ``task_index``.

    Args:
        task_index: Index into the adapter's tasks.

    Returns:
        ``"task_<index>"``.
    """
    return f"task_{task_index}"


class _Factory:
    """Builds instances of one task's environment class around the shared sandbox."""

    def __init__(self, cls: type[TaskToolEnvironment], sandbox: Callable[[], Sandbox]) -> None:
        self.cls = cls
        self.sandbox = sandbox

    def __call__(self) -> TaskToolEnvironment:
        return self.cls(self.sandbox)


def _environment_class(task: TaskRecord, index: int, sandbox: Callable[[], Sandbox]) -> _Factory:
    methods = {tool["function"]["name"]: tool_method(tool, _run_tool) for tool in task.tools}
    cls = type(f"FTRLTask{index}Environment", (TaskToolEnvironment,), {"task": task, **methods})
    return _Factory(cls, sandbox)
