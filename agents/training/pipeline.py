"""The README's result: evaluate → SFT warm start → evaluate → GRPO / Reinforce++ → evaluate, as a table."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.config import SCENARIO_ENV_IDS, TrainConfig
from ftrl_gym.agents.training.stage_cost import CostLedger, StageMeter

from ftrl_gym.atomic import write_text_atomically
from ftrl_gym.errors import FTRLError
from ftrl_gym.sandbox import limits

logger = logging.getLogger(__name__)

EVAL_VLLM_CONCURRENCY = 64
"""Episodes evaluated at once on the vLLM back end (one engine call per round of pending turns)."""

SCENARIO_COLUMNS = {
    "single_hop": "SingleHop",
    "parallel_single_hop": "ParallelSingleHop",
    "multi_hop": "MultiHop",
    "parallel_multi_hop": "ParallelMultiHop",
}


def evaluate_model(
    model: str, config: TrainConfig, out_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Greedy Solve-P/R/F1 of a model on the test split of the four scenarios (``ftrl-gym eval``'s harness).

    Args:
        model: ``"smollm2"`` or a transformers folder.
        config: ``eval_*`` settings, ``micro_batch_size`` (generation batch), ``seed``.
        out_dir: Where the harness keeps ``results.jsonl`` (a rerun resumes it).
        progress: Show a tqdm bar.

    Returns:
        ``summarize``'s dict, plus ``new_episodes``: how many episodes this call ran (0 when every
        one was already stored).
    """
    from tqdm import tqdm

    from ftrl_gym.evaluation.harness import EvalConfig, run_evaluation
    from ftrl_gym.evaluation.results import STORE_NAME, ResultStore

    store = ResultStore(out_dir / STORE_NAME)
    stored_before = len(store)
    agent = make_eval_agent(model, config)
    eval_config = EvalConfig(
        env_ids=list(SCENARIO_ENV_IDS),
        split="test",
        episodes=config.eval_episodes or None,
        concurrency=EVAL_VLLM_CONCURRENCY if config.backend == "vllm" else config.micro_batch_size,
        max_turns=config.eval_max_turns,
        seed=config.seed,
    )
    bar = tqdm(desc=f"eval {out_dir.name}", unit="ep", disable=not progress)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        records = run_evaluation(agent, eval_config, store, advance)
    finally:
        bar.close()
        agent.close()
    return {**summarize(records), "new_episodes": len(store) - stored_before}


