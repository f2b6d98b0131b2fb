"""The five-stage environment construction pipeline (offline and LLM backends) and the shipped datasets.

Stages: :mod:`.scenes` → :mod:`.documents` → :mod:`.integration` → :mod:`.scaling` →
:mod:`.deployment` + :mod:`.validation`; :mod:`.pipeline` runs them, :mod:`.llm_backend` runs them
through a model, :mod:`.datasets` serves ``envs_generated/``. See ``docs/generation.md``.
"""

from __future__ import annotations

from ftrl_gym.generation.datasets import check_manifest, dataset_path
from ftrl_gym.generation.pipeline import GenerationConfig, Summary, generate
from ftrl_gym.generation.scaling import ScalingConfig

__all__ = [
    "GenerationConfig",
    "ScalingConfig",
    "Summary",
    "check_manifest",
    "dataset_path",
    "generate",
]
