"""Ray scale-out of RL training: rollout worker actors, data-parallel learner actors and a driver."""
