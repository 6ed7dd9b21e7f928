"""Which frames to take from a video: pure index arithmetic, no decoding.

All plans work in frame-index space over the whole video (``num_frames`` frames at ``fps``), as the
authors' code does, and convert to timestamps only at the end (``index / fps``).

- Uniform sampling of N frames: ``round(linspace(0, num_frames - 1, N))`` — the first and the last
  frame are always included.
- Clip split (paper §3, temporal decomposition): ``clamp(floor(duration_s / 10) + 1, 2, 16)`` equal
  index segments, each sampled uniformly with 8 frames.
- Sparse subset for contrastive decoding: ``ceil(N / 3)`` of the N sampled frames, spread uniformly,
  so the sparse branch sees a strict subset of what the full branch sees.
"""

from __future__ import annotations

import math

import numpy as np


def uniform_indices(start: int, stop: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``[start, stop)``, both ends included.

    With fewer frames than ``count`` the indices repeat (a 3-frame clip sampled at 8 gives
    ``[0, 0, 1, 1, 1, 2, 2, 2]``-style repeats) so callers always get ``count`` frames.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if stop <= start:
        raise ValueError(f"empty frame range [{start}, {stop})")
    positions = np.linspace(start, stop - 1, count)
    return [int(index) for index in np.round(positions)]


def clip_count(duration_s: float, seconds_per_clip: float = 10.0, min_clips: int = 2, max_clips: int = 16) -> int:
    """Number of clips: ``clamp(floor(duration_s / seconds_per_clip) + 1, min_clips, max_clips)``."""
    return max(min_clips, min(max_clips, math.floor(duration_s / seconds_per_clip) + 1))


def clip_ranges(num_frames: int, num_clips: int) -> list[tuple[int, int]]:
    """Equal frame-index segments ``[start, stop)`` covering ``range(num_frames)`` in order."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    bounds = [round(clip * num_frames / num_clips) for clip in range(num_clips + 1)]
    return [(bounds[clip], max(bounds[clip + 1], bounds[clip] + 1)) for clip in range(num_clips)]


def sparse_positions(num_sampled: int, divisor: int = 3) -> list[int]:
    """Positions (into the N sampled frames) of the ``ceil(N / divisor)`` sparse frames, spread uniformly."""
    return uniform_indices(0, num_sampled, math.ceil(num_sampled / divisor))
