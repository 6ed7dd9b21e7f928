"""Render a :class:`~synpo.toy.world.Scene` to frames and encode it as an H.264 mp4 with PyAV."""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
import numpy as np

from synpo.toy.world import BACKGROUNDS, COLOURS, SIZES, Scene


def _background(scene: Scene, width: int, height: int) -> np.ndarray:
    base = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    canvas = np.broadcast_to(base, (height, width, 3)).copy()  # (H, W, 3)
    if scene.pattern == "striped":
        stripes = (np.arange(width) // max(width // 8, 1)) % 2 == 1  # (W,)
        canvas[:, stripes] = np.clip(base * 0.7 + 25, 0, 255)
    elif scene.pattern == "gradient":
        ramp = np.linspace(0.6, 1.25, height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
        canvas = np.clip(canvas * ramp + 10, 0, 255)
    return canvas.astype(np.uint8)


def render_frame(scene: Scene, time_s: float, width: int, height: int, background: np.ndarray | None = None) -> np.ndarray:
    """The frame at ``time_s`` as ``[H, W, 3]`` uint8 RGB."""
    frame = (_background(scene, width, height) if background is None else background).copy()
    rows, cols = np.ogrid[:height, :width]  # (H, 1), (1, W)
    for shape in scene.shapes:
        if time_s < shape.appear_s:
            continue
        fx, fy = shape.position_at(time_s, scene.duration_s)
        cx, cy = fx * width, fy * height
        radius = SIZES[shape.size] * min(width, height)
        if shape.shape == "circle":
            mask = (cols - cx) ** 2 + (rows - cy) ** 2 <= radius**2
        elif shape.shape == "square":
            mask = (np.abs(cols - cx) <= radius) & (np.abs(rows - cy) <= radius)
        else:  # triangle, apex up
            depth = rows - (cy - radius)  # distance below the apex
            mask = (depth >= 0) & (depth <= 2 * radius) & (np.abs(cols - cx) <= depth / 2)
        frame[mask] = COLOURS[shape.colour_at(time_s)]
    return frame


def encode_mp4(
    scene: Scene,
    width: int = 160,
    height: int = 120,
    fps: int = 8,
    keyframe_interval_s: float = 1.0,
    faststart: bool = True,
) -> bytes:
    """The scene as mp4 bytes (H.264, yuv420p, a keyframe every ``keyframe_interval_s``).

    ``faststart`` puts the index (``moov``) before the media data, as web-ready files have it.
    """
    if width % 2 or height % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
    background = _background(scene, width, height)
    options = {"movflags": "faststart"} if faststart else {}
    # faststart rewrites the file after encoding, which needs a real file rather than a buffer.
    with tempfile.TemporaryDirectory(prefix="synpo-toy-") as folder:
        path = Path(folder) / "video.mp4"
        _encode_to(path, scene, width, height, fps, keyframe_interval_s, options, background)
        return path.read_bytes()


def _encode_to(
    path: Path,
    scene: Scene,
    width: int,
    height: int,
    fps: int,
    keyframe_interval_s: float,
    options: dict[str, str],
    background: np.ndarray,
) -> None:
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        gop = max(1, round(keyframe_interval_s * fps))
        stream.codec_context.gop_size = gop
        # One encoder thread: the bytes must not depend on the machine's cores or its load (toy videos are
        # compared byte for byte across runs; at 160x120 a single thread is fast enough).
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "23", "preset": "veryfast", "keyint_min": str(gop), "sc_threshold": "0", "threads": "1"}
        for index in range(round(scene.duration_s * fps)):
            image = render_frame(scene, index / fps, width, height, background)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
