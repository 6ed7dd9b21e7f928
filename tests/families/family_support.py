"""Constants shared by the per-family tests (the stock inputs they compare with: synpo.testing.processor_inputs)."""

from __future__ import annotations

FAMILIES_UNDER_TEST = ("qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video")
INSTRUCTION = "Describe the video in detail."
