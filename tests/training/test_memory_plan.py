"""The per-GPU memory plan against hand-computed bytes, and ``ftrl-gym train plan``."""

from __future__ import annotations

import argparse

import pytest
from training_helpers import saved_activation_bytes

from ftrl_gym.agents.training.cli import add_arguments, run
from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.memory_plan import (
    KNOWN_SHAPES,
    ModelShape,
    activation_bytes_per_token,
    layer_activation_bytes,
    load_shape,
    memory_plan,
)

TOY = ModelShape(
    layers=2, hidden=4, intermediate=8, heads=2, kv_heads=1, head_dim=2, vocab=10, tied=True
)


def test_parameter_count_of_a_toy_decoder() -> None:
    # attention 2*4*(2*2) + 2*4*2 = 48; layer 48 + 3*4*8 + 2*4 = 152; tied embedding 10*4 = 40
    assert TOY.parameters() == 40 + 2 * 152 + 4 == 348


SMALL = {"dtype": "bfloat16", "micro_batch_size": 2, "max_context_tokens": 16, "max_new_tokens": 4}
"""bf16, micro-batches of 2 sequences of 16 positions, 4 of them generated at most."""


def test_memory_plan_of_a_toy_config() -> None:
    config = build_config(overrides={**SMALL, "prompts_per_step": 2, "mini_batch_size": 2})
    plan = memory_plan(config, TOY)
    assert (plan.parameters, plan.gradients, plan.optimizer) == (4 * 348, 4 * 348, 8 * 348)
    assert plan.reference == 2 * 348  # bf16, kl_coef 0.001 > 0
    # 2 x 16 positions; per token and layer 8*4 + 2*(5*4 + 2*2 + 4*8) = 144, two layers;
    # logits at min(32, 2*4) = 8 generated positions: 3 x 8 x 10 x 4 B
    assert plan.activations == 32 * 2 * 144 + 3 * 8 * 10 * 4 == 10176
    # transformers generation: K and V, 2 layers x kv width 2 x 2 B x 32 positions
    assert plan.generator == 2 * 2 * 2 * 2 * 32 == 512
    assert plan.gathered == 0  # one replica: nothing gathered
    assert plan.total() == 1392 + 1392 + 2784 + 696 + 10176 + 512

    sharded = memory_plan(config, TOY, shards=2)
    assert (sharded.parameters, sharded.optimizer, sharded.reference) == (696, 1392, 348)
    budget = build_config(
        overrides={**config.to_dict(), "micro_batch_tokens": 10, "kl_coef": 0.0, "backend": "vllm"}
    )
    planned = memory_plan(budget, TOY)
    assert planned.reference == 0
    assert planned.activations == 10 * 2 * 144 + 3 * 8 * 10 * 4
    assert planned.generator == 2 * 348 + 2**30  # bf16 weights + vllm_kv_cache_gib = 1


def test_activation_checkpointing_keeps_each_layers_input_and_one_layer() -> None:
    config = build_config(overrides={**SMALL, "activation_checkpointing": True})
    # per token: each of 2 layers keeps its float32 input, 4 B x hidden 4 = 16; the backward
    # recomputes one layer at a time, which holds 144 (test above): 2 x 16 + 144 = 176 over 32
    # positions, logits as before
    assert memory_plan(config, TOY).activations == 32 * (2 * 16 + 144) + 3 * 8 * 10 * 4 == 6592


def test_logits_are_planned_one_chunk_of_rows_at_a_time() -> None:
    from ftrl_gym.agents.training.memory_plan import LOGIT_CHUNK

    wide = ModelShape(
        layers=2, hidden=4, intermediate=8, heads=2, kv_heads=1, head_dim=2, vocab=49152, tied=True
    )
    config = build_config(overrides={**SMALL, "micro_batch_size": 100})
    # 100 x 16 positions, 100 x 4 = 400 of them generated: logits for 256 rows at a time
    assert LOGIT_CHUNK == 256
    assert memory_plan(config, wide).activations == 1600 * 2 * 144 + 3 * 256 * 49152 * 4


