"""Video I/O: probe, plan and decode frames with PyAV (see :mod:`synpo.video.sampler`)."""

from synpo.video.decode import VideoInfo, decode_at, probe
from synpo.video.errors import VideoError
from synpo.video.sampler import Clip, SampledVideo, VideoSamplingConfig, sample_video

__all__ = [
    "Clip",
    "SampledVideo",
    "VideoError",
    "VideoInfo",
    "VideoSamplingConfig",
    "decode_at",
    "probe",
    "sample_video",
]
