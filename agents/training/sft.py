"""SFT warm start: behaviour cloning of oracle trajectories from the train split, assistant tokens only."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ftrl_gym.agents.baselines import OracleAgent
from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.generation import Completion
from ftrl_gym.agents.training.metrics import MetricsLog
from ftrl_gym.agents.training.reporting import open_reporters
from ftrl_gym.agents.training.policy import Policy, make_batch
from ftrl_gym.agents.training.rollout import Episode, TokenRenderer, take_turn, train_env_pool
from ftrl_gym.agents.training.update import adamw


def oracle_episode(env: object, task_index: int, renderer: TokenRenderer, seed: int = 0) -> Episode:
    """Play the oracle through the env in token space, its text tokenised as if the policy wrote it.

    Each oracle turn becomes ``encode(text) + [eos]`` in the loss, exactly the ids a policy must
    generate to produce that turn; prompts, tool results and template text are masked out.

    Args:
        env: A ``ToolUseEnv`` (or a wrapper of one) of the train split.
        task_index: The task to play.
        renderer: The learner's tokenizer wrapper.
        seed: Reset seed.

    Returns:
        The episode with its token ids and loss mask.
    """
    _, info = env.reset(seed=seed, options={"task_index": task_index})  # type: ignore[attr-defined]
    oracle = OracleAgent()
    oracle.reset(env.unwrapped.task)  # type: ignore[attr-defined]
    spec = getattr(env, "spec", None)
    episode = Episode(spec.id if spec else "", task_index, seed, str(task_index))
    episode.extend(renderer.prompt_ids(info["messages"], info["tools"]), generated=False)
    while not episode.done:
        text = oracle.act(info["messages"], info["tools"])
        ids = renderer.encode(text) + [renderer.eos_id]
        info = take_turn(episode, env, Completion(ids, [0.0] * len(ids), True), renderer)
    return episode


def nll_loss(policy: Policy, episodes: Sequence[Episode]) -> torch.Tensor:
    """Token-mean negative log-likelihood of the generated (assistant) tokens of ``episodes``."""
    batch = make_batch(
        [e.token_ids for e in episodes], [e.loss_mask for e in episodes], policy.pad_id
    )
    logprobs, _ = policy.forward(batch)
    return -(logprobs * batch.loss_mask).sum() / batch.loss_mask.sum().clamp(min=1.0)


def collect_oracle_episodes(config: TrainConfig, renderer: TokenRenderer) -> list[Episode]:
    """Oracle trajectories of the first ``sft_tasks`` train tasks of every env id."""
    pool = train_env_pool(config)
    try:
        episodes = []
        for env_id in config.env_ids:
            env = pool.get(env_id, 1)[0]
            for index in range(min(config.sft_tasks, len(env.unwrapped.tasks))):
                episode = oracle_episode(env, index, renderer, seed=config.seed)
                if len(episode.token_ids) <= config.max_context_tokens:
                    episodes.append(episode)
        return episodes
    finally:
        pool.close()


def sft_policy(config: TrainConfig) -> Policy:
    """The learner SFT trains: ``config.model`` in ``config.dtype`` on ``config.device``, its
    decoder layers recomputed in the backward pass when ``activation_checkpointing`` is set (an
    oracle trajectory runs to 2,000 tokens, and its activations are most of SFT's memory)."""
    policy = Policy(config.model, dtype=config.dtype, device=config.device)
    if config.activation_checkpointing:
        policy.checkpoint_activations()
    return policy


def run_sft(
    config: TrainConfig, out_dir: str | Path, policy: Policy | None = None, progress: bool = True
) -> Path:
    """Behaviour-clone the oracle and save the model in HF format under ``out_dir/model``.

    Args:
        config: ``sft_*`` settings, ``model``, ``env_ids``, ``seed``.
        out_dir: Run folder (``metrics.jsonl``, ``curves.png``, ``model/``).
        policy: A ready learner (tests), used as it is; ``sft_policy(config)`` otherwise.
        progress: Show a tqdm bar.

    Returns:
        The saved model folder.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    policy = policy or sft_policy(config)
    episodes = collect_oracle_episodes(config, TokenRenderer(policy.tokenizer))
    optimizer = adamw(policy.model.parameters(), config.sft_lr, config.weight_decay)
    reporters = open_reporters(config.report_to, out_dir, config.to_dict())
    log = MetricsLog(out_dir / "metrics.jsonl", reporters, "sft")
    rng = random.Random(config.seed)
    steps_per_epoch = -(-len(episodes) // config.sft_batch_size)
    policy.model.train()
    bar = tqdm(
        total=config.sft_epochs * steps_per_epoch, desc="sft", unit="step", disable=not progress
    )
    step = 0
    for epoch in range(config.sft_epochs):
        order = list(episodes)
        rng.shuffle(order)
        for start in range(0, len(order), config.sft_batch_size):
            started = time.perf_counter()
            loss = _sft_update(
                policy, optimizer, order[start : start + config.sft_batch_size], config
            )
            step += 1
            tokens = sum(len(e.token_ids) for e in order[start : start + config.sft_batch_size])
            log.append(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": loss,
                    "tokens_per_s": tokens / (time.perf_counter() - started),
                }
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
    bar.close()
    for reporter in reporters:
        reporter.close()
    policy.model.eval()
    return policy.save(out_dir / "model")


def _sft_update(
    policy: Policy, optimizer: torch.optim.Optimizer, batch: list[Episode], config: TrainConfig
) -> float:
    """One AdamW step on a batch of trajectories; micro-batches weighted by their token share."""
    optimizer.zero_grad(set_to_none=True)
    total = sum(sum(e.loss_mask) for e in batch) or 1
    value = 0.0
    for start in range(0, len(batch), config.sft_micro_batch_size):
        micro = batch[start : start + config.sft_micro_batch_size]
        share = sum(sum(e.loss_mask) for e in micro) / total
        loss = nll_loss(policy, micro) * share
        loss.backward()
        value += float(loss.detach())
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), config.max_grad_norm)
    optimizer.step()
    return value