def test_sharded_ranks_count_the_weights_and_gradients_they_gather() -> None:
    four = ModelShape(
        layers=4, hidden=4, intermediate=8, heads=2, kv_heads=1, head_dim=2, vocab=10, tied=True
    )
    assert (four.root_parameters(), four.layer_parameters()) == (44, 152)  # 10*4 + 4; as TOY's
    turn = build_config(overrides={**SMALL, "scheme": "turn", "kl_coef": 0.01})
    # the policy gathers its root and two layers (running, prefetched), a shared-prompt
    # micro-batch too (one packed pass): bf16 (44 + 2 x 152) = 696; so does the reference: 696;
    # float32 gradients of the root and one layer before their reduce-scatter: 4 (44 + 152) = 784
    assert memory_plan(turn, four, shards=2).gathered == 696 + 696 + 784 == 2176
    episode = build_config(overrides={**SMALL, "scheme": "episode", "kl_coef": 0.0})
    # full sequences: the root and two layers (running, prefetched); no reference
    assert memory_plan(episode, four, shards=2).gathered == 696 + 784 == 1480
    assert memory_plan(episode, four, shards=1).gathered == 0


def test_known_smollm2_shape_counts_the_real_models_parameters() -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from ftrl_gym.agents.models import resolve_model

    folder = resolve_model("smollm2")
    assert load_shape(folder) == KNOWN_SHAPES["smollm2-135m"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert KNOWN_SHAPES["smollm2-135m"].parameters() == sum(p.numel() for p in model.parameters())
    # Qwen2.5-7B-Instruct's published count
    assert KNOWN_SHAPES["qwen2.5-7b"].parameters() == 7_615_616_512


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_train_plan_prints_the_paper_7b_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--preset", "paper", "--shape", "qwen2.5-7b", "--shards", "8"]
    argv += ["--set", "dtype=bfloat16", "--set", "micro_batch_tokens=2048"]
    assert run(_cli(argv)) == 0
    out = capsys.readouterr().out
    assert "7.616 B parameters, 28 layers; learner sharded over 8 rank(s)" in out
    assert "| optimizer (AdamW m, v fp32) | 7.09 |" in out  # 7.6e9 x 8 B / 8 / 2^30
    assert "fits a 80 GiB GPU" in out


def test_train_plan_names_an_unknown_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_cli(["plan", "--shape", "no-such-model"])) == 2
    assert "no model shape 'no-such-model'" in capsys.readouterr().err


def _saved_activation_bytes(tokenizer, checkpointing: bool, tokens: int) -> int:
    """Bytes of the distinct tensors a tiny Llama's forward pass saves for backward, weights excluded."""
    torch = pytest.importorskip("torch")
    from transformers.models.llama import LlamaConfig, LlamaForCausalLM

    from ftrl_gym.agents.training.policy import Policy

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, num_hidden_layers=3, vocab_size=50, tie_word_embeddings=True,
    )
    policy = Policy(LlamaForCausalLM(config), tokenizer)
    if checkpointing:
        policy.checkpoint_activations()
    ids = torch.randint(0, 50, (1, tokens))
    return saved_activation_bytes(policy.model, lambda: policy.model.model(input_ids=ids))


def test_checkpointing_keeps_what_the_plan_says_from_a_real_forward_pass(tokenizer) -> None:
    # checkpointed, the forward pass keeps each of the 3 layers' float32 input (4 x 64 per token)
    # and what lies outside the layers: the final norm's input and output (2 x 4 x 64), its
    # reciprocal root (4) and the int64 ids (8); the layers' insides are recomputed
    tokens, shape = 40, ModelShape(3, 64, 160, 4, 2, 16, 50, tied=True)
    kept = _saved_activation_bytes(tokenizer, True, tokens)
    outside = tokens * (2 * 4 * 64 + 4 + 8)
    planned = activation_bytes_per_token(shape, 4, True) - layer_activation_bytes(shape, 4)
    assert kept - outside == tokens * planned == tokens * 3 * 4 * 64
