"""RLlib's own SingleAgentEnvRunner samples FTRL episodes through the token-id wrapper."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="RLlib tests need Ray RLlib: pip install 'ftrl-gym[rllib]'")
torch = pytest.importorskip("torch", reason="the test RLModule needs torch")

import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from ftrl_gym.envs.registration import ENV_IDS
from ftrl_gym.integrations.rllib import TokenIdEnv, make_token_env, register_rllib_envs
from ftrl_gym.integrations.token_codec import ByteCodec, decode_action, encode_action, encode_padded

ENV_ID = "FTRL-MultiHop-v0"
OBS_LEN, ACT_LEN = 256, 512
ENV_CONFIG = {
    "split": "test",
    "max_turns": 3,
    "observation_length": OBS_LEN,
    "action_length": ACT_LEN,
}


class ScriptedTokenModule(TorchRLModule):
    """A tiny torch policy: a linear layer over the observation ids plus fixed logits.

    With ``model_config["call"]`` and ``model_config["answer"]`` it emits the call text while the
    observation is the question and the answer text once it reads a ``<tool_response>`` (strong
    logits, so sampling is deterministic); without them it is a randomly initialised linear policy.
    """

    def setup(self) -> None:
        vocab = int(self.action_space.nvec[0])
        length = len(self.action_space.nvec)
        self.linear = torch.nn.Linear(self.observation_space.shape[0], length * vocab)
        self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
            input_lens=[vocab] * length
        )
        codec = ByteCodec()
        script = self.model_config.get("call")
        self.scripted = script is not None
        if self.scripted:
            call = encode_action(codec, script, length)
            answer = encode_action(codec, self.model_config["answer"], length)
            self.register_buffer(
                "call_logits", 50.0 * torch.nn.functional.one_hot(torch.tensor(call), vocab)
            )
            self.register_buffer(
                "answer_logits", 50.0 * torch.nn.functional.one_hot(torch.tensor(answer), vocab)
            )
            self.register_buffer("marker", torch.tensor(codec.encode("<tool_response>")))

    def _forward(self, batch: dict, **kwargs) -> dict:
        obs = batch[Columns.OBS].float()  # (B, OBS_LEN)
        logits = self.linear(obs / 256.0)  # (B, ACT_LEN * vocab)
        if self.scripted:
            after_call = (batch[Columns.OBS][:, : len(self.marker)] == self.marker).all(
                dim=1
            )  # (B,)
            fixed = torch.where(after_call[:, None, None], self.answer_logits, self.call_logits)
            logits = 0.0 * logits + fixed.reshape(obs.shape[0], -1).float()
        return {Columns.ACTION_DIST_INPUTS: logits}


@pytest.fixture(scope="module")
def local_ray():
    """A local one-CPU Ray, shut down after the module's tests."""
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    register_rllib_envs()
    yield
    ray.shutdown()


def _runner(model_config: dict, **env_config) -> SingleAgentEnvRunner:
    config = (
        PPOConfig()
        .environment(ENV_ID, env_config={**ENV_CONFIG, **env_config})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .rl_module(
            rl_module_spec=RLModuleSpec(module_class=ScriptedTokenModule, model_config=model_config)
        )
    )
    return SingleAgentEnvRunner(config=config)


def _replay(task_index: int, actions: np.ndarray) -> list[float]:
    """Rewards of a plain env stepped with the decoded actions (no RLlib, no wrapper)."""
    env = gym.make(ENV_ID, split="test", max_turns=ENV_CONFIG["max_turns"])
    try:
        env.reset(options={"task_index": int(task_index)})
        return [float(env.step(decode_action(ByteCodec(), row))[1]) for row in actions]
    finally:
        env.close()


def test_every_id_is_registered_with_tune(local_ray):
    from ray.tune.registry import ENV_CREATOR, _global_registry

    assert all(_global_registry.contains(ENV_CREATOR, env_id) for env_id in ENV_IDS)
    env = _global_registry.get(ENV_CREATOR, ENV_ID)(dict(ENV_CONFIG))
    try:
        assert isinstance(env, TokenIdEnv)
        assert env.observation_space == gym.spaces.Box(0, 257, (OBS_LEN,), np.int64)
        assert env.action_space == gym.spaces.MultiDiscrete([258] * ACT_LEN)
        assert env.unwrapped.config.max_turns == 3
    finally:
        env.close()


def test_scripted_module_episodes_score_the_solve_f1_rewards(local_ray):
    env = make_token_env(ENV_ID, {"split": "test"})
    task = env.unwrapped.tasks[0]
    env.close()
    calls = [c for turn in task.solution for c in turn]
    call_text = "".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls)
    runner = _runner({"call": call_text, "answer": f"The weekday is {task.answer}."}, task_index=0)
    try:
        episodes = runner.sample(num_episodes=2, explore=True)
    finally:
        runner.stop()
    assert len(episodes) == 2
    for episode in episodes:
        assert episode.is_done and episode.is_terminated
        # four solving calls in one turn: 2*4/(4+1); then the final answer with nothing left: 1/(1+0)
        assert episode.get_rewards().tolist() == pytest.approx([1.6, 1.0])
        infos = episode.get_infos()
        assert infos[-1]["metrics"]["solve_f1"] == pytest.approx(1.0)
        assert decode_action(ByteCodec(), episode.get_actions()[0]) == call_text
        assert episode.get_rewards().tolist() == pytest.approx(
            _replay(infos[0]["task_index"], episode.get_actions())
        )


def test_random_module_rewards_equal_a_plain_env_replay(local_ray):
    runner = _runner({})
    try:
        episodes = runner.sample(num_episodes=3, explore=True)
    finally:
        runner.stop()
    assert len(episodes) == 3
    for episode in episodes:
        assert episode.is_done
        infos = episode.get_infos()
        rewards = episode.get_rewards().tolist()
        # random bytes parse no call: the episode ends after one turn with a SPEC 3.4 reward
        assert len(rewards) == 1 and rewards[0] in (-0.5, -0.3, 0.0)
        assert rewards == pytest.approx(_replay(infos[0]["task_index"], episode.get_actions()))
        assert infos[-1]["action_text"] == decode_action(ByteCodec(), episode.get_actions()[0])


def test_wrapper_encodes_and_decodes_with_the_configured_lengths():
    env = make_token_env(
        ENV_ID, {"split": "test", "observation_length": 8, "action_length": 4, "task_index": 0}
    )
    try:
        obs, info = env.reset()
        question = env.unwrapped.tasks[0].messages[0]["content"]
        assert obs.tolist() == list(question.encode()[:8])
        assert info["text_observation"] == question
        obs, reward, terminated, truncated, info = env.step(encode_action(ByteCodec(), "hello", 4))
        assert info["action_text"] == "hel"
        assert (reward, terminated, truncated) == (0.0, True, False)
    finally:
        env.close()
    short = encode_padded(ByteCodec(), "ab", 4)
    assert short.tolist() == [97, 98, 256, 256]


def test_token_env_passes_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    env = make_token_env(ENV_ID, {"split": "test", "observation_length": 64, "action_length": 16})
    try:
        check_env(env, skip_render_check=True)
        assert env.observation_space.dtype == np.int64
    finally:
        env.close()
    floats = make_token_env(
        ENV_ID, {"split": "test", "observation_dtype": "float32", "task_index": 1}
    )
    try:
        obs, info = floats.reset()
        assert obs.dtype == np.float32 and info["task_index"] == 1
    finally:
        floats.close()
