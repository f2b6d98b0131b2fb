"""``update.adamw``: the fused step where torch has one, the same update as torch's default."""

from __future__ import annotations

import torch
from ftrl_gym.agents.training.update import adamw


def _params(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((7, 5), (5,))]


def test_cpu_float_parameters_take_the_fused_step_with_the_default_update() -> None:
    fused, reference = _params(0), _params(0)
    fused_optimizer = adamw(fused, lr=0.1, weight_decay=0.01)
    reference_optimizer = torch.optim.AdamW(reference, lr=0.1, weight_decay=0.01)
    assert fused_optimizer.defaults["fused"] is True
    assert not reference_optimizer.defaults["fused"]
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        for a, b in zip(fused, reference):
            grad = torch.randn(a.shape, generator=generator)
            a.grad, b.grad = grad.clone(), grad.clone()
        fused_optimizer.step()
        reference_optimizer.step()
    for a, b, start in zip(fused, reference, _params(0)):
        assert (a - start).abs().max() > 0.1  # three steps of lr 0.1 moved every weight
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_parameters_without_a_fused_kernel_keep_torchs_default() -> None:
    meta = [torch.nn.Parameter(torch.empty(3, device="meta"))]
    assert adamw(meta, lr=0.1, weight_decay=0.0).defaults["fused"] is None
