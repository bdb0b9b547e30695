"""Tiny checkpoints, tokenizers and synthetic data made locally: for tests and offline demos."""
