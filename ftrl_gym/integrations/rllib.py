"""Ray RLlib: every FTRL id as an RLlib env with token-id observations and actions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from ftrl_gym.envs.registration import ENV_IDS
from ftrl_gym.envs.rendering import render_messages
from ftrl_gym.integrations.token_codec import (
    ByteCodec,
    HFCodec,
    TokenCodec,
    decode_action,
    encode_padded,
)

WRAPPER_KEYS: tuple[str, ...] = (
    "observation_length",
    "action_length",
    "tokenizer",
    "history",
    "task_index",
    "observation_dtype",
)
"""``env_config`` keys read by :class:`TokenIdEnv`; every other key goes to ``gym.make``."""


class TokenIdEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A tool-use env whose observations and actions are fixed-length token-id arrays.

    **Observation**: ``Box(0, vocab_size - 1, (observation_length,), observation_dtype)``: the wrapped env's text
    observation (or, with ``history=True``, the whole conversation so far) encoded, cut to its
    first ``observation_length`` ids and padded with the codec's ``pad_id``.

    **Action**: ``MultiDiscrete([vocab_size] * action_length)``: a response's token ids; decoding stops
    at the first ``stop_id`` and drops ``pad_id``. The decoded text is stepped unchanged, so rewards are
    the wrapped env's Solve-F1 rewards.

    **info**: the wrapped env's info plus ``text_observation`` (the text before encoding) and, after
    ``step``, ``action_text`` (the decoded response).
    """

    def __init__(
        self,
        env: gym.Env,
        tokenizer: TokenCodec | Any = None,
        observation_length: int = 512,
        action_length: int = 128,
        history: bool = False,
        task_index: int | None = None,
        observation_dtype: str = "int64",
    ) -> None:
        """Wrap a ``ToolUseEnv``.

        Args:
            env: An FTRL env (possibly wrapped).
            tokenizer: None for bytes (:class:`ByteCodec`), a codec, a ``transformers`` tokenizer or a
                local tokenizer folder (loaded offline).
            observation_length: Token ids per observation.
            action_length: Token ids per action.
            history: Encode the whole conversation instead of the newest text only.
            task_index: Play this task in every episode (RLlib resets without ``options``); None
                draws tasks with the env's ``np_random``. A ``reset`` option still wins.
            observation_dtype: ``"int64"`` (for embedding layers), or ``"float32"`` for models that feed
                observations straight into linear layers, such as RLlib's default PPO encoder.

        Raises:
            ValueError: A length is not positive.
        """
        gym.utils.RecordConstructorArgs.__init__(
            self,
            tokenizer=tokenizer,
            observation_length=observation_length,
            action_length=action_length,
            history=history,
            task_index=task_index,
            observation_dtype=observation_dtype,
        )
        super().__init__(env)
        if observation_length < 1 or action_length < 1:
            raise ValueError(
                f"observation_length and action_length must be >= 1, got {observation_length} and {action_length}"
            )
        self.codec = make_codec(tokenizer)
        self.observation_length = observation_length
        self.action_length = action_length
        self.history = history
        self.task_index = task_index
        high = self.codec.vocab_size - 1
        self.observation_space = gym.spaces.Box(
            0, high, (observation_length,), np.dtype(observation_dtype)
        )
        self.action_space = gym.spaces.MultiDiscrete(
            np.full(action_length, self.codec.vocab_size, np.int64)
        )

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the wrapped env and encode its first observation."""
        if self.task_index is not None:
            kwargs["options"] = {"task_index": self.task_index, **(kwargs.get("options") or {})}
        text, info = self.env.reset(**kwargs)
        return self._encode(text, info), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Decode the action, step the wrapped env with the text, encode the observation.

        Args:
            action: Token ids (any int sequence of length ``action_length``), or response text.

        Returns:
            The wrapped env's step with the observation encoded.
        """
        response = action if isinstance(action, str) else decode_action(self.codec, action)
        text, reward, terminated, truncated, info = self.env.step(response)
        info["action_text"] = response
        return self._encode(text, info), reward, terminated, truncated, info

    def _encode(self, text: str, info: dict[str, Any]) -> np.ndarray:
        info["text_observation"] = text
        source = render_messages(info["messages"]) if self.history else text
        return encode_padded(self.codec, source, self.observation_length).astype(
            self.observation_space.dtype
        )


def make_codec(tokenizer: TokenCodec | Any = None) -> TokenCodec:
    """Resolve the ``tokenizer`` argument of :class:`TokenIdEnv`.

    Args:
        tokenizer: None (bytes), a codec, a ``transformers`` tokenizer, or a local tokenizer folder.

    Returns:
        A codec.
    """
    if tokenizer is None or tokenizer == "bytes":
        return ByteCodec()
    if isinstance(tokenizer, str) or hasattr(tokenizer, "apply_chat_template"):
        return HFCodec(tokenizer)
    return tokenizer


def make_token_env(env_id: str, env_config: Mapping[str, Any] | None = None) -> TokenIdEnv:
    """Build an FTRL id wrapped in :class:`TokenIdEnv` from an RLlib ``env_config``.

    Args:
        env_id: A registered FTRL id.
        env_config: :data:`WRAPPER_KEYS` for the wrapper; any other key is a ``gym.make`` keyword
            (``max_turns``, ``split``, ``reward``, ``tasks`` ...). RLlib's own ``num_envs`` is ignored.

    Returns:
        The wrapped env.
    """
    config = dict(env_config or {})
    config.pop("num_envs", None)
    wrapper_kwargs = {key: config.pop(key) for key in WRAPPER_KEYS if key in config}
    return TokenIdEnv(gym.make(env_id, **config), **wrapper_kwargs)


class _Creator:
    """A picklable ``env_creator`` for one id (Ray ships creators to worker processes)."""

    def __init__(self, env_id: str) -> None:
        self.env_id = env_id

    def __call__(self, env_config: Mapping[str, Any] | None = None) -> TokenIdEnv:
        return make_token_env(self.env_id, env_config)


def register_rllib_envs(env_ids: Iterable[str] = ENV_IDS) -> list[str]:
    """Register FTRL ids with ``ray.tune.registry.register_env`` under their own names.

    After this, ``AlgorithmConfig().environment("FTRL-MultiHop-v0", env_config={...})`` builds the
    id wrapped in :class:`TokenIdEnv` (see :func:`make_token_env` for ``env_config``).

    Args:
        env_ids: The ids to register (default: every FTRL id).

    Returns:
        The registered ids.

    Raises:
        ImportError: Ray RLlib is not installed (the message says how to install it).
    """
    try:
        from ray.tune.registry import register_env
    except ImportError as exc:
        raise ImportError(
            "the RLlib adapter needs Ray RLlib: pip install 'ftrl-gym[rllib]'"
        ) from exc
    import ftrl_gym  # noqa: F401  (registers the Gymnasium ids)

    registered = []
    for env_id in env_ids:
        register_env(env_id, _Creator(env_id))
        registered.append(env_id)
    return registered
