"""``ftrl-gym train``: SFT warm start, GRPO, Reinforce++, the eval/SFT/RL pipeline, memory plans."""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym

from ftrl_gym.agents.training.config import PRESETS, ConfigError, TrainConfig, build_config, parse_overrides
from ftrl_gym.agents.training.config_schema import grouped_help
from ftrl_gym.cli import user_error
from ftrl_gym.errors import AgentError, EnvConfigError, TaskFormatError
from ftrl_gym.run_settings import RunSettingsError, claim_run_folder

MODES = ("sft", "grpo", "reinforce_pp", "reinforce_pp_baseline", "pipeline", "plan")

USER_ERRORS = (ConfigError, RunSettingsError, AgentError, EnvConfigError, TaskFormatError, gym.error.Error)
"""What ``train`` reports as one line with exit status 2: bad settings, run folder, model, envs or tasks."""

RESUME_SAFE = ("max_steps", "save_every", "torch_threads")
"""Settings a resumed run may change: how far it goes, how often it saves, how many threads it uses."""

PIPELINE_MAY_CHANGE = ("rl_algorithms",)
"""Settings a rerun of ``pipeline`` may change in a folder with results: each RL stage has its own
folder and evaluation, so adding one (Reinforce++ beside a finished GRPO) keeps the stages done."""


def run_settings(mode: str, config: TrainConfig) -> dict[str, object]:
    """What a run folder stores to recognise a rerun: the mode and every setting but ``RESUME_SAFE``."""
    settings = {k: v for k, v in config.to_dict().items() if k not in RESUME_SAFE}
    return {"mode": mode, **settings}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to the subcommand's parser; ``--help`` lists every setting by group."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = grouped_help(TrainConfig)
    parser.add_argument(
        "mode",
        choices=MODES,
        help="what to run (pipeline: eval → SFT → eval → RL → eval; plan: per-GPU memory)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="settings file (.yaml/.yml/.json) of TrainConfig fields"
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="named starting settings (cpu: 2-core run)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set lr=1e-6 or --set rl.lr=1e-6 (repeatable; wins over "
        "--config; the settings are listed below)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="runs/train",
        help="run folder; rerunning with the same folder and settings resumes [runs/train]",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="when --out holds a run made with other settings, delete it instead of refusing",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="RL on Ray: rollout worker and learner actors on a local Ray instance (see docs/distributed.md)",
    )
    parser.add_argument(
        "--shape",
        metavar="MODEL",
        help="plan: the model's shape, a folder or config.json or a known name "
        "(qwen2.5-7b, smollm2-135m) [the config's model]",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="plan: ranks the learner state is sharded over (1: full replicas, as built) [1]",
    )
    parser.add_argument(
        "--gpu-gib", type=float, default=80.0, help="plan: GPU memory to compare with [80]"
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="RL on Ray, joining the cluster at ADDR (e.g. auto or 10.0.0.1:6379); implies --ray",
    )


def run(args: argparse.Namespace) -> int:
    """Run the chosen mode.

    Returns:
        0 on success, 2 for a user error (settings, files, model path, run folder), with one line on
        stderr.
    """
    try:
        return _run(args)
    except USER_ERRORS as exc:
        return user_error("train", exc)


def _run(args: argparse.Namespace) -> int:
    try:
        overrides = parse_overrides(args.overrides)
        if args.mode not in ("sft", "pipeline", "plan"):
            overrides["algorithm"] = args.mode
        if args.ray_address:
            overrides["ray_address"] = args.ray_address
        distributed = bool(args.ray or args.ray_address)
        if distributed and args.mode in ("sft", "pipeline", "plan"):
            raise ConfigError(f"--ray runs the RL modes only, not {args.mode}")
        config = build_config(args.preset, args.config, overrides)
    except (ConfigError, OSError) as exc:
        return user_error("train", exc)
    if args.mode == "plan":
        return print_plan(config, args)
    progress = not args.no_progress
    out = Path(args.out)
    old = [p.name for p in out.iterdir()] if out.is_dir() else []
    may_change = PIPELINE_MAY_CHANGE if args.mode == "pipeline" else ()
    claim_run_folder(
        out, run_settings(args.mode, config), overwrite=args.overwrite, clear=old, may_change=may_change
    )
    if args.mode == "sft":
        from ftrl_gym.agents.training.sft import run_sft

        print(f"SFT model: {run_sft(config, out, progress=progress)}")
        return 0
    if args.mode == "pipeline":
        from ftrl_gym.agents.training.pipeline import StageProcessError, run_pipeline

        try:
            run_pipeline(config, out, progress=progress)
        except StageProcessError as exc:
            user_error("train", exc)
            return 1
        print((out / "results.md").read_text().rstrip())
        print(f"results: {out / 'results.md'}")
        return 0
    from ftrl_gym.agents.training.trainer import RLTrainer

    if distributed:
        from ftrl_gym.agents.training.distributed.cluster import ClusterError
        from ftrl_gym.agents.training.distributed.ray_backend import RayBackend

        try:
            trainer = RLTrainer(config, out, progress=progress, backend=RayBackend(config, out))
        except (ClusterError, ConfigError) as exc:
            return user_error("train", exc)
    else:
        trainer = RLTrainer(config, out, progress=progress)
    try:
        metrics = trainer.train()
    finally:
        trainer.close()
    last = metrics[-1] if metrics else {}
    print(
        f"steps: {len(metrics)}  last reward: {last.get('reward', float('nan')):.3f}  "
        f"model: {out / 'final'}  metrics: {out / 'metrics.jsonl'}  curves: {out / 'curves.png'}"
    )
    return 0


def print_plan(config: TrainConfig, args: argparse.Namespace) -> int:
    """Print the config's per-GPU memory plan (``memory_plan``); 2 when the shape is not found."""
    from ftrl_gym.agents.training.memory_plan import format_plan, load_shape, memory_plan

    try:
        if args.shape:
            shape = load_shape(args.shape)
        else:
            from ftrl_gym.agents.models import resolve_model

            shape = load_shape(resolve_model(config.model))
        plan = memory_plan(config, shape, args.shards)
    except (ValueError, OSError) as exc:
        return user_error("train plan", exc)
    print(format_plan(plan, shape, args.shards, args.gpu_gib))
    return 0
