"""The five-stage environment construction pipeline (offline and LLM backends) and the shipped datasets."""

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
