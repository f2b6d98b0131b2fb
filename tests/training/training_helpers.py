"""Helpers for training tests: tiny random Llama models with SmolLM2's vocabulary, the easy answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

EASY_ANSWER = "w"
"""The easy task's answer: a reply containing the letter ``w`` scores 1 / (1 + 1) = 0.5 (SPEC 3.4)."""

ECHO_TOOL = {
    "type": "function",
    "function": {
        "name": "echo",
        "description": "Echo.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
}
"""The one tool of the easy task files: returns its ``text``."""


def write_easy_tasks(path: Path, count: int) -> Path:
    """Write ``count`` train tasks ``Say it i.`` (one ``echo`` tool, answer ``EASY_ANSWER``) to
    ``path``, one JSON record a line; returns ``path``."""
    record = {
        "tools": [ECHO_TOOL],
        "codes": {"echo": "def echo(text):\n    return text\n"},
        "unsolved_set": {"echo": [EASY_ANSWER]},
        "answer": EASY_ANSWER,
        "split": "train",
        "scenario": "single_hop",
    }
    path.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"Say it {i}."}], **record}) + "\n"
            for i in range(count)
        )
    )
    return path


FOCUS_LETTERS = "abcdefghijklmnow"
"""Letters whose single-character tokens a focused tiny model samples almost exclusively."""


def tiny_model(
    tokenizer,
    seed: int = 0,
    layers: int = 2,
    focused: bool = False,
    hidden_size: int = 64,
    heads: int = 4,
    focus_embedding: float = 1.0,
):
    """A randomly initialised 2-layer Llama with SmolLM2's vocabulary (fast on one CPU core).

    With ``focused``, the output rows of the ``FOCUS_LETTERS`` tokens share a large weight on a
    hidden direction that every input embedding also carries, so at initialisation the model samples
    those 16 letters (nearly uniformly) instead of spreading over 49k tokens: a reward for one letter
    then has variance within a group of a few responses. ``focus_embedding`` is that direction's
    value in every input embedding: at 1.0 it is small beside what a few AdamW steps at lr 5e-3 add
    to the residual stream, so training often washes the focus out (the entropy jumps to about 10.8
    nats, the log of the vocabulary, and the reward falls back to chance); at 4.0 it seldom does.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=not focused,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    if focused:
        ids = [tokenizer.convert_tokens_to_ids(letter) for letter in FOCUS_LETTERS]
        with torch.no_grad():
            model.get_input_embeddings().weight[:, 0] = focus_embedding
            model.lm_head.weight[ids, 0] = 3.0
    return model


class ScriptedGenerator:
    """A generation back end that answers every prompt from a script, turn by turn.

    ``reply(prompt_text, turn)`` gives the text of a response; it is tokenised and ended with the
    end-of-turn id, with logprob -1.0 per token. ``n`` responses to one prompt come from
    ``reply(prompt_text, k)`` for ``k`` in ``0..n-1`` (scheme a), and an episode's turns from
    ``reply(prompt_text, number of assistant turns so far)`` with ``n = 1`` (scheme b), so a test
    knows every reward in advance.
    """

    def __init__(self, tokenizer, reply) -> None:
        self.tokenizer = tokenizer
        self.reply = reply
        self.prompts = 0

    def generate(self, prompts, settings, seeds=None):
        from ftrl_gym.agents.training.generation import Completion

        out = []
        for prompt in prompts:
            self.prompts += 1
            text = self.tokenizer.decode(list(prompt))
            turns = text.count("<|im_start|>assistant") - 1
            keys = range(settings.n) if settings.n > 1 else [turns]
            group = []
            for key in keys:
                ids = self.tokenizer.encode(self.reply(text, key), add_special_tokens=False)
                ids.append(self.tokenizer.eos_token_id)
                group.append(Completion(ids, [-1.0] * len(ids), True))
            out.append(group)
        return out

    def sync_weights(self, model) -> None:
        """Nothing to sync: the script does not change."""

    def close(self) -> None:
        """Nothing to close."""


def saved_activation_bytes(model: Any, forward: Callable[[], object]) -> int:
    """Bytes of the distinct tensors ``forward()`` keeps for its backward pass, ``model``'s weights
    excluded (a saved-tensors hook records each storage once)."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        forward()
    return sum(saved.values())
