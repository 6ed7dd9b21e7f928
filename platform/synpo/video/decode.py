"""PyAV decoding: open and probe a video, and decode the frames at chosen timestamps by seeking.

:func:`decode_at` visits sorted target times. It reads the keyframe index first (demuxing packets,
cheap next to decoding); for each target it keeps decoding forward when the keyframe before the
target is behind what it already decoded, and otherwise seeks to that keyframe. While catching up it
lets the decoder skip non-reference frames. The frame returned for a target is the first frame whose
timestamp is at or after ``target - half a frame``, so the result is bit-identical to a full decode
(a test holds it to that); only the work differs. ``bench/video_sampling.py`` measures the gain.

Every problem — missing/empty/truncated file, not a video container, no video stream, zero
duration, a codec with no decoder — raises :class:`~synpo.video.errors.VideoError`.
"""

from __future__ import annotations

import bisect
import io
from collections import deque
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


def keyframe_times(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> list[float]:
    """Timestamps (s) of the stream's keyframes, read by demuxing packets without decoding them."""
    times = [
        float(packet.pts * stream.time_base)
        for packet in container.demux(stream)
        if packet.is_keyframe and packet.pts is not None
    ]
    return sorted(times)


class _Cursor:
    """Feeds packets to the decoder from wherever the last seek put the demuxer.

    While catching up to a target it lets the decoder skip non-reference frames (``skip_frame =
    NONREF``) that come before the target: nothing else is predicted from them, so the target frame
    decodes bit-identically with roughly half the work on streams with B-frames.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, uri: str):
        self.container, self.stream, self.uri = container, stream, uri
        self.context = stream.codec_context
        self.packets: Iterator[av.Packet] | None = None
        self.pending: deque[av.VideoFrame] = deque()
        self.drained = False
        self.last_time_s: float | None = None
        self.stats = DecodeStats()

    def seek(self, time_s: float) -> None:
        offset = int(Fraction(time_s) / self.stream.time_base)
        try:
            self.container.seek(max(offset, 0), stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as error:
            raise VideoError(self.uri, f"seeking to {time_s:.2f} s failed ({_describe(error)})") from None
        self.packets, self.drained, self.last_time_s = None, False, None
        self.pending.clear()
        self.stats.seeks += 1

    def _decode_more(self, skip_before_pts: int | None) -> None:
        if self.packets is None:
            self.packets = self.container.demux(self.stream)
        try:
            packet = next(self.packets, None)
            if packet is None or packet.size == 0:  # end of stream: drain the decoder's delayed frames
                self.pending.extend(self.context.decode(None))
                self.drained = True
                return
            skippable = skip_before_pts is not None and packet.pts is not None and packet.pts < skip_before_pts
            self.context.skip_frame = "NONREF" if skippable else "DEFAULT"
            self.pending.extend(self.context.decode(packet))
        except av.error.FFmpegError as error:
            raise VideoError(
                self.uri, f"truncated or corrupt: the video stream breaks off after {self.last_time_s or 0:.2f} s ({_describe(error)})"
            ) from None

    def next_frame(self, skip_before_pts: int | None = None) -> av.VideoFrame | None:
        """The next decoded frame (None at the end); non-reference frames before ``skip_before_pts`` may be skipped."""
        while True:
            while not self.pending:
                if self.drained:
                    return None
                self._decode_more(skip_before_pts)
            frame = self.pending.popleft()
            if frame.pts is not None:
                break
        self.stats.frames_decoded += 1
        self.last_time_s = float(frame.pts * self.stream.time_base)  # frames drained at the end lack time_base
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
    With ``seek=True`` the keyframe index is read first (demuxing only) and the decoder jumps to the
    keyframe before a target whenever that keyframe lies beyond what it has decoded so far; otherwise
    it keeps decoding forward. So it never decodes more frames than a full decode, and far fewer when
    keyframes are closer together than the targets. ``seek=False`` decodes every frame from the start
    (the reference behaviour, used by tests and the benchmark). Raises :class:`VideoError` if the
    stream ends before the last target, i.e. the file is truncated.
    """
    keyframes_s: list[float] = []
    if seek:
        with open_video(source, uri) as index_container:
            keyframes_s = keyframe_times(index_container, _probe_stream(index_container, uri)[0])
    with open_video(source, uri) as container:
        stream, info = _probe_stream(container, uri)
        width, height = scaled_size(info.width, info.height, max_side)
        start_s = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        half_frame_s = 0.5 / info.fps
        order = sorted(range(len(targets_s)), key=lambda position: targets_s[position])
        frames: list[np.ndarray | None] = [None] * len(targets_s)
        times: list[float] = [0.0] * len(targets_s)
        cursor = _Cursor(container, stream, uri)
        current_time_s: float | None = None
        current_array: np.ndarray | None = None
        for position in order:
            target_s = start_s + targets_s[position] - half_frame_s
            if current_time_s is not None and current_time_s >= target_s:
                frames[position], times[position] = current_array, current_time_s - start_s
                continue
            keyframe_index = bisect.bisect_right(keyframes_s, target_s) - 1
            if keyframe_index >= 0:
                keyframe_s = keyframes_s[keyframe_index]
                decoded_to_s = cursor.last_time_s if cursor.last_time_s is not None else start_s
                if keyframe_s > decoded_to_s:
                    cursor.seek(keyframe_s)
            skip_before_pts = int(Fraction(target_s) / stream.time_base) if seek else None
            while (frame := cursor.next_frame(skip_before_pts)) is not None and cursor.last_time_s < target_s:
                pass
            if frame is None:
                decoded_to = cursor.last_time_s - start_s if cursor.last_time_s is not None else 0.0
                raise VideoError(
                    uri,
                    f"truncated: the video stream ends at {decoded_to:.2f} s but the container says "
                    f"{info.duration_s:.2f} s (frame wanted at {targets_s[position]:.2f} s)",
                )
            current_time_s = cursor.last_time_s
            current_array = frame.to_ndarray(width=width, height=height, format="rgb24")
            frames[position], times[position] = current_array, current_time_s - start_s
        stacked = np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)
        return info, stacked, times, cursor.stats
