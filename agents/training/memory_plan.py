"""Per-GPU memory of a training config: weights, gradients, optimiser, activations, generator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ftrl_gym.agents.training.config import TrainConfig

LOGIT_CHUNK = 256
"""Rows of logits the learner computes at once when scoring tokens (``policy.ScoringModule``): 50 MB
of float32 logits for SmolLM2's 49,152-token vocabulary."""

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
"""Bytes per element of each compute dtype."""
GIB = 2**30


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a Llama/Qwen-style decoder that memory depends on.

    Attributes:
        layers: Decoder layers.
        hidden: Hidden size ``h``.
        intermediate: MLP width ``i`` (gate, up and down projections: SwiGLU).
        heads: Query heads.
        kv_heads: Key/value heads (grouped-query attention).
        head_dim: Width of one head.
        vocab: Vocabulary size.
        tied: Whether the output head shares the input embedding.
        qkv_bias: Whether the q, k, v projections have biases (Qwen2 does, Llama does not).
    """

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool = False

    @property
    def kv_dim(self) -> int:
        """Width of the key (or value) projection: ``kv_heads x head_dim``."""
        return self.kv_heads * self.head_dim

    def layer_parameters(self) -> int:
        """One decoder layer's parameters: attention, the SwiGLU MLP and two RMSNorms."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        attention = 2 * h * self.heads * self.head_dim + 2 * h * kv
        if self.qkv_bias:
            attention += self.heads * self.head_dim + 2 * kv
        return attention + 3 * h * i + 2 * h

    def root_parameters(self) -> int:
        """The parameters outside the layers: embeddings (and an untied head) and the final norm."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def parameters(self) -> int:
        """Parameters: the root's and every layer's."""
        return self.root_parameters() + self.layers * self.layer_parameters()


KNOWN_SHAPES = {
    "qwen2.5-7b": ModelShape(28, 3584, 18944, 28, 4, 128, 152064, tied=False, qkv_bias=True),
    "smollm2-135m": ModelShape(30, 576, 1536, 9, 3, 64, 49152, tied=True),
}
"""Shapes from the models' ``config.json`` (Qwen2.5-7B-Instruct, SmolLM2-135M-Instruct), for plans
made where the model folder is not at hand."""


def shape_from_config(config: dict[str, object]) -> ModelShape:
    """A ``ModelShape`` from a Hugging Face ``config.json`` mapping (Llama, Qwen2, Mistral)."""
    heads = int(config["num_attention_heads"])  # type: ignore[call-overload]
    hidden = int(config["hidden_size"])  # type: ignore[call-overload]
    return ModelShape(
        layers=int(config["num_hidden_layers"]),  # type: ignore[call-overload]
        hidden=hidden,
        intermediate=int(config["intermediate_size"]),  # type: ignore[call-overload]
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),  # type: ignore[call-overload]
        head_dim=int(config.get("head_dim") or hidden // heads),  # type: ignore[call-overload]
        vocab=int(config["vocab_size"]),  # type: ignore[call-overload]
        tied=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=config.get("model_type") == "qwen2",
    )


def load_shape(name_or_path: str) -> ModelShape:
    """A known shape by name (``KNOWN_SHAPES``), or one read from a model folder or ``config.json``.

    Raises:
        ValueError: Neither a known name nor a readable ``config.json``.
    """
    if name_or_path in KNOWN_SHAPES:
        return KNOWN_SHAPES[name_or_path]
    path = Path(name_or_path)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(
            f"no model shape {name_or_path!r}: give a model folder, its config.json, or one of "
            f"{', '.join(KNOWN_SHAPES)}"
        )
    return shape_from_config(json.loads(path.read_text()))


def layer_activation_bytes(shape: ModelShape, dtype_bytes: int) -> int:
    """Bytes one token's forward pass through one layer keeps for the backward pass.

    The float32 residual stream before attention and before the MLP (``2 x 4h``); in the compute
    dtype the two RMSNorm outputs, the query, the attention output and the o-projection output
    (``5h``), key and value (``2 kv``), and the MLP's gate, up, activation and product (``4i``).
    Attention scores are not kept (scaled-dot-product attention recomputes them).
    """
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_dim
    return 8 * h + dtype_bytes * (5 * h + 2 * kv + 4 * i)


def activation_bytes_per_token(
    shape: ModelShape, dtype_bytes: int, checkpointing: bool = False
) -> int:
    """Bytes one token's forward pass keeps for the backward pass, all layers.

    Without checkpointing every layer keeps ``layer_activation_bytes``. With activation
    checkpointing (``Policy.checkpoint_activations``, which recomputes whole decoder layers) a
    layer keeps only its float32 input, the residual stream (``4h``), and the backward recomputes
    one layer at a time, which then holds a layer's activations:
    ``layers x 4h + layer_activation_bytes``.
    """
    per_layer = layer_activation_bytes(shape, dtype_bytes)
    if checkpointing:
        return shape.layers * 4 * shape.hidden + per_layer
    return shape.layers * per_layer


def gathered_bytes(config: TrainConfig, shape: ModelShape, shards: int) -> int:
    """Bytes a sharded (FSDP2) rank holds beyond its shards while a micro-batch runs; 0 unsharded.

    The policy's parameters gathered in the compute dtype: the root's and two layers' (the running
    one and the next, prefetched; a shared-prompt micro-batch is one packed forward pass too). The
    reference's root and two layers (when ``kl_coef > 0``; its forward frees each layer after
    it). The float32 unsharded gradients of the root and of one layer before their
    reduce-scatter.
    """
    if shards <= 1:
        return 0
    dtype_bytes = DTYPE_BYTES[config.dtype]
    root, layer = shape.root_parameters(), shape.layer_parameters()
    gathered = dtype_bytes * (root + 2 * layer)
    if config.kl_coef > 0:
        gathered += dtype_bytes * (root + 2 * layer)
    return gathered + 4 * (root + layer)


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per GPU, item by item."""

    parameters: int
    """Float32 master weights (``4 B`` per parameter over the shards)."""
    gradients: int
    """Float32 gradients (``4 B`` per parameter over the shards)."""
    optimizer: int
    """AdamW's two float32 moments (``8 B`` per parameter over the shards)."""
    reference: int
    """The frozen KL reference in the compute dtype (0 when ``kl_coef`` is 0)."""
    activations: int
    """One micro-batch's saved activations (fewer with ``activation_checkpointing``) plus its
    float32 logits, log-softmax and their gradient at ``LOGIT_CHUNK`` generated positions at
    most."""
    gathered: int
    """FSDP2: the full parameters and gradients a rank gathers while a micro-batch runs
    (``gathered_bytes``); 0 unsharded."""
    generator: int
    """vLLM: its weights in the compute dtype plus ``vllm_kv_cache_gib``; transformers: the KV
    cache of ``micro_batch_size`` sequences of ``max_context_tokens``."""

    def total(self) -> int:
        """The sum of the items."""
        return (
            self.parameters
            + self.gradients
            + self.optimizer
            + self.reference
            + self.activations
            + self.gathered
            + self.generator
        )


