"""Error and duplicate call charges: an option beside SPEC 3 (0 by default), by hand and through gym.make."""

from __future__ import annotations

import gymnasium as gym
import pytest
from env_helpers import FIXTURE, call_text

from ftrl_gym.errors import EnvConfigError
from ftrl_gym.reward import call_charge, call_key

CAPITAL_WEATHER_TASK = 1  # fixture: capital of Norway (Oslo), then its weather (Snow, -3)


def test_call_charge_by_hand() -> None:
    a, b = call_key("f", {"x": 1, "y": 2}), call_key("f", {"y": 2, "x": 1})
    assert a == b  # argument order does not make a new call
    c = call_key("g", {"x": 1})
    # Turn [a, c, a] after an episode that already made c: a is new, c repeats an earlier turn's call,
    # the second a repeats this turn's; c failed. 0.1 * 1 + 0.05 * 2 = 0.2.
    assert call_charge([a, c, a], [False, True, False], {c}, 0.1, 0.05) == pytest.approx(0.2)
    assert call_charge([a, c, a], [False, True, False], {c}, 0.0, 0.0) == 0.0
    assert call_charge([], [], {a}, 0.1, 0.05) == 0.0


def _env(**kwargs):
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE), **kwargs)
    env.reset(options={"task_index": CAPITAL_WEATHER_TASK})
    return env


CAPITAL = {"name": "get_capital", "arguments": {"country": "Norway"}}
BAD = {"name": "get_capital", "arguments": {"nation": "Norway"}}
WEATHER = {"name": "get_weather", "arguments": {"city": "Oslo"}}


def test_charges_come_off_the_turn_rewards() -> None:
    env = _env(error_call_charge=0.1, duplicate_call_charge=0.05)
    try:
        # p=2, q=1: 2*1/3, minus one failed call (bad argument name): 2/3 - 0.1.
        _, reward, *_ = env.step(call_text([CAPITAL, BAD]))
        assert reward == pytest.approx(2 / 3 - 0.1)
        # The capital again (a duplicate, solves nothing) and the weather (solves): 2*1/3 - 0.05.
        _, reward, *_ = env.step(call_text([CAPITAL, WEATHER]))
        assert reward == pytest.approx(2 / 3 - 0.05)
        # The failed call again: it failed and repeats an earlier call, 0 - 0.1 - 0.05.
        _, reward, *_ = env.step(call_text([BAD]))
        assert reward == pytest.approx(-0.15)
    finally:
        env.close()


def test_without_charges_the_reward_is_spec_3() -> None:
    env = _env()
    try:
        rewards = [env.step(call_text(turn))[1] for turn in ([CAPITAL, BAD], [CAPITAL, WEATHER], [BAD])]
        assert rewards == pytest.approx([2 / 3, 2 / 3, 0.0])
    finally:
        env.close()


@pytest.mark.parametrize("kwarg", ["error_call_charge", "duplicate_call_charge"])
@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_bad_charges_are_refused(kwarg: str, value: object) -> None:
    with pytest.raises(EnvConfigError, match=f"{kwarg} must be a finite number >= 0"):
        gym.make("FTRL-Custom-v0", tasks=str(FIXTURE), **{kwarg: value})
