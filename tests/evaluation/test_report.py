"""Eval sets from manifests, and captions scored with reference metrics and toy-world fact accuracy."""

from __future__ import annotations

import json
import math
import random

import pytest

from synpo.evaluation.evalset import fingerprint, read_eval_set
from synpo.evaluation.report import score_captions
from synpo.evaluation.text_metrics import MetricError
from synpo.storage import Storage
from synpo.toy.pairs import alter_scene
from synpo.toy.world import describe_scene, make_scene
from synpo.video.manifest import InputError

SCENES = [make_scene(seed) for seed in range(8)]


def write_manifest(folder, rows) -> str:
    path = folder / "eval.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture
def toy_set(tmp_path):
    rows = [{"id": f"toy-{scene.seed}", "video": f"videos/toy-{scene.seed}.mp4", "caption": describe_scene(scene)} for scene in SCENES]
    return read_eval_set(write_manifest(tmp_path, rows), Storage(), "Describe the video.")


def test_a_toy_manifest_reads_as_videos_with_their_ground_truth(toy_set, tmp_path):
    assert [video.video_id for video in toy_set] == [f"toy-{scene.seed}" for scene in SCENES]
    assert toy_set[0].video == str(tmp_path / "videos/toy-0.mp4") and toy_set[0].prompt == "Describe the video."
    assert toy_set[3].references == (describe_scene(SCENES[3]),)


def test_several_references_and_the_fingerprint(tmp_path):
    rows = [{"id": "a", "video": "a.mp4", "references": ["A cat sits.", " ", "A cat is sitting."]}, {"id": "b", "video": "b.mp4", "caption": "A dog runs."}]
    videos = read_eval_set(write_manifest(tmp_path, rows), Storage(), "p")
    assert [video.references for video in videos] == [("A cat sits.", "A cat is sitting."), ("A dog runs.",)]
    changed = read_eval_set(write_manifest(tmp_path, [rows[0], {**rows[1], "caption": "A dog walks."}]), Storage(), "p")
    assert fingerprint(videos) == fingerprint(list(videos)) != fingerprint(changed)


def test_bad_eval_sets_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="row 2 .*'b'.* has no reference caption"):
        read_eval_set(write_manifest(tmp_path, [{"id": "a", "video": "a.mp4", "caption": "x"}, {"id": "b", "video": "b.mp4"}]), Storage(), "p")
    with pytest.raises(InputError, match="no videos"):
        read_eval_set(write_manifest(tmp_path, []), Storage(), "p")
    with pytest.raises(InputError, match="give a manifest"):
        read_eval_set(str(tmp_path), Storage(), "p")


def test_fact_accuracy_over_a_set_with_half_the_captions_altered(toy_set):
    rng = random.Random(3)
    captions = {video.video_id: video.references[0] for video in toy_set}
    for scene in SCENES[:4]:  # a wrong direction in four of eight captions
        captions[f"toy-{scene.seed}"] = describe_scene(alter_scene(scene, "direction", rng))
    report = score_captions(captions, toy_set, facts=True, meteor=False)
    metrics = report.metrics
    assert metrics["facts/hallucination_rate"] == 0.5 and metrics["facts/hallucination_rate/motion"] == 0.5
    assert metrics["facts/hallucination_rate/colour"] == 0.0 and metrics["facts/precision/colour"] == 1.0
    motion_facts = sum(len(scene.shapes) for scene in SCENES)
    assert metrics["facts/precision/motion"] == pytest.approx((motion_facts - 4) / motion_facts) == metrics["facts/recall/motion"]
    assert 0.9 < metrics["facts/precision"] < 1.0 and metrics["BLEU-4"] < 1.0
    assert [row["facts_hallucinated"] for row in report.per_video] == [1, 1, 1, 1, 0, 0, 0, 0]
    assert math.isnan(metrics["facts/precision/change_time"]) or metrics["facts/precision/change_time"] == 1.0


def test_scoring_refuses_missing_captions_and_non_toy_references(toy_set, tmp_path):
    captions = {video.video_id: video.references[0] for video in toy_set}
    with pytest.raises(MetricError, match=r"1 video\(s\) of the eval set have no caption, e.g. \['toy-7'\]"):
        score_captions({key: value for key, value in captions.items() if key != "toy-7"}, toy_set, meteor=False)
    other = read_eval_set(write_manifest(tmp_path, [{"id": "a", "video": "a.mp4", "caption": "A cat sits on a mat."}]), Storage(), "p")
    with pytest.raises(MetricError, match="not a toy-world caption"):
        score_captions({"a": "A cat sits."}, other, facts=True, meteor=False)
