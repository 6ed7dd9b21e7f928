"""Make broken video files for the bad-input tests: each is real bytes a user could hand us."""

from __future__ import annotations

import io
import struct

import av
import numpy as np

CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def _boxes(data: bytearray, start: int, end: int):
    """Yield (type, body_start, box_end) for the ISO-BMFF boxes in ``data[start:end]``."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
            header = 16
        size = size or end - position
        yield kind, position + header, position + size
        position += size


def _zero_durations(data: bytearray, start: int, end: int) -> None:
    for kind, body, box_end in _boxes(data, start, end):
        version = data[body] if body < box_end else 0
        if kind in CONTAINER_BOXES:
            _zero_durations(data, body, box_end)
        elif kind in (b"mvhd", b"mdhd"):  # version 0: flags(4) ctime(4) mtime(4) timescale(4) duration(4)
            offset = body + (24 if version == 1 else 16)
            width = 8 if version == 1 else 4
            data[offset : offset + width] = bytes(width)
        elif kind == b"tkhd":  # version 0: flags(4) ctime(4) mtime(4) track_id(4) reserved(4) duration(4)
            offset = body + (28 if version == 1 else 20)
            width = 8 if version == 1 else 4
            data[offset : offset + width] = bytes(width)
        elif kind == b"stts":  # flags(4) entry_count(4) then (sample_count, sample_delta) pairs
            count = struct.unpack(">I", data[body + 4 : body + 8])[0]
            for entry in range(count):
                delta_at = body + 8 + entry * 8 + 4
                data[delta_at : delta_at + 4] = bytes(4)


def one_frame_mp4() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return buffer.getvalue()


def zero_duration_mp4() -> bytes:
    """A valid mp4 whose every duration field (movie, track, media, sample deltas) says zero."""
    data = bytearray(one_frame_mp4())
    _zero_durations(data, 0, len(data))
    return bytes(data)


def audio_only_mp4() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def unknown_codec_mp4(valid_mp4: bytes) -> bytes:
    """A valid H.264 mp4 whose sample entry is renamed to a codec FFmpeg has never heard of."""
    return valid_mp4.replace(b"avc1", b"zzzz")
