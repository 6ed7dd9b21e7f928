"""Evaluation: caption quality of a model on an eval set (text metrics, toy-world fact accuracy)."""
