"""The video VLM families the toy model builder knows (a light module: the CLI reads it without importing torch)."""

from __future__ import annotations

from typing import Literal

Family = Literal["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video"]
FAMILIES: tuple[str, ...] = ("qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video")
DEFAULT_FAMILY = "qwen2-vl"
