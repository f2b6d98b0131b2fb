"""Training tool-use policies with GRPO and Reinforce++ on ftrl-gym environments."""
