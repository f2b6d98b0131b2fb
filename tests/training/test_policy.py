"""The learner's shared-prompt forward equals the plain forward: same logprobs, same gradients."""

from __future__ import annotations

import torch
from training_helpers import tiny_model

from agents.training.policy import Policy, make_batch


def _gradients(policy: Policy) -> torch.Tensor:
    grads = [p.grad.flatten() for p in policy.model.parameters() if p.grad is not None]
    return torch.cat(grads)


def test_shared_prompt_forward_matches_full_sequences(tokenizer) -> None:
    policy = Policy(tiny_model(tokenizer), tokenizer)
    prompt = [11, 12, 13, 14, 15, 16]
    responses = [[21, 22, 23], [31], [41, 42]]
    weights = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, 0.0], [-1.0, 1.0, 0.0]])

    batch = make_batch(
        [prompt + r for r in responses], [[0] * 6 + [1] * len(r) for r in responses], 2
    )
    full, full_entropy = policy.forward(batch, with_entropy=True)
    start = len(prompt) - 1
    plain = full[:, start : start + 3]  # (3, 3) response positions
    (plain * weights).sum().backward()
    plain_grad = _gradients(policy).clone()
    policy.model.zero_grad()

    shared, entropy, mask = policy.forward_shared_prompt(prompt, responses, with_entropy=True)
    (shared * weights).sum().backward()
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert torch.allclose(shared, plain * mask, atol=1e-5)
    assert torch.allclose(entropy, full_entropy[:, start : start + 3] * mask, atol=1e-4)
    assert torch.allclose(_gradients(policy), plain_grad, atol=1e-5)


def test_only_responses_to_one_prompt_share_it() -> None:
    from agents.training.samples import Sample
    from agents.training.trainer import shared_prompt_length

    def turn(ids: list[int], mask: list[int]) -> Sample:
        return Sample(ids, mask, [0.0] * len(ids), "g", 0.0)

    a, b = turn([1, 2, 3, 4, 5], [0, 0, 0, 1, 1]), turn([1, 2, 3, 9], [0, 0, 0, 1])
    assert shared_prompt_length([a, b]) == 3
    assert shared_prompt_length([a, turn([1, 7, 3, 9], [0, 0, 0, 1])]) == 0  # other prompt
    assert shared_prompt_length([turn([1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 0, 1])]) == 0  # episode
