"""``TrainConfig``'s fields in groups: their documentation, pydantic type checks and the grouped help."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from ftrl_gym.errors import FTRLError


class ConfigError(FTRLError, ValueError):
    """A training setting is invalid; the message says how to fix it."""


GROUP_TITLES: dict[str, str] = {
    "run": "what is trained, on which envs, where",
    "rl": "GRPO / Reinforce++ updates",
    "sampling": "rollout generation",
    "sft": "the SFT warm start",
    "evaluation": "validation and the pipeline's test evaluation",
    "distributed": "Ray: rollout workers and learner ranks (ftrl-gym train ... --ray)",
    "logging": "where metrics go besides metrics.jsonl",
    "lora": "LoRA adapters through PEFT (lora_rank 0: full fine-tuning)",
}
"""Each group of settings and what it holds, in ``--help`` order."""

FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "run": (
        "model", "backend", "env_ids", "tasks", "reward", "train_tasks", "max_turns", "seed",
        "dtype", "device", "torch_threads", "save_every",
    ),
    "rl": (
        "algorithm", "scheme", "episode_reward", "prompts_per_step", "rollouts_per_prompt",
        "mini_batch_size", "micro_batch_size", "ppo_epochs", "epochs", "max_steps", "lr",
        "weight_decay", "max_grad_norm", "kl_coef", "entropy_coef", "clip_low", "clip_high", "gamma",
        "normalize_by_std", "skip_zero_advantage", "rl_algorithms", "micro_batch_tokens", "dual_clip",
        "recompute_old_logprobs", "tis_cap", "lr_warmup_steps", "lr_schedule", "lr_min_ratio",
        "dynamic_sampling", "max_resample_rounds", "error_call_charge", "duplicate_call_charge",
    ),
    "sampling": (
        "max_new_tokens", "max_context_tokens", "temperature", "top_p", "vllm_kv_cache_gib",
    ),
    "sft": ("sft_tasks", "sft_epochs", "sft_lr", "sft_batch_size", "sft_micro_batch_size"),
    "evaluation": (
        "eval_episodes", "eval_max_new_tokens", "eval_max_turns", "val_every", "val_tasks",
        "rl_eval_model",
    ),
    "distributed": (
        "ray_address", "num_rollout_workers", "rollout_worker_cpus", "rollout_worker_gpus",
        "num_learners", "learner_cpus", "learner_gpus", "vllm_tensor_parallel_size", "max_staleness",
        "max_worker_restarts", "weight_sync", "learner_sharding", "activation_checkpointing",
    ),
    "logging": ("report_to",),
    "lora": ("lora_rank", "lora_alpha", "lora_targets"),
}
"""The group of every ``TrainConfig`` field; ``tests/training/test_config_schema.py`` checks that each
field is in exactly one group, so a new field must be placed here."""

KINDS: dict[Any, str] = {
    float: "a number",
    int: "a whole number",
    bool: "true or false",
    str: "text",
    list[str]: "a list (a,b or [a, b])",
}
"""How ``--help`` and error messages name each field type."""


def field_groups() -> dict[str, str]:
    """Field name → its group (see ``FIELD_GROUPS``)."""
    return {name: group for group, names in FIELD_GROUPS.items() for name in names}


def field_types(cls: type) -> dict[str, Any]:
    """Field name → resolved type of a dataclass (its annotations are strings)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name → the attribute docstring under it in ``cls``'s source, whitespace collapsed.

    Each field is documented once, in the class body; this reads those strings with ``ast`` so that
    ``--help`` shows the same text.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def flatten_groups(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Turn grouped settings (``rl: {lr: 1e-6}`` or ``rl.lr``) into flat field names.

    Flat names pass through unchanged; a group section must hold fields of that group.

    Args:
        data: One settings mapping, e.g. a YAML file's.
        source: Where it came from, for messages.

    Raises:
        ConfigError: A section holds a field of another group, or is not a mapping.
    """
    groups = field_groups()
    flat: dict[str, Any] = {}
    for key, value in data.items():
        group, dot, name = str(key).partition(".")
        if dot:
            section = {name: value}
        elif key in GROUP_TITLES:
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{source}: section {key} must map its settings to values, got {value!r}"
                )
            section = dict(value)
        else:
            flat[key] = value
            continue
        if group not in GROUP_TITLES:
            raise ConfigError(f"{source}: {key} names no group: use one of {', '.join(GROUP_TITLES)}")
        for name, item in section.items():
            if name in groups and groups[name] != group:
                raise ConfigError(
                    f"{source}: {name} belongs to group {groups[name]}, not {group} "
                    f"(write it under {groups[name]}:)"
                )
            flat[name] = item
    return flat


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind, config=ConfigDict(coerce_numbers_to_str=True))


def check_types(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert each value to its field's type with pydantic (lax mode: ``"1e-6"`` is a
    number, ``"false"`` a boolean; ``"flase"``, ``"abc"`` for a number or ``true`` for a number are
    refused).

    Args:
        cls: The settings dataclass.
        values: Field name → value; every name is a field of ``cls``.

    Returns:
        The values converted to their field types.

    Raises:
        ConfigError: One line naming each bad field, its value and what it takes.
    """
    types = field_types(cls)
    defaults = {f.name: _default(f) for f in dataclasses.fields(cls)}
    checked, problems = {}, []
    for name, value in values.items():
        kind = types[name]
        if kind == list[str] and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        try:
            if isinstance(value, bool) and kind in (int, float):
                raise ValueError("a boolean is not a number")
            checked[name] = _adapter(kind).validate_python(value)
        except (ValidationError, ValueError):
            problems.append(
                f"{name}={value!r} is invalid: {name} takes {KINDS.get(kind, str(kind))} "
                f"(default {defaults[name]!r})"
            )
    if problems:
        raise ConfigError("; ".join(problems))
    return checked


def _default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


def grouped_help(cls: type) -> str:
    """Every field of ``cls`` under its group's heading: name, type, default and documentation.

    Fields missing from ``FIELD_GROUPS`` are listed last, under ``other``.
    """
    groups = field_groups()
    types = field_types(cls)
    docs = field_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    order = [*GROUP_TITLES, "other"]
    lines = ["settings (--set NAME=VALUE, or NAME: VALUE in --config, flat or under its group):"]
    for group in order:
        names = [n for n in fields if groups.get(n, "other") == group]
        if not names:
            continue
        lines += ["", f"{group}: {GROUP_TITLES.get(group, 'not yet grouped')}"]
        for name in names:
            kind = KINDS.get(types[name], str(types[name]))
            lines.append(f"  {name} ({kind}, default {_default(fields[name])!r})")
            doc = docs.get(name, "").replace("``", "")
            lines += textwrap.wrap(doc, width=96, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
