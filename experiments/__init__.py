"""Experiments: run configs, the memespread CLI, run and sweep runners."""
