"""Stage 1, CPU tasks: read each video's bytes, probe it, sample the whole-video frames, the sparse
contrastive-decoding subset and the clip split's frames in one decode pass.

A video that cannot be read (missing object, storage error) or decoded (zero bytes, truncated,
not a video, no video stream, ...) becomes a failure row naming the file and the problem.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from synpo.pairgen.rows import DECODED, failed, pack_array, to_table
from synpo.storage import Storage, StorageError
from synpo.video.errors import VideoError
from synpo.video.sampler import VideoSamplingConfig, sample_video


def decode_row(row: dict, video: VideoSamplingConfig, storage: Storage) -> dict:
    """One input row -> a :data:`~synpo.pairgen.rows.DECODED` row (or a failure row)."""
    start, started_at = time.perf_counter(), time.time()
    try:
        sampled = sample_video(storage.local_path_or_bytes(row["video"]), row["video"], video, with_clips=True)
    except (VideoError, StorageError, FileNotFoundError) as error:
        times = {"decode_s": time.perf_counter() - start, "decode_start_t": started_at, "decode_end_t": time.time()}
        return failed({**row, **times}, "decode", f"{type(error).__name__}: {error}")
    return {
        **row,
        "duration_s": sampled.info.duration_s,
        "frames": pack_array(sampled.frames),
        "sparse_frames": pack_array(sampled.sparse_frames),
        "clip_frames": pack_array(np.stack([clip.frames for clip in sampled.clips])),
        "decode_s": time.perf_counter() - start,
        "decode_start_t": started_at,
        "decode_end_t": time.time(),
    }


class DecodeStage:
    """``Table[INPUT] -> Table[DECODED]``."""

    def __init__(self, video: VideoSamplingConfig, storage: Storage) -> None:
        self.video = video
        self.storage = storage

    def __call__(self, batch: pa.Table) -> pa.Table:
        return to_table([decode_row(row, self.video, self.storage) for row in batch.to_pylist()], DECODED)
