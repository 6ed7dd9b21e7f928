"""Known-answer preference pairs from the toy world's ground truth.

chosen = the true caption; rejected = the caption of the same scene with one fact altered — a wrong
colour, the opposite direction, or an invented object — so the right answer is known exactly.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime

from synpo.jsonl import jsonl_objects
from synpo.storage import Storage
from synpo.toy.videos import DEFAULT_PROMPT
from synpo.toy.world import COLOURS, SHAPES, SIZES, Scene, Shape, describe_scene, path_for

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up", "still": "right"}
ALTERATIONS = ("colour", "direction", "invented_object")


def alter_scene(scene: Scene, alteration: str, rng: random.Random) -> Scene:
    """The scene with one fact changed (the video itself is untouched)."""
    shapes = list(scene.shapes)
    if alteration == "invented_object":
        absent = [kind for kind in SHAPES if kind not in {shape.shape for shape in shapes}] or ["star"]
        used = {shape.colour for shape in shapes}
        direction = rng.choice(["left", "right", "up", "down"])
        start_xy, end_xy = path_for(direction, rng)
        invented = Shape(
            shape=rng.choice(absent),
            colour=rng.choice([name for name in sorted(COLOURS) if name not in used]),
            size=rng.choice(sorted(SIZES)),
            direction=direction,
            start_xy=start_xy,
            end_xy=end_xy,
            appear_s=0.0,
        )
        return dataclasses.replace(scene, shapes=(*shapes, invented))
    index = rng.randrange(len(shapes))
    target = shapes[index]
    if alteration == "colour":
        options = [name for name in sorted(COLOURS) if name not in {target.colour, target.new_colour}]
        shapes[index] = dataclasses.replace(target, colour=rng.choice(options))
    elif alteration == "direction":
        if target.direction == "still":  # a still object is said to move
            start_xy, end_xy = path_for("right", rng)
        else:  # a moving object is said to move the opposite way
            start_xy, end_xy = target.end_xy, target.start_xy
        shapes[index] = dataclasses.replace(target, direction=OPPOSITE[target.direction], start_xy=start_xy, end_xy=end_xy)
    else:
        raise ValueError(f"unknown alteration {alteration!r}; choose one of {', '.join(ALTERATIONS)}")
    return dataclasses.replace(scene, shapes=tuple(shapes))


def toy_pairs(videos: str, seed: int = 0, storage: Storage | None = None) -> list[dict]:
    """One pair per toy video listed in ``videos``/manifest.jsonl, alterations cycling colour/direction/object."""
    storage = storage or Storage()
    manifest_uri = f"{videos.rstrip('/')}/manifest.jsonl"
    manifest = [row for _, row in jsonl_objects(storage.read_text(manifest_uri), manifest_uri)]
    rng = random.Random(seed)
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for index, entry in enumerate(manifest):
        truth = json.loads(storage.read_text(entry["video"].rsplit(".", 1)[0] + ".json"))
        scene = Scene.from_dict(truth["scene"])
        alteration = ALTERATIONS[index % len(ALTERATIONS)]
        rejected = describe_scene(alter_scene(scene, alteration, rng))
        rows.append(
            {
                "pair_id": f"{entry['id']}-{alteration}",
                "video": entry["video"],
                "video_id": entry["id"],
                "prompt": entry.get("prompt", DEFAULT_PROMPT),
                "chosen": truth["caption"],
                "rejected": rejected,
                "chosen_score": 1.0,
                "rejected_score": 0.0,
                "source": f"toy:{alteration}",
                "created_at": created_at,
            }
        )
    return rows
