"""The learner's shared-prompt forward equals the plain forward: same logprobs, same gradients."""

from __future__ import annotations

import pytest
import torch
from training_helpers import tiny_model

from ftrl_gym.agents.training.policy import Policy, make_batch


def _gradients(policy: Policy) -> torch.Tensor:
    grads = [p.grad.flatten() for p in policy.model.parameters() if p.grad is not None]
    return torch.cat(grads)


@pytest.mark.parametrize(("checkpointing", "chunk"), [(False, 256), (True, 256), (True, 2)])
def test_shared_prompt_forward_matches_full_sequences(
    tokenizer, monkeypatch: pytest.MonkeyPatch, checkpointing: bool, chunk: int
) -> None:
    """Also with whole layers recomputed in the backward pass and logits scored 2 rows at a time."""
    from ftrl_gym.agents.training import policy as policy_module

    monkeypatch.setattr(policy_module, "LOGIT_CHUNK", chunk)
    policy = Policy(tiny_model(tokenizer), tokenizer)
    if checkpointing:
        policy.checkpoint_activations()
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


def test_packed_responses_see_the_prompt_and_their_own_past_only() -> None:
    from ftrl_gym.agents.training.policy import pack_responses

    ids, positions, allowed, targets = pack_responses([5, 6, 7], [[8, 9], [10]])
    assert ids == [5, 6, 7, 8, 7]  # prompt[:-1], then [7] + [8] and [7] + []
    assert positions == [0, 1, 2, 3, 2]
    assert targets == [8, 9, 10]
    assert allowed.int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],  # response 1 predicts 8 from the prompt
        [1, 1, 1, 1, 0],  # and 9 from the prompt and 8
        [1, 1, 0, 0, 1],  # response 2 never sees response 1
    ]


def test_only_responses_to_one_prompt_share_it() -> None:
    from ftrl_gym.agents.training.samples import Sample
    from ftrl_gym.agents.training.update import shared_prompt_length

    def turn(ids: list[int], mask: list[int]) -> Sample:
        return Sample(ids, mask, [0.0] * len(ids), "g", 0.0)

    a, b = turn([1, 2, 3, 4, 5], [0, 0, 0, 1, 1]), turn([1, 2, 3, 9], [0, 0, 0, 1])
    assert shared_prompt_length([a, b]) == 3
    assert shared_prompt_length([a, turn([1, 7, 3, 9], [0, 0, 0, 1])]) == 0  # other prompt
    assert shared_prompt_length([turn([1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 0, 1])]) == 0  # episode


def test_policy_scores_the_tempered_distribution(tokenizer) -> None:
    """At T = 0.5 the learner's logprobs are those of softmax(logits / 0.5), from either forward."""
    policy = Policy(tiny_model(tokenizer), tokenizer, temperature=0.5)
    prompt, response = [11, 12, 13, 14], [21, 22, 23]
    with torch.no_grad():
        logits = policy.model(torch.tensor([prompt + response])).logits[0, 3:6]  # (3, V)
        expected = torch.log_softmax(logits / 0.5, dim=-1).gather(-1, torch.tensor([response]).T)
        batch = make_batch([prompt + response], [[0] * 4 + [1] * 3], 2)
        full, _ = policy.forward(batch)
        shared, _, _ = policy.forward_shared_prompt(prompt, [response])
    assert torch.allclose(full[0, 3:6], expected[:, 0], atol=1e-5)
    assert torch.allclose(shared[0], expected[:, 0], atol=1e-5)
    raw = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor([response]).T)
    assert not torch.allclose(raw, expected, atol=1e-2)  # the temperature did change them


def test_policy_rejects_a_temperature_of_zero(tokenizer) -> None:
    with pytest.raises(ValueError, match="temperature must be > 0; got 0"):
        Policy(tiny_model(tokenizer), tokenizer, temperature=0)
