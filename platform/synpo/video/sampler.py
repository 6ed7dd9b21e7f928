"""Sample what pair generation and captioning need from one video, in a single decode pass.

A :class:`SampledVideo` carries:

- ``frames``: ``num_frames`` frames uniform over the whole video (first and last included),
- ``sparse_positions``: the ``ceil(N / 3)`` of them the sparse contrastive-decoding branch sees,
- ``clips``: the paper's clip split, each clip with ``frames_per_clip`` frames (only when asked).

Frames are ``uint8`` RGB arrays ``[N, H, W, 3]`` whose longer side is at most ``max_side``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pydantic

from synpo.config.base import StrictModel
from synpo.video.decode import DecodeStats, VideoInfo, VideoSource, decode_at, probe
from synpo.video.plan import clip_count, clip_ranges, sparse_positions, uniform_indices


class VideoSamplingConfig(StrictModel):
    """How frames are taken from each video (paper §3 and App. C)."""

    num_frames: int = pydantic.Field(default=16, ge=1, le=256, description="frames sampled uniformly over the whole video")
    max_side: int = pydantic.Field(default=448, ge=16, le=4096, description="longer side of each frame after resizing, in pixels")
    sparse_divisor: int = pydantic.Field(
        default=3, ge=1, description="the sparse contrastive-decoding branch sees ceil(num_frames / sparse_divisor) frames"
    )
    frames_per_clip: int = pydantic.Field(default=8, ge=1, le=64, description="frames sampled uniformly in each clip")
    seconds_per_clip: float = pydantic.Field(
        default=10.0, gt=0, description="clip count = clamp(floor(duration_s / seconds_per_clip) + 1, min_clips, max_clips)"
    )
    min_clips: int = pydantic.Field(default=2, ge=1, description="fewest clips a video is split into")
    max_clips: int = pydantic.Field(default=16, ge=1, description="most clips a video is split into")

    @pydantic.model_validator(mode="after")
    def _clip_bounds(self) -> VideoSamplingConfig:
        if self.min_clips > self.max_clips:
            raise ValueError(f"min_clips ({self.min_clips}) must not exceed max_clips ({self.max_clips})")
        return self


@dataclass
class Clip:
    """One temporal segment of the clip split."""

    index: int
    start_s: float
    end_s: float
    frames: np.ndarray  # [frames_per_clip, H, W, 3] uint8
    timestamps_s: list[float]


@dataclass
class SampledVideo:
    info: VideoInfo
    frames: np.ndarray  # [num_frames, H, W, 3] uint8
    timestamps_s: list[float]
    sparse_positions: list[int]
    clips: list[Clip] = field(default_factory=list)
    stats: DecodeStats = field(default_factory=DecodeStats)

    def processor_metadata(self) -> dict:
        """The sampled frames' place in the source, as Hugging Face processors read it (``video_metadata``).

        With it a processor knows the frames' real times: Qwen2.5-VL's ``second_per_grid_ts`` is
        ``temporal_patch_size / sampled_fps`` with ``sampled_fps = len(frames_indices) / total_num_frames * fps``
        (= frames / duration for our uniform sampling), Qwen3-VL's timestamps are ``frames_indices / fps``.
        Without it a processor assumes a frame rate (24 fps in transformers) that has nothing to do with the video.
        """
        fps = self.info.fps
        total = self.info.num_frames or max(1, round(self.info.duration_s * fps))
        return {
            "total_num_frames": total,
            "fps": fps,
            "duration": self.info.duration_s,
            "width": self.info.width,
            "height": self.info.height,
            "frames_indices": [min(total - 1, round(time_s * fps)) for time_s in self.timestamps_s],
        }

    @property
    def sparse_frames(self) -> np.ndarray:
        """``[ceil(N / divisor), H, W, 3]``: the frames the sparse CD branch sees (a subset of ``frames``)."""
        return self.frames[self.sparse_positions]


def sample_video(
    source: VideoSource, uri: str, config: VideoSamplingConfig, with_clips: bool = False, info: VideoInfo | None = None
) -> SampledVideo:
    """Probe ``source`` (unless the caller has: ``info``) and decode the whole-video frames (and the clips' frames) in one pass."""
    info = info or probe(source, uri)
    whole_indices = uniform_indices(0, info.num_frames, config.num_frames)
    clip_plan: list[tuple[int, int, list[int]]] = []
    if with_clips:
        count = clip_count(info.duration_s, config.seconds_per_clip, config.min_clips, config.max_clips)
        for start, stop in clip_ranges(info.num_frames, count):
            clip_plan.append((start, stop, uniform_indices(start, stop, config.frames_per_clip)))
    all_indices = whole_indices + [index for _, _, indices in clip_plan for index in indices]
    targets_s = [index / info.fps for index in all_indices]
    _, frames, times, stats = decode_at(source, uri, targets_s, max_side=config.max_side)
    count_whole = len(whole_indices)
    clips: list[Clip] = []
    offset = count_whole
    for clip_index, (start, stop, indices) in enumerate(clip_plan):
        clips.append(
            Clip(
                index=clip_index,
                start_s=start / info.fps,
                end_s=stop / info.fps,
                frames=frames[offset : offset + len(indices)],
                timestamps_s=times[offset : offset + len(indices)],
            )
        )
        offset += len(indices)
    return SampledVideo(
        info=info,
        frames=frames[:count_whole],
        timestamps_s=times[:count_whole],
        sparse_positions=sparse_positions(count_whole, config.sparse_divisor),
        clips=clips,
        stats=stats,
    )
