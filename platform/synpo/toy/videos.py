"""Write a toy video dataset: ``<id>.mp4`` + ``<id>.json`` (ground truth) per video and a ``manifest.jsonl``.

The ground-truth JSON holds the scene, the detailed caption and one caption per clip of the paper's
clip split (``clamp(floor(duration/10)+1, 2, 16)`` equal segments), so clip captions line up with
what :func:`synpo.video.sample_video` cuts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tqdm import tqdm

from synpo.errors import BadArgument
from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.storage import Storage, join_uri, parse_uri
from synpo.toy.render import encode_mp4
from synpo.toy.world import Scene, describe_scene, describe_window, make_scene
from synpo.video.plan import clip_count, clip_ranges

DEFAULT_PROMPT = CAPTION_PROMPT  # the toy manifests carry the platform's captioning instruction


@dataclass(frozen=True)
class ToyVideoSpec:
    """Encoding settings for toy videos."""

    width: int = 160
    height: int = 120
    fps: int = 8
    min_duration_s: int = 5
    max_duration_s: int = 40


def video_seed(seed: int, index: int) -> int:
    return seed * 1_000_003 + index


def ground_truth(scene: Scene, video_id: str, fps: int, seconds_per_clip: float = 10.0) -> dict:
    """The JSON record for a scene: caption, clip captions (with their time ranges) and the scene itself."""
    num_frames = round(scene.duration_s * fps)
    clips = []
    for start, stop in clip_ranges(num_frames, clip_count(scene.duration_s, seconds_per_clip)):
        start_s, end_s = start / fps, stop / fps
        clips.append({"start_s": start_s, "end_s": end_s, "caption": describe_window(scene, start_s, end_s)})
    return {
        "id": video_id,
        "duration_s": scene.duration_s,
        "fps": fps,
        "caption": describe_scene(scene),
        "clips": clips,
        "scene": scene.to_dict(),
    }


def write_toy_videos(
    out: str,
    count: int,
    seed: int = 0,
    spec: ToyVideoSpec | None = None,
    storage: Storage | None = None,
    progress: bool = True,
) -> list[dict]:
    """Generate ``count`` videos under ``out`` (a path or URI); returns the manifest rows."""
    if count < 1:
        raise BadArgument(f"count must be >= 1, got {count}")
    spec = spec or ToyVideoSpec()
    storage = storage or Storage()
    location = parse_uri(out)
    if location.scheme == "file":
        out = location.path  # absolute, so the manifest works from any working directory
    rows = []
    for index in tqdm(range(count), desc="toy videos", disable=not progress):
        video_id = f"toy-{seed:04d}-{index:05d}"
        scene = make_scene(video_seed(seed, index), spec.min_duration_s, spec.max_duration_s)
        video_uri = join_uri(out, f"{video_id}.mp4")
        storage.write_bytes(video_uri, encode_mp4(scene, spec.width, spec.height, spec.fps))
        truth = ground_truth(scene, video_id, spec.fps)
        storage.write_text(join_uri(out, f"{video_id}.json"), json.dumps(truth, indent=1))
        rows.append({"id": video_id, "video": video_uri, "prompt": DEFAULT_PROMPT, "caption": truth["caption"]})
    storage.write_text(join_uri(out, "manifest.jsonl"), "".join(json.dumps(row) + "\n" for row in rows))
    return rows