def micro_batch_positions(config: TrainConfig) -> tuple[int, int]:
    """Token positions of the largest micro-batch and how many of them are generated ones.

    The budget ``micro_batch_tokens`` when set, else ``micro_batch_size`` full contexts; generated
    positions are at most ``micro_batch_size x max_new_tokens``.
    """
    tokens = config.micro_batch_tokens or config.micro_batch_size * config.max_context_tokens
    generated = min(tokens, config.micro_batch_size * config.max_new_tokens)
    return tokens, generated


def memory_plan(config: TrainConfig, shape: ModelShape, shards: int = 1) -> MemoryPlan:
    """Per-GPU bytes of training ``shape`` with ``config``: a learner rank and a generator a GPU.

    Args:
        config: The settings (dtype, kl_coef, micro-batch sizes, backend, vLLM KV cache).
        shape: The model.
        shards: Ranks the learner's parameters, gradients, optimiser state and reference are
            sharded over (1: a full replica per rank, as the learner is built today).

    Returns:
        The plan.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    n = shape.parameters()
    dtype_bytes = DTYPE_BYTES[config.dtype]
    tokens, generated = micro_batch_positions(config)
    # float32 logits, log-softmax and their gradient, one chunk of scored rows at a time
    logits = 3 * min(generated, LOGIT_CHUNK) * shape.vocab * 4
    if config.backend == "vllm":
        generator = n * dtype_bytes + int(config.vllm_kv_cache_gib * GIB)
    else:
        kv_tokens = config.micro_batch_size * config.max_context_tokens
        generator = 2 * shape.layers * shape.kv_dim * dtype_bytes * kv_tokens
    return MemoryPlan(
        parameters=4 * n // shards,
        gradients=4 * n // shards,
        optimizer=8 * n // shards,
        reference=(dtype_bytes * n // shards) if config.kl_coef > 0 else 0,
        activations=tokens
        * activation_bytes_per_token(shape, dtype_bytes, config.activation_checkpointing)
        + logits,
        gathered=gathered_bytes(config, shape, shards),
        generator=generator,
    )


def format_plan(plan: MemoryPlan, shape: ModelShape, shards: int, gpu_gib: float) -> str:
    """The plan as a Markdown table in GiB, with its total against ``gpu_gib``."""
    rows = [
        ("parameters (fp32 master)", plan.parameters),
        ("gradients (fp32)", plan.gradients),
        ("optimizer (AdamW m, v fp32)", plan.optimizer),
        ("reference (frozen)", plan.reference),
        ("activations (one micro-batch)", plan.activations),
        ("gathered weights, gradients (FSDP2)", plan.gathered),
        ("generator", plan.generator),
    ]
    lines = [
        f"model: {shape.parameters() / 1e9:.3f} B parameters, {shape.layers} layers; "
        f"learner sharded over {shards} rank(s)",
        "",
        "| item | GiB per GPU |",
        "|---|---|",
        *(f"| {name} | {value / GIB:.2f} |" for name, value in rows),
        f"| **total** | **{plan.total() / GIB:.2f}** |",
        "",
        f"{'fits' if plan.total() <= gpu_gib * GIB else 'does NOT fit'} a {gpu_gib:g} GiB GPU",
    ]
    return "\n".join(lines)
