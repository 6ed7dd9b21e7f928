"""Frame sampling speed: our seeking sampler vs decoding every frame, side by side.

    .venv/bin/python bench/video_sampling.py [--repeats 5]

Makes 60 s, 640x480, 30 fps toy videos with a keyframe every 1 s, every 2 s (typical of streaming
encoders) and every 250 frames (x264's default, ~8.3 s), then samples 16 frames uniformly from each with
``decode_at(seek=True)`` and with ``seek=False`` (decode everything), checks both return the same
frames, and prints the median times and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from synpo.toy.render import encode_mp4
from synpo.toy.world import Scene, make_scene
from synpo.video import probe
from synpo.video.decode import decode_at
from synpo.video.plan import uniform_indices


def timed(repeats: int, function, *args, **kwargs) -> tuple[float, object]:
    durations, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant (median reported)")
    parser.add_argument("--frames", type=int, default=16, help="frames to sample")
    args = parser.parse_args()

    base = make_scene(11)
    scene = Scene(seed=base.seed, duration_s=60.0, background=base.background, pattern=base.pattern, shapes=base.shapes)
    print(f"{'keyframe every':>16} {'seek (ms)':>10} {'full (ms)':>10} {'speed-up':>9} {'decoded seek/full':>18}")
    for label, interval_s in (("1 s", 1.0), ("2 s", 2.0), ("250 frames", 250 / 30)):
        data = encode_mp4(scene, width=640, height=480, fps=30, keyframe_interval_s=interval_s)
        info = probe(data, "bench.mp4")
        targets = [index / info.fps for index in uniform_indices(0, info.num_frames, args.frames)]
        seek_s, (_, seek_frames, _, seek_stats) = timed(args.repeats, decode_at, data, "bench.mp4", targets, seek=True)
        full_s, (_, full_frames, _, full_stats) = timed(args.repeats, decode_at, data, "bench.mp4", targets, seek=False)
        assert np.array_equal(seek_frames, full_frames), "seeking changed the sampled frames"
        print(
            f"{label:>16} {seek_s * 1e3:10.1f} {full_s * 1e3:10.1f} {full_s / seek_s:8.2f}x "
            f"{seek_stats.frames_decoded:>8}/{full_stats.frames_decoded}"
        )


if __name__ == "__main__":
    main()
