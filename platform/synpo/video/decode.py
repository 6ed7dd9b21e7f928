"""PyAV decoding: open and probe a video, and decode the frames at chosen timestamps by seeking.

:func:`decode_at` visits sorted target times. For each target it either keeps decoding forward (the
target is close ahead, inside the current group of pictures) or seeks to the keyframe before it and
decodes from there. The frame returned for a target is the first frame whose timestamp is at or
after ``target - half a frame``, so the result is the same whether the sampler seeks or not (a test
holds it to a full decode); only the work differs. With keyframes every couple of seconds — what
encoders and streaming platforms produce — sampling 16 frames from a minute of video decodes a
fraction of its frames (``bench/video_sampling.py``).

Every problem — missing/empty/truncated file, not a video container, no video stream, zero
duration, a codec with no decoder — raises :class:`~synpo.video.errors.VideoError`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from synpo.video.errors import VideoError

VideoSource = bytes | str | Path
"""Raw container bytes, or a local file path."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reports about the first video stream."""

    uri: str
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    num_frames: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@contextmanager
def open_video(source: VideoSource, uri: str) -> Iterator[av.container.InputContainer]:
    """Open ``source`` with PyAV, turning every failure into a :class:`VideoError` naming ``uri``."""
    if isinstance(source, bytes | bytearray):
        if len(source) == 0:
            raise VideoError(uri, "the file is empty (0 bytes)")
        handle: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise VideoError(uri, "no such file")
        if path.stat().st_size == 0:
            raise VideoError(uri, "the file is empty (0 bytes)")
        handle = str(path)
    try:
        container = av.open(handle, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise VideoError(uri, f"not a readable video container ({_describe(error)})") from None
    try:
        yield container
    finally:
        container.close()


def _describe(error: av.error.FFmpegError) -> str:
    return getattr(error, "strerror", None) or str(error)


def _video_stream(container: av.container.InputContainer, uri: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        raise VideoError(uri, f"no video stream (streams found: {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(uri, "unreadable codec: FFmpeg has no decoder for this video stream's codec")
    return stream


def _probe_stream(container: av.container.InputContainer, uri: str) -> tuple[av.video.stream.VideoStream, VideoInfo]:
    stream = _video_stream(container, uri)
    context = stream.codec_context
    if not context.width or not context.height:
        raise VideoError(uri, f"the video stream has no frame size ({context.name}); the codec is unreadable")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    else:
        duration_s = 0.0
    num_frames = stream.frames or round(duration_s * fps)
    if duration_s <= 0 or num_frames <= 0 or fps <= 0:
        raise VideoError(uri, f"zero duration: {num_frames} frames over {duration_s:.3f} s at {fps:.2f} fps")
    info = VideoInfo(
        uri=uri,
        duration_s=duration_s,
        fps=fps,
        width=context.width,
        height=context.height,
        codec=context.name,
        num_frames=num_frames,
    )
    return stream, info


def probe(source: VideoSource, uri: str) -> VideoInfo:
    """Duration, fps, size, codec and frame count of the first video stream of ``source``."""
    with open_video(source, uri) as container:
        return _probe_stream(container, uri)[1]


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` shrunk (never grown) so the longer side is at most ``max_side``; even numbers."""
    if not max_side or max(width, height) <= max_side:
        return width - width % 2 or width, height - height % 2 or height
    scale = max_side / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


@dataclass
class DecodeStats:
    """Work done by one :func:`decode_at` call (for benchmarks and tests)."""

    frames_decoded: int = 0
    seeks: int = 0


class _Cursor:
    """Decodes forward from wherever the last seek put the demuxer, remembering what it saw."""

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, uri: str):
        self.container, self.stream, self.uri = container, stream, uri
        self.frames: Iterator[av.VideoFrame] | None = None
        self.last_time_s: float | None = None
        self.last_keyframe_s: float | None = None
        self.max_gop_s: float = 0.0
        self.stats = DecodeStats()

    def seek(self, time_s: float) -> None:
        offset = int(Fraction(time_s) / self.stream.time_base) if self.stream.time_base else 0
        try:
            self.container.seek(max(offset, 0), stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as error:
            raise VideoError(self.uri, f"seeking to {time_s:.2f} s failed ({_describe(error)})") from None
        self.frames = None
        self.last_time_s = None
        self.stats.seeks += 1

    def next_frame(self) -> av.VideoFrame | None:
        if self.frames is None:
            self.frames = self.container.decode(self.stream)
        try:
            frame = next(self.frames)
        except StopIteration:
            return None
        except av.error.FFmpegError as error:
            raise VideoError(self.uri, f"decoding failed after {self.last_time_s or 0:.2f} s ({_describe(error)})") from None
        if frame.time is None:
            return self.next_frame()
        self.stats.frames_decoded += 1
        if frame.key_frame:
            if self.last_keyframe_s is not None and frame.time > self.last_keyframe_s:
                self.max_gop_s = max(self.max_gop_s, frame.time - self.last_keyframe_s)
            self.last_keyframe_s = frame.time
        self.last_time_s = frame.time
        return frame


def decode_at(
    source: VideoSource,
    uri: str,
    targets_s: list[float],
    max_side: int | None = None,
    seek: bool = True,
) -> tuple[VideoInfo, np.ndarray, list[float], DecodeStats]:
    """Decode the frames at ``targets_s`` (seconds from the start, any order, repeats allowed).

    Returns ``(info, frames [len(targets), H, W, 3] uint8 RGB, timestamps_s of the frames, stats)``.
    ``seek=False`` decodes every frame from the start (the reference behaviour, used by tests and
    the benchmark). Raises :class:`VideoError` if the stream ends before the last target, i.e. the
    file is truncated.
    """
    with open_video(source, uri) as container:
        stream, info = _probe_stream(container, uri)
        stream.thread_type = "AUTO"
        width, height = scaled_size(info.width, info.height, max_side)
        start_s = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        half_frame_s = 0.5 / info.fps
        order = sorted(range(len(targets_s)), key=lambda position: targets_s[position])
        frames: list[np.ndarray | None] = [None] * len(targets_s)
        times: list[float] = [0.0] * len(targets_s)
        cursor = _Cursor(container, stream, uri)
        current: av.VideoFrame | None = None
        current_array: np.ndarray | None = None
        for position in order:
            target_s = start_s + targets_s[position]
            if current is not None and current.time >= target_s - half_frame_s:
                frames[position], times[position] = current_array, current.time - start_s
                continue
            ahead_s = target_s - (cursor.last_time_s if cursor.last_time_s is not None else start_s)
            gop_guess_s = cursor.max_gop_s or 1.0
            if seek and (ahead_s > gop_guess_s or ahead_s < 0) and targets_s[position] > half_frame_s:
                cursor.seek(target_s)
                current = None
            while True:
                frame = cursor.next_frame()
                if frame is None:
                    break
                if frame.time >= target_s - half_frame_s:
                    current = frame
                    break
            if frame is None:
                decoded_to = cursor.last_time_s - start_s if cursor.last_time_s is not None else 0.0
                raise VideoError(
                    uri,
                    f"truncated: the video stream ends at {decoded_to:.2f} s but the container says "
                    f"{info.duration_s:.2f} s (frame wanted at {targets_s[position]:.2f} s)",
                )
            current_array = current.to_ndarray(width=width, height=height, format="rgb24")
            frames[position], times[position] = current_array, current.time - start_s
        return info, np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8), times, cursor.stats
