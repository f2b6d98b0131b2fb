"""Adapters that plug the FTRL environments and the Solve-F1 reward into RLlib, TRL and verl.

Each adapter lives in its own module and imports its library only when used, so ``import ftrl_gym``
never needs Ray, TRL or verl: ``ftrl_gym.integrations.rllib``, ``ftrl_gym.integrations.trl`` and
``ftrl_gym.integrations.verl``.
"""
