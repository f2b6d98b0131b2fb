"""LoRA through PEFT: only adapters train, checkpoints hold them alone, resume and final/ agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import tiny_model

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from ftrl_gym.agents.training.config import ConfigError, build_config
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.trainer import RLTrainer


def _config(easy_tasks: Path, max_steps: int):
    return build_config(
        overrides={
            "env_ids": ["FTRL-Custom-v0"],
            "tasks": str(easy_tasks),
            "train_tasks": 4,
            "prompts_per_step": 2,
            "rollouts_per_prompt": 2,
            "mini_batch_size": 2,
            "max_new_tokens": 4,
            "max_context_tokens": 256,
            "lr": 1e-2,
            "kl_coef": 0.001,
            "max_steps": max_steps,
            "save_every": 1,
            "lora_rank": 4,
            "lora_alpha": 8.0,
        }
    )


def _trainer(tokenizer, easy_tasks: Path, out: Path, max_steps: int) -> RLTrainer:
    policy = Policy(tiny_model(tokenizer), tokenizer)
    return RLTrainer(_config(easy_tasks, max_steps), out, policy=policy, progress=False)


def test_lora_trains_only_the_adapters_and_checkpoints_them_alone(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    start = {k: v.clone() for k, v in tiny_model(tokenizer).state_dict().items()}
    trainer = _trainer(tokenizer, easy_tasks, tmp_path, max_steps=2)
    try:
        trainable = [p for p in trainer.backend.policy.model.parameters() if p.requires_grad]
        # all-linear on 2 layers of hidden 64 (4 heads of 16, 2 KV heads: k, v width 32), MLP 128:
        # r (in + out) per layer: q 4*128, k 4*96, v 4*96, o 4*128, gate/up/down 3 * 4*192 = 4096
        assert sum(p.numel() for p in trainable) == 2 * 4096
        trainer.train()
        state = trainer.backend.policy.model.state_dict()
        base = {
            k.replace("base_model.model.", "").replace(".base_layer", ""): v
            for k, v in state.items()
        }
        frozen = [k for k in start if k in base]
        assert len(frozen) == len(start)
        assert all(torch.equal(start[k], base[k]) for k in frozen)
        lora_b = [v for k, v in state.items() if "lora_B" in k]
        assert lora_b and all(float(v.abs().max()) > 0 for v in lora_b)  # zero at the start
        checkpoint = trainer.backend.learner.checkpoints.latest_model()
        assert (checkpoint / "adapter_config.json").is_file()
        assert not (checkpoint / "model.safetensors").exists()
        assert (checkpoint / "adapter_model.safetensors").stat().st_size < 100_000
        ids = torch.tensor([[11, 12, 13, 14, 15]])
        with torch.no_grad():
            trained_logits = trainer.backend.policy.model(input_ids=ids).logits
        adapters = {k: v.clone() for k, v in state.items() if "lora_" in k}
    finally:
        trainer.close()

    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(tmp_path / "final", dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(final(input_ids=ids).logits, trained_logits, atol=1e-5)

    resumed = _trainer(tokenizer, easy_tasks, tmp_path, max_steps=3)
    try:
        assert resumed.step == 2
        state = resumed.backend.policy.model.state_dict()
        assert all(torch.equal(adapters[k], state[k]) for k in adapters)
    finally:
        resumed.close()


def test_lora_with_vllm_is_refused() -> None:
    with pytest.raises(ConfigError, match="lora_rank runs with backend=transformers"):
        build_config(overrides={"lora_rank": 8, "backend": "vllm"})
