"""The frames' times as Hugging Face processors read them (``video_metadata``), for frames known only by their span.

A light module (no torch): the vLLM engine's prompts and the HF engine's inputs both use it.
"""

from __future__ import annotations

ASSUMED_FPS = 24.0  # what transformers' processors assume for frames without metadata


def frame_metadata(num_frames: int, duration_s: float | None) -> dict:
    """``video_metadata`` for ``num_frames`` frames spread uniformly over ``duration_s`` seconds, first and last
    included (as :class:`~synpo.video.sampler.SampledVideo` samples them), on a millisecond grid: frame i
    at ``i * duration_s / (num_frames - 1)`` s. The processor then knows the frames' real times (Qwen2.5-VL:
    ``second_per_grid_ts = temporal_patch_size * duration / frames``; Qwen3-VL: each patch's timestamp).
    ``duration_s=None`` (unknown): what transformers assumes without metadata, consecutive frames at 24 fps."""
    if duration_s is None:
        return {"fps": ASSUMED_FPS, "total_num_frames": num_frames, "duration": num_frames / ASSUMED_FPS, "frames_indices": list(range(num_frames))}
    grid = 1000.0  # positions per second
    step = duration_s / (num_frames - 1) if num_frames > 1 else 0.0
    return {
        "fps": grid,
        "total_num_frames": max(num_frames, round(duration_s * grid)),
        "duration": duration_s,
        "frames_indices": [round(index * step * grid) for index in range(num_frames)],
    }