def make_eval_agent(model: str, config: TrainConfig) -> Any:
    """The greedy agent that evaluates ``model``: vLLM when ``config.backend`` is ``vllm``, else transformers.

    Both render the same chat template and decode greedily, so their scores compare; vLLM batches
    every pending turn and caches shared prefixes, which on CPU makes evaluation several times faster.
    The vLLM engine gets the model's whole window, so no test episode is cut by the engine.
    """
    from ftrl_gym.agents.factory import AgentSettings, make_agent

    settings = AgentSettings(
        model=model, max_tokens=config.eval_max_new_tokens, temperature=0.0, seed=config.seed,
        concurrency=config.micro_batch_size, dtype=config.dtype, device=config.device,
        max_model_len=None, kv_cache_gib=config.vllm_kv_cache_gib,
    )
    return make_agent("vllm" if config.backend == "vllm" else "hf", settings)


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean Solve-P/R/F1 over episodes, Solve-F1 per scenario and per task, and behaviour: tool calls
    and turns per episode, malformed calls in all."""
    from ftrl_gym.evaluation.report import SOLVE_METRICS
    from ftrl_gym.evaluation.stats import mean

    per_scenario = {
        s: mean(r["solve_f1"] for r in records if r.get("scenario") == s) for s in SCENARIO_COLUMNS
    }
    return {
        **{metric: mean(r[metric] for r in records) for metric in SOLVE_METRICS},
        "episodes": len(records),
        "calls_per_episode": mean(r.get("tool_calls", 0) for r in records),
        "turns_per_episode": mean(r.get("turns", 0) for r in records),
        "format_errors": sum(r.get("format_errors", 0) for r in records),
        "per_scenario": per_scenario,
        "per_task": {task_key(r): r["solve_f1"] for r in records},
    }


def task_key(record: dict[str, Any]) -> str:
    """``env/task_index/repeat``: how ``per_task`` names an episode record."""
    return f"{record['env']}/{record['task_index']}/{record.get('repeat', 0)}"


def paired_gain(base: dict[str, float], other: dict[str, float]) -> dict[str, Any]:
    """Solve-F1 of ``other`` minus ``base`` over the tasks both ran, with a paired 95% t-interval.

    Args:
        base: Task key → Solve-F1 (a ``summarize`` result's ``per_task``).
        other: The same for the later stage.

    Returns:
        ``{"gain", "low", "high", "tasks", "better", "worse"}``; gain and bounds in Solve-F1 units.
    """
    from ftrl_gym.evaluation.stats import mean_ci

    shared = sorted(set(base) & set(other))
    estimate = mean_ci([other[k] - base[k] for k in shared])
    return {
        "gain": estimate.mean,
        "low": estimate.low,
        "high": estimate.high,
        "tasks": len(shared),
        "better": sum(other[k] > base[k] for k in shared),
        "worse": sum(other[k] < base[k] for k in shared),
    }


def gains_text(rows: dict[str, dict[str, Any]], base: str = "sft") -> str:
    """Paired Solve-F1 gains (points, x100): SFT over the start model, then each stage after
    ``base`` over ``base``; one line each."""
    if base not in rows:
        return ""
    stages = list(rows)
    pairs = [("start", base)] if "start" in rows and base == "sft" else []
    pairs += [(base, stage) for stage in stages[stages.index(base) + 1 :]]
    lines = [gain_line(rows, before, after) for before, after in pairs]
    return "\n".join(line for line in lines if line)


def gain_line(rows: dict[str, dict[str, Any]], before: str, after: str) -> str:
    """``- after - before: +G Solve-F1 points, paired 95% CI [...]``, or "" with no shared task."""
    g = paired_gain(rows[before].get("per_task", {}), rows[after].get("per_task", {}))
    if not g["tasks"]:
        return ""
    return (
        f"- {after} - {before}: {100 * g['gain']:+.1f} Solve-F1 points, paired 95% CI "
        f"[{100 * g['low']:+.1f}, {100 * g['high']:+.1f}] over {g['tasks']} tasks "
        f"({g['better']} better, {g['worse']} worse)"
    )


def results_table(rows: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per stage, Solve-F1 per scenario (x100), overall P/R/F1, behaviour
    (tool calls and turns per episode, malformed calls in all), episodes, wall time and peak memory."""
    header = [
        "stage",
        *SCENARIO_COLUMNS.values(),
        "Solve-P",
        "Solve-R",
        "Solve-F1",
        "calls/ep",
        "turns/ep",
        "format errors",
        "episodes",
        "stage wall s",
        "peak GB",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage, row in rows.items():
        name = f"{stage} (step {row['selected_step']})" if "selected_step" in row else stage
        cells = [name, *(f"{100 * row['per_scenario'][s]:.1f}" for s in SCENARIO_COLUMNS)]
        cells += [f"{100 * row[k]:.1f}" for k in ("solve_p", "solve_r", "solve_f1")]
        cells += [f"{row[k]:.1f}" for k in ("calls_per_episode", "turns_per_episode")]
        cells += [str(row["format_errors"]), str(row["episodes"]), f"{row.get('wall_s', 0):.0f}"]
        peak = row.get("peak_memory_gb")
        cells.append(f"{peak:.2f}" if peak is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_pipeline(
    config: TrainConfig, out_dir: str | Path, progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Evaluate the start model, SFT it, evaluate, run each of ``config.rl_algorithms`` from the SFT
    model, evaluate each; write ``results.md`` and ``results.json``. Every stage resumes from its folder;
    a finished RL stage keeps ``final/``, ``metrics.jsonl`` and ``curves.png``, not its checkpoints.

    Args:
        config: All settings; ``model`` is the starting model.
        out_dir: The run folder.
        progress: Show progress bars.

    Returns:
        Stage name → evaluation summary, with ``wall_s`` (the stage's training plus evaluation time)
        and ``peak_memory_gb``, summed and maxed over every invocation that worked on the stage
        (killed ones included: ``stage_cost.StageMeter``).
    """
    import torch
    from ftrl_gym.agents.training.sft import run_sft

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    ledger = CostLedger(out, _read_results(out))
    rows: dict[str, dict[str, Any]] = {}

    def record(
        stage: str,
        model: str,
        trained: bool,
        meter: StageMeter,
        extra: dict[str, Any] | None = None,
    ) -> None:
        with meter.watch:
            row = in_fresh_process(evaluate_model, model, config, out / "eval" / stage, progress)
        cost = meter.finish(worked=row.pop("new_episodes") > 0 or trained)
        rows[stage] = {
            **row, **(extra or {}), "wall_s": cost.wall_s, "peak_memory_gb": cost.peak_memory_gb
        }
        _write_results(out, rows)
        logger.info(
            "stage %s: Solve-F1 %.3f over %d test episodes (%s)", stage, row["solve_f1"],
            row["episodes"], model,
        )

    with StageMeter(ledger, "start") as meter:
        record("start", config.model, False, meter)
    sft_model = out / "sft" / "model"
    with StageMeter(ledger, "sft") as meter:
        trained = not (sft_model / "config.json").is_file()
        if trained:
            with meter.watch:
                in_fresh_process(run_sft, config, out / "sft", None, progress)
        record("sft", str(sft_model), trained, meter)
    for algorithm in config.rl_algorithms:
        rl_config = dataclasses.replace(config, algorithm=algorithm, model=str(sft_model))
        with StageMeter(ledger, algorithm) as meter:
            trained = not (out / algorithm / "final" / "config.json").is_file()
            if trained:
                with meter.watch:
                    in_fresh_process(_train_rl, rl_config, out / algorithm, progress)
            # A finished stage is never reopened: its resumable checkpoints (weights plus optimiser
            # state, 1.6 GB each for SmolLM2-135M) go, and final/ stays.
            shutil.rmtree(out / algorithm / "checkpoints", ignore_errors=True)
            model, notes = rl_model(out / algorithm, config.rl_eval_model)
            record(algorithm, model, trained, meter, notes)
    return rows


def rl_model(run_dir: Path, choice: str) -> tuple[str, dict[str, Any]]:
    """The RL model the pipeline scores on test, and what its row notes about it.

    Args:
        run_dir: The RL stage's folder.
        choice: ``final``, or ``best`` (the validation pick, ``best/`` and ``best.json``).

    Returns:
        The model folder, and ``{"selected_step": N, "val_solve_f1": F}`` for ``best`` (else ``{}``).

    Raises:
        FileNotFoundError: ``best`` was asked for and the run kept no best model.
    """
    from ftrl_gym.agents.training.validation import read_best

    if choice != "best":
        return str(run_dir / "final"), {}
    best = read_best(run_dir)
    if best is None or not (run_dir / "best" / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} has no best/ model: it was trained without val_every; rerun it with "
            "val_every set, or use rl_eval_model=final"
        )
    return str(run_dir / "best"), {
        "selected_step": int(best["step"]),
        "val_solve_f1": float(best["solve_f1"]),
    }


class StageProcessError(FTRLError, RuntimeError):
    """A pipeline stage's process ended without a result: it was killed (the kernel's out-of-memory
    killer, or a signal) or crashed in native code."""


def in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a new (spawned) process; its result comes back, its error is raised.

    Each pipeline stage (an evaluation, SFT, an RL run) runs this way, so the memory it held (an
    optimiser's state, a vLLM engine and its KV cache, allocator pages Python never returns) goes
    back to the OS when it ends: the pipeline's peak RSS is its largest stage's, not their sum. On
    Linux the stage process is killed when this process dies (``die_with_parent``): a pipeline
    killed by its pid does not leave a stage running on with the memory and cores.

    Raises:
        StageProcessError: The stage's process ended without a result (killed, or a native crash).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        try:
            return pool.submit(function, *args).result()
        except BrokenProcessPool as exc:
            raise StageProcessError(
                f"the process running {getattr(function, '__name__', function)} ended without a "
                "result: it was killed (out of memory? `dmesg | grep -i killed` says) or crashed; "
                "what the run finished is kept, and the same command resumes it"
            ) from exc


def die_with_parent(parent: int) -> None:
    """In a stage process: have the kernel send SIGKILL when ``parent`` dies (on Linux); exit at
    once if it is already gone."""
    if not limits.die_with_parent(parent):
        os._exit(1)


def _train_rl(config: TrainConfig, out_dir: Path, progress: bool) -> None:
    """One RL stage; its trainer (and vLLM engine) is gone when this returns, before the next starts."""
    from ftrl_gym.agents.training.trainer import RLTrainer

    trainer = RLTrainer(config, out_dir, progress=progress)
    try:
        trainer.train()
    finally:
        trainer.close()


def _read_results(out: Path) -> dict[str, dict[str, Any]]:
    path = out / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_results(out: Path, rows: dict[str, dict[str, Any]]) -> None:
    write_text_atomically(out / "results.json", json.dumps(rows, indent=2))
    gains = gains_text(rows)
    table = results_table(rows) + "\n" + (f"\n{gains}\n" if gains else "")
    write_text_atomically(out / "results.md", table)
