"""The video VLM families the toy model builder knows (a light module: the CLI reads it without importing torch)."""

from __future__ import annotations

from typing import Literal

Family = Literal["qwen2-vl", "qwen2.5-vl"]
FAMILIES: tuple[str, ...] = ("qwen2-vl", "qwen2.5-vl")
DEFAULT_FAMILY = "qwen2-vl"
