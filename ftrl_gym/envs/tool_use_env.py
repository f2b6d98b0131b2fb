"""``ToolUseEnv``: one tool-use task per episode, the agent's text stepped through the sandbox (SPEC 5)."""

from __future__ import annotations

import dataclasses
import difflib
import json
import numbers
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
from gymnasium.error import ResetNeeded

from ftrl_gym.envs.budgets import (
    batch_size,
    cut_outputs,
    not_run,
    over_call_budget,
    over_time_budget,
)
from ftrl_gym.envs.config import ToolUseEnvConfig, load_builtin_tasks
from ftrl_gym.envs.rendering import (
    explain_outcome,
    fit,
    render_messages,
    render_transcript,
    tool_response_block,
)
from ftrl_gym.envs.spaces import LLMText
from ftrl_gym.errors import EnvConfigError, EpisodeStateLostError
from ftrl_gym.parsing import ParsedCall, ParsedResponse, parse_response
from ftrl_gym.reward import (
    TurnReward,
    call_charge,
    call_key,
    count_answers,
    episode_metrics,
    pending_turn_reward,
    scored_calls_reward,
    turn_reward,
    user_turn_reward,
)
from ftrl_gym.sandbox import Sandbox, SandboxConfig, SandboxSession, ToolCall, ToolResult, messages
from ftrl_gym.scoring import CallVerdict, EpisodeJudge, TurnScorer
from ftrl_gym.tasks import TaskRecord, load_tasks

NOT_EXECUTED = "(call recorded: this task scores calls by their arguments and does not execute its tools)"
"""The result of a call of a tool that has no code (tasks with a call scorer)."""

OBSERVATION_MAX_LENGTH = 2**18
"""Characters of the observation space (longer observations are cut with a marker)."""
ACTION_MAX_LENGTH = 2**18
"""Characters of the action space; longer responses are still accepted by ``step``."""


