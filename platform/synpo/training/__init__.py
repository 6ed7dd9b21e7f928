"""Preference training: batching, response log-probs, the LoRA training step and its diagnostics."""