class ToolUseEnv(gym.Env[str, Any]):
    """A multi-turn tool-use episode scored with the Solve-F1 reward.

    One episode is one task (:class:`~ftrl_gym.tasks.TaskRecord`). ``reset`` opens the task's tools in
    a sandbox session; each ``step`` takes one assistant turn, runs its tool calls, and scores the turn
    with ``ftrl_gym.reward.turn_reward`` (SPEC 3). A turn without a parsed call ends the episode
    (``terminated``); ``max_turns`` turns, or a lost world state, truncate it (``truncated``).

    **Action**: the assistant's response — text with Hermes ``<tool_call>`` blocks (or Llama
    ``<|python_tag|>`` JSON), or an OpenAI assistant message dict with ``tool_calls``. The action space
    (:class:`LLMText`) describes the text form. Malformed actions are scored, never raised: a message
    whose ``tool_calls`` is not a list, or whose calls all fail to parse (arguments nested past
    ``ftrl_gym.parsing.MAX_JSON_DEPTH``, past ``MAX_ARGUMENTS_LENGTH`` characters, not JSON, objects
    whose methods raise ...), is a format error (−0.3).

    **Tools**: only the tools listed in the task's ``tools`` can be called (``load_tasks`` refuses a
    ``codes`` entry without a schema); any other name gets the sandbox's unknown-tool error.

    **Turn budgets** (on top of the sandbox's per-call ``tool_timeout`` and output limit):

    - ``max_calls_per_turn`` (16): later calls of the turn are not run; each gets
      ``error: call not run: this turn already made 16 calls (max_calls_per_turn=16)`` and counts as
      a call for the reward.
    - ``turn_timeout`` (30 s): the turn's calls are sent in batches that could all time out within
      the time left; once it is spent, the remaining calls are not run (``error: call not run: this
      turn's tool calls already took 30.2 s (turn_timeout=30 s)``). A turn lasts at most
      ``turn_timeout + tool_timeout``.
    - ``max_output_bytes_per_turn`` (262 144): tool output past it is cut with
      ``…[tool output cut: …]``; a result with nothing left to show becomes
      ``error: output not shown: …``. The observation's own cap (``OBSERVATION_MAX_LENGTH``
      characters) stays as a last guard.

    The defaults never bind on the shipped tasks (at most 4 calls per turn, outputs of a few hundred
    bytes, calls of a few milliseconds).

    **Observation** (:class:`LLMText`): after ``reset``, the opening messages' text; after a turn with
    calls, each tool result as ``<tool_response>\\n…\\n</tool_response>`` joined by newlines (what a
    Hermes/Qwen model reads next); after the final turn, a sentence explaining how it was scored.

    **info** (after ``reset`` and every ``step``):

    - ``messages``: the whole conversation in OpenAI format (a fresh list; do not mutate its dicts).
      Assistant turns carry ``tool_calls`` with ids ``call_<turn>_<i>``; tool messages carry
      ``tool_call_id``, ``name`` and ``content``.
    - ``tools``: the task's OpenAI function schemas offered now (``tools_added`` holds some back until
      their user turn).
    - ``metrics``: episode so far: ``solve_p``, ``solve_r``, ``solve_f1`` (``episode_metrics``),
      ``calls`` (C), ``solved`` (S), ``total_answers`` (T).
    - ``tool_calls``: this turn's parsed calls, ``{"id", "name", "arguments"}`` each.
    - ``tool_results``: their results, ``{"id", "name", "ok", "text", "error"}`` each.
    - ``parse_errors``: one line per call attempt that did not parse (skipped).
    - ``reward_breakdown``: ``{"variant", "branch", "num_calls", "num_solved",
      "answers_left_before", "solved": [[tool, answer], ...]}``; ``{}`` after ``reset`` (always a dict,
      so that vector envs can batch a reset sub-env's info beside a stepped one's).
    - ``task_index``: index of the episode's task in ``env.unwrapped.tasks``.
    - ``user_turn``: scripted user turns delivered so far (0: only the opening messages).
    - ``task_id``: the record's ``id`` field (BFCL's ids), None for records without one.
    - ``verdict``: for a task with a call scorer, how it judged this turn's calls:
      ``{"accepted", "matched", "detail"}``; for a task with a turn scorer (BFCL's multi-turn
      categories), how it judged the user turn that this call-free turn ended; ``{}`` otherwise (and
      after ``reset``).
    - ``episode_accepted``: for a task with a turn scorer, whether every user turn so far was judged
      and accepted (True only once the last one is); None for other tasks.
    - ``turn``: assistant turns taken so far.
    - ``answers_left``: expected answers not yet obtained.
    - ``truncation_reason``: None, ``"max_turns"`` or ``"state_lost"`` (the sandbox worker holding a
      stateful episode's world state died).

    Attributes:
        tasks: The task records episodes are drawn from.
        task: The current episode's record (None before the first ``reset``).
        config: The validated episode settings.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        tasks: str | os.PathLike[str] | Iterable[TaskRecord | Mapping[str, Any]] | None = None,
        *,
        scenario: str | None = None,
        split: str = "train",
        data_dir: str | os.PathLike[str] | None = None,
        max_turns: int = 20,
        reward: str = "solve_f1",
        tool_timeout: float = 10.0,
        tool_memory_mb: int = 1024,
        turn_timeout: float = 30.0,
        max_calls_per_turn: int = 16,
        max_output_bytes_per_turn: int = 2**18,
        abstention_reward: float = 1.0,
        error_call_charge: float = 0.0,
        duplicate_call_charge: float = 0.0,
        sandbox: Sandbox | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Create the env.

        Args:
            tasks: A JSONL path or a list of records (``FTRL-Custom-v0``); exclusive with ``scenario``.
            scenario: Built-in dataset: a scenario name or ``"mixed"`` (set by the registered ids).
            split: ``"train"`` or ``"test"`` for built-in datasets.
            data_dir: Root of the built-in datasets (default: ``envs_generated/``).
            max_turns: Assistant turns before truncation.
            reward: ``"solve_f1"``, ``"solve_p"``, ``"solve_r"`` or ``"solve_pr"``.
            tool_timeout: Wall-clock seconds per tool call.
            tool_memory_mb: Memory limit of a sandbox worker, in MiB.
            turn_timeout: Wall-clock seconds all the calls of one turn may take (see the class docstring).
            max_calls_per_turn: Calls run per turn.
            max_output_bytes_per_turn: UTF-8 bytes of tool output kept per turn.
            abstention_reward: Reward of a well-formed call-free turn on a task whose scorer expects
                no call.
            error_call_charge: Taken off a turn's reward per call that returns an error (0: SPEC 3).
            duplicate_call_charge: Taken off a turn's reward per call identical to an earlier call of
                the episode (0: SPEC 3).
            sandbox: An existing sandbox to share (not closed by this env, not pickled); by default
                the env starts its own on first ``reset``.
            render_mode: None or ``"ansi"`` (``render()`` returns the transcript).

        Raises:
            EnvConfigError: Invalid arguments; the message says how to fix them.
            TaskFormatError: The task file or records are malformed.
        """
        self.config = ToolUseEnvConfig(
            max_turns, reward, tool_timeout, tool_memory_mb,
            turn_timeout, max_calls_per_turn, max_output_bytes_per_turn, abstention_reward,
            error_call_charge, duplicate_call_charge,
        )
        self.tasks: list[TaskRecord] = _resolve_tasks(tasks, scenario, split, data_dir)
        if render_mode not in (None, "ansi"):
            raise EnvConfigError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if sandbox is not None and not isinstance(sandbox, Sandbox):
            raise EnvConfigError(f"sandbox= must be an ftrl_gym.sandbox.Sandbox, got {type(sandbox).__name__}")
        self.render_mode = render_mode
        self.observation_space = LLMText(OBSERVATION_MAX_LENGTH)
        self.action_space = LLMText(ACTION_MAX_LENGTH)
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None
        self._session: SandboxSession | None = None
        self._judge: EpisodeJudge | None = None
        self._turn_scorer: TurnScorer | None = None
        self._runners: dict[str, str] = {}
        self._pending_state_json: str | None = None
        self._tool_seed: int | None = None
        self.task: TaskRecord | None = None
        self._task_index = -1
        self._ids: dict[str, int] | None = None
        self._done = True

    # ---- episode -------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode: task ``options["task_index"]``, or one drawn with ``self.np_random``.

        Args:
            seed: Seeds ``self.np_random`` (the only randomness of the env; it also seeds the tools'
                ``random`` module, once per episode).
            options: ``{"task_index": i}`` or ``{"task_id": "<the record's id>"}`` to choose the task.

        Returns:
            The opening messages' text and the info dict (see the class docstring).
        """
        super().reset(seed=seed)
        self._task_index = self._choose_task(options)
        self._tool_seed = int(self.np_random.integers(2**31))
        self.task = self.tasks[self._task_index]
        self._close_session()
        self._pending_state_json = self.task.state_json  # encoded once at load: no copy per episode
        self._unsolved = {name: list(answers) for name, answers in self.task.unsolved_set.items()}
        self._total_answers = self.task.expected_total
        self._messages: list[dict[str, Any]] = [dict(message) for message in self.task.messages]
        self._user_turn = 0
        self._offer_tools()
        self._turn = self._calls = self._solved = 0
        self._call_keys: set[str] = set()
        scorer = self.task.call_scorer
        self._turn_scorer = scorer if getattr(scorer, "per_user_turn", False) else None  # type: ignore[assignment]
        self._runners = self._turn_scorer.entry_points() if self._turn_scorer is not None else {}
        self._turn_calls, self._results_so_far, self._turns_judged, self._turns_refused = 0, [], 0, 0
        self._done = False
        if self.task.tool_codes or self._turn_scorer is not None:
            self._ensure_session()
        info = self._info([], [], [], {}, None)
        return fit(render_messages(self._messages), OBSERVATION_MAX_LENGTH), info

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Take one assistant turn.

        Args:
            action: Response text, or an OpenAI assistant message dict.

        Returns:
            ``(observation, reward, terminated, truncated, info)`` as the class docstring describes.

        Raises:
            ResetNeeded: The episode is over (or never started); call ``reset``.
            SandboxError: The sandbox infrastructure failed (never for anything the agent did).
        """
        if self._done or self.task is None:
            raise ResetNeeded("the episode is over: call env.reset() before env.step()")
        self._turn += 1
        parsed = parse_response(action, id_prefix=f"call_{self._turn}")
        results, state_lost = self._run_calls(parsed.calls)
        outcome, verdict = self._score_turn(parsed, results)
        outcome = self._charge_calls(parsed.calls, results, outcome)
        self._unsolved = outcome.unsolved_after
        self._calls += outcome.num_calls
        self._solved += outcome.num_solved
        self._messages.append(parsed.message)
        self._messages.extend(
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result.text}
            for call, result in zip(parsed.calls, results)
        )
        terminated = not parsed.calls
        next_turn = terminated and self._user_turn < len(self.task.user_turns)
        if next_turn:
            terminated = False
            observation = self._next_user_turn()
        reason = None if terminated else self._truncation_reason(state_lost)
        self._done = terminated or reason is not None
        if terminated:
            observation = explain_outcome(parsed, outcome)
        elif not next_turn:
            observation = "\n".join(tool_response_block(result.text) for result in results)
        info = self._info(parsed.calls, results, list(parsed.errors), _breakdown(self.config.reward, outcome), reason,
                          verdict)
        return fit(observation, OBSERVATION_MAX_LENGTH), float(outcome.reward), terminated, reason is not None, info

    def _next_user_turn(self) -> str:
        """Append the next scripted user turn, offer the tools it adds; its text is the observation."""
        assert self.task is not None
        self._user_turn += 1
        messages = [dict(message) for message in self.task.user_turns[self._user_turn - 1]]
        self._messages.extend(messages)
        self._offer_tools()
        return render_messages(messages)

    def _offer_tools(self) -> None:
        """The tools of the current user turn (``tools_added`` hides some until their turn)."""
        assert self.task is not None
        self._tools = self.task.tools_at(self._user_turn)
        self._tool_names = frozenset(tool["function"]["name"] for tool in self._tools)
        self._callable_names = (
            frozenset(self.task.tool_names) if self.task.hidden_tools_run else self._tool_names
        )

    def get_state(self) -> Any:
        """A copy of the episode's world state (stateful tasks), else None.

        Returns:
            The state after the calls so far, as the tools see it in ``data``.
        """
        if self.task is None or self._pending_state_json is None:
            return None
        if self._session is None:
            return json.loads(self._pending_state_json)
        return self._session.get_state()

    def resume_task(self) -> TaskRecord:
        """The task as it stands now: a record whose episode starts where this one is.

        Its messages are the conversation so far, its ``unsolved_set`` the answers not yet obtained,
        its ``solve_rate`` the fraction solved so far and its ``state`` the world state after the
        calls so far, so stepping a response in an episode of it earns the reward the next turn of
        this episode would earn (the reference's per-turn prefixes). ``solution`` is dropped: the
        reference calls need not fit the remaining answers.

        Returns:
            A new record (the episode is not changed).

        Raises:
            ResetNeeded: No episode was started.
        """
        if self.task is None:
            raise ResetNeeded("resume_task() needs an episode: call reset() first")
        return dataclasses.replace(
            self.task,
            messages=[dict(message) for message in self._messages],
            unsolved_set={name: list(answers) for name, answers in self._unsolved.items()},
            solve_rate=self._solve_rate(),
            state=self.get_state(),
            solution=None,
        )

    def render(self) -> str | None:
        """The conversation as a transcript with role headers (``render_mode="ansi"``)."""
        if self.render_mode != "ansi" or self.task is None:
            return None
        return render_transcript(self._messages)

    def close(self) -> None:
        """Close the episode's session and, unless it was shared, the sandbox's worker processes."""
        self._close_session()
        if self._owns_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        super().close()

    # ---- pickling ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Drop the sandbox and session; keep a stateful episode's world state to reopen it lazily."""
        state = self.__dict__.copy()
        session = self._session
        if session is not None and self._pending_state_json is not None and not session.state_lost:
            state["_pending_state_json"] = json.dumps(session.get_state(), separators=(",", ":"))
        state["_sandbox"] = state["_session"] = state["_judge"] = None
        state["_owns_sandbox"] = True
        spec = state.get("spec")
        if spec is not None and "sandbox" in spec.kwargs:
            kwargs = {k: v for k, v in spec.kwargs.items() if k != "sandbox"}
            state["spec"] = dataclasses.replace(spec, kwargs=kwargs)
        return state

    # ---- internals -----------------------------------------------------------------------------

    def _choose_task(self, options: dict[str, Any] | None) -> int:
        if options and options.get("task_id") is not None:
            return self._index_of_id(options["task_id"])
        if options and options.get("task_index") is not None:
            index = options["task_index"]
            if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < len(self.tasks):
                raise EnvConfigError(
                    f"options['task_index'] must be an int in 0..{len(self.tasks) - 1} "
                    f"(this env has {len(self.tasks)} tasks), got {index!r}"
                )
            return int(index)
        return int(self.np_random.integers(len(self.tasks)))

    def _index_of_id(self, task_id: Any) -> int:
        """The index of the task whose record has ``"id": task_id``."""
        if self._ids is None:
            self._ids = {}
            for index, task in enumerate(self.tasks):
                key = task.extra.get("id")
                if isinstance(key, str):
                    self._ids.setdefault(key, index)
        if not isinstance(task_id, str) or task_id not in self._ids:
            known = sorted(self._ids)
            close = difflib.get_close_matches(str(task_id), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            examples = ", ".join(repr(k) for k in known[:3]) or "none: these records have no 'id'"
            raise EnvConfigError(f"options['task_id']={task_id!r} is not the id of a task in this env{hint}; "
                                 f"ids look like {examples}")
        return self._ids[task_id]

    def _ensure_session(self) -> SandboxSession:
        if self._session is None:
            if self._sandbox is None:
                self._sandbox = Sandbox(
                    SandboxConfig(timeout_s=self.config.tool_timeout, memory_mb=self.config.tool_memory_mb)
                )
                self._owns_sandbox = True
            assert self.task is not None
            scorer = self._turn_scorer
            codes = self.task.tool_codes if scorer is None else scorer.session_codes()
            self._session = self._sandbox.open_session(codes, seed=self._tool_seed, state_json=self._pending_state_json)
            if scorer is not None:
                self._judge = scorer.start(self._sandbox, self._tool_seed)
                self._judge.setup(self._session)
        return self._session

    def _close_session(self) -> None:
        if self._judge is not None:
            self._judge.close()
            self._judge = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def _score_turn(self, parsed: ParsedResponse, results: Sequence[ToolResult]) -> tuple[TurnReward, CallVerdict | None]:
        """The turn's reward: by the task's call scorer when it has one, else by SPEC 3's answers."""
        assert self.task is not None
        if self._turn_scorer is not None:
            return self._score_user_turn(parsed, results)
        scorer = self.task.call_scorer
        malformed = parsed.num_unparsable if parsed.has_call_syntax else 0
        if scorer is not None and parsed.calls:
            verdict = _judge(scorer, parsed.calls)
            left = self._total_answers - self._solved
            return scored_calls_reward(len(parsed.calls), min(verdict.matched, left), left, self.config.reward), verdict
        abstention = self.config.abstention_reward if scorer is not None and scorer.expected_calls == 0 else None
        outcome = turn_reward(
            parsed.content,
            [(call.name, result.text if result.ok else None) for call, result in zip(parsed.calls, results)],
            self._unsolved,
            self.task.answer,
            self._solve_rate(),
            self.config.reward,
            malformed,
            abstention,
        )
        return outcome, None

    def _charge_calls(
        self, calls: Sequence[ParsedCall], results: Sequence[ToolResult], outcome: TurnReward
    ) -> TurnReward:
        """Take the configured error and duplicate charges off a tool-call turn (none by default)."""
        if not (self.config.error_call_charge or self.config.duplicate_call_charge):
            return outcome  # SPEC 3: no keys to encode on the step's hot path
        keys = [call_key(call.name, call.arguments) for call in calls]
        charge = call_charge(
            keys, [not result.ok for result in results], self._call_keys,
            self.config.error_call_charge, self.config.duplicate_call_charge,
        )
        self._call_keys.update(keys)
        return dataclasses.replace(outcome, reward=outcome.reward - charge) if charge else outcome

    def _score_user_turn(self, parsed: ParsedResponse, results: Sequence[ToolResult]) -> tuple[TurnReward, CallVerdict | None]:
        """A turn of a task judged per user turn: 0 while the agent calls, the judged user turn's own
        Solve-F1 on the call-free turn that ends it."""
        scorer = self._turn_scorer
        assert scorer is not None
        left = self._total_answers - self._solved
        if parsed.calls:
            self._turn_calls += len(parsed.calls)
            self._results_so_far.extend(result.text for result in results)
            return pending_turn_reward(len(parsed.calls), left), None
        session = self._ensure_session()
        assert self._judge is not None
        verdict = self._judge.judge(self._user_turn, session, self._turn_calls, tuple(self._results_so_far))
        self._turns_judged += 1
        self._turns_refused += not verdict.accepted
        outcome = user_turn_reward(self._turn_calls, verdict.matched, scorer.expected_at(self._user_turn), left,
                                   self.config.reward, self.config.abstention_reward)
        self._turn_calls = 0
        return outcome, verdict

    def _episode_accepted(self) -> bool | None:
        """For a task judged per user turn: whether every user turn so far was judged and accepted."""
        if self._turn_scorer is None or self.task is None:
            return None
        return self._turns_refused == 0 and self._turns_judged == len(self.task.user_turns) + 1

    def _run_calls(self, calls: tuple[ParsedCall, ...]) -> tuple[list[ToolResult], bool]:
        """Run a turn's calls within its budgets; returns one result per call and whether state was lost.

        Calls of unlisted tools and of tools without code are answered here; the others go to the
        sandbox under their entry points."""
        if not calls:
            return [], False
        config = self.config
        runnable = calls[: config.max_calls_per_turn]
        answered = [self._answer_here(call) for call in runnable]
        to_run = [call for call, result in zip(runnable, answered) if result is None]
        state_lost = False
        ran: list[ToolResult] = []
        if to_run:
            started = time.monotonic()
            ran, state_lost = self._run_in_time(to_run, started)
            if len(ran) < len(to_run):
                late = over_time_budget(time.monotonic() - started, config.turn_timeout)
                ran += [late] * (len(to_run) - len(ran))
        sandboxed = iter(ran)
        results = cut_outputs([r if r is not None else next(sandboxed) for r in answered],
                              config.max_output_bytes_per_turn)
        if len(runnable) < len(calls):
            results += [over_call_budget(config.max_calls_per_turn)] * (len(calls) - len(runnable))
        return results, state_lost

    def _answer_here(self, call: ParsedCall) -> ToolResult | None:
        """The result of a call that needs no sandbox, or None for a call of a tool with code."""
        assert self.task is not None
        if call.name in self._callable_names and (
            call.name in self.task.codes or call.name in self._runners
        ):
            return None
        if call.name not in self._callable_names:
            return not_run(messages.unknown_tool(call.name, sorted(self._tool_names)))
        return ToolResult(ok=True, text=NOT_EXECUTED, value=NOT_EXECUTED, error=None, elapsed_s=0.0)

    def _run_in_time(self, calls: Sequence[ParsedCall], started: float) -> tuple[list[ToolResult], bool]:
        """Run calls in sandbox round trips that fit in the turn's time left, until it is spent.

        Returns:
            The results of the calls that ran (a prefix of ``calls``) and whether state was lost.
        """
        session = self._ensure_session()
        assert self._sandbox is not None
        call_timeout = self._sandbox.config.timeout_s
        results: list[ToolResult] = []
        while len(results) < len(calls):
            left = self.config.turn_timeout - (time.monotonic() - started)
            size = batch_size(left, call_timeout, len(calls) - len(results))
            if size == 0:
                break
            batch = calls[len(results):len(results) + size]
            try:
                results += session.call([ToolCall(self._runners.get(call.name) or self.task.entry_point(call.name),
                                                  call.arguments) for call in batch])
            except EpisodeStateLostError as exc:
                line = f"error: the episode's world state was lost ({exc}); the episode is truncated"
                return results + [not_run(line)] * (len(calls) - len(results)), True
        return results, session.state_lost

    def _truncation_reason(self, state_lost: bool) -> str | None:
        """Why a turn with calls ends the episode, or None when it goes on."""
        if state_lost:
            return "state_lost"
        return "max_turns" if self._turn >= self.config.max_turns else None

    def _solve_rate(self) -> float:
        """Fraction of sub-problems solved: the record's ``solve_rate`` plus this episode's share.

        On a task judged by a call scorer the sub-problems are its expected calls, solved as the
        scorer matches them (it has no answer set, which would read as all solved).
        """
        assert self.task is not None
        total = self._total_answers
        if self.task.call_scorer is not None:
            left = total - self._solved
        else:
            left = count_answers(self._unsolved)
        if total == 0:
            return self.task.solve_rate
        if left == 0:
            return 1.0
        return self.task.solve_rate + (1.0 - self.task.solve_rate) * (total - left) / total

    def _info(
        self,
        calls: Sequence[ParsedCall],
        results: Sequence[ToolResult],
        parse_errors: list[str],
        breakdown: dict[str, Any],
        truncation_reason: str | None,
        verdict: CallVerdict | None = None,
    ) -> dict[str, Any]:
        assert self.task is not None
        metrics: dict[str, Any] = episode_metrics(self._total_answers, self._calls, self._solved)
        metrics.update(calls=self._calls, solved=self._solved, total_answers=self._total_answers)
        return {
            "messages": list(self._messages),
            "tools": self._tools,
            "metrics": metrics,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
            "tool_results": [
                {"id": c.id, "name": c.name, "ok": r.ok, "text": r.text, "error": r.error}
                for c, r in zip(calls, results)
            ],
            "parse_errors": parse_errors,
            "reward_breakdown": breakdown,
            "task_index": self._task_index,
            "task_id": self.task.extra.get("id"),
            "user_turn": self._user_turn,
            "turn": self._turn,
            "answers_left": count_answers(self._unsolved),
            "truncation_reason": truncation_reason,
            "verdict": _verdict_info(verdict),
            "episode_accepted": self._episode_accepted(),
        }


def _judge(scorer: Any, calls: Sequence[ParsedCall]) -> CallVerdict:
    """The scorer's verdict on a turn's calls; a scorer that fails on what the agent sent refuses them."""
    try:
        return scorer.score([(call.name, call.arguments) for call in calls])
    except Exception as exc:  # noqa: BLE001 - a hostile action must be scored, never raised
        return CallVerdict(False, 0, f"the scorer could not judge these calls ({type(exc).__name__}: {exc})"[:300])


def _verdict_info(verdict: CallVerdict | None) -> dict[str, Any]:
    """``info["verdict"]``: the call scorer's judgement of the turn, ``{}`` when none was made."""
    if verdict is None:
        return {}
    return {"accepted": verdict.accepted, "matched": verdict.matched, "detail": verdict.detail}


def _breakdown(variant: str, outcome: TurnReward) -> dict[str, Any]:
    """``info["reward_breakdown"]`` of one turn."""
    return {
        "variant": variant,
        "branch": outcome.branch,
        "num_calls": outcome.num_calls,
        "num_solved": outcome.num_solved,
        "answers_left_before": outcome.answers_left_before,
        "solved": [list(pair) for pair in outcome.solved],
    }


def _resolve_tasks(
    tasks: str | os.PathLike[str] | Iterable[TaskRecord | Mapping[str, Any]] | None,
    scenario: str | None,
    split: str,
    data_dir: str | os.PathLike[str] | None,
) -> list[TaskRecord]:
    """Load the env's tasks from ``tasks=`` or from the built-in dataset of ``scenario``/``split``."""
    if tasks is not None and scenario is not None:
        raise EnvConfigError("pass either tasks= (FTRL-Custom-v0) or a built-in scenario, not both")
    if tasks is None and scenario is None:
        raise EnvConfigError(
            "FTRL-Custom-v0 needs tasks=: a path to a JSONL file of task records or a list of records, "
            "e.g. gym.make('FTRL-Custom-v0', tasks='my_tasks.jsonl')"
        )
    if tasks is None:
        loaded = load_builtin_tasks(scenario, split, data_dir)  # type: ignore[arg-type]
    elif isinstance(tasks, (str, os.PathLike)) and not os.path.isfile(tasks):
        raise EnvConfigError(f"tasks={str(tasks)!r} is not a file; pass a JSONL path or a list of records")
    else:
        loaded = load_tasks(tasks)
    if not loaded:
        raise EnvConfigError("the task list is empty; an env needs at least one task record")
    return loaded
