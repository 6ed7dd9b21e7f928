"""The oracle judge: the true caption always wins, and it chooses among the pair job's judged candidates only."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpo.pairgen.write_stage import AUDIT, VIDEOS
from synpo.replication.oracle import ORACLE_JUDGE, fact_f1, oracle_pairs, oracle_selection, toy_truth
from synpo.storage import Storage
from synpo.toy.facts import scene_facts
from synpo.toy.pairs import ALTERATIONS, alter_scene
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.toy.world import describe_scene, make_scene


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_the_oracle_prefers_the_truth_over_every_altered_caption(alteration):
    """300 scenes, the truth first or second: the truth is chosen, with a positive margin, every time."""
    rng = random.Random(0)
    for seed in range(300):
        scene = make_scene(seed)
        truth, altered = describe_scene(scene), describe_scene(alter_scene(scene, alteration, rng))
        facts = scene_facts(scene)
        assert fact_f1(truth, facts) == 1.0
        assert fact_f1(altered, facts) < 1.0
        for candidates in ([truth, altered], [altered, truth]):
            selection = oracle_selection(candidates, facts, min_margin=0.0)
            assert selection.chosen_text == truth and selection.rejected_text == altered, (seed, alteration)
            assert selection.margin > 0


def test_fact_f1_golden_value():
    """Scene 3 has 9 facts (a small cyan square on a gradient dark grey background, still, turning purple at
    8 s, 20 s long). This caption states 5: square, small, from the start (true); red, plain black (false).
    P = 3/5, R = 3/9, F1 = 2PR / (P + R) = 3/7."""
    scene = make_scene(3)
    assert describe_scene(scene).startswith("The video shows a small cyan square on a gradient dark grey background.")
    caption = "The video shows a small red square on a plain black background."
    assert fact_f1(caption, scene_facts(scene)) == pytest.approx(3 / 7)
    assert fact_f1("Nothing readable here.", scene_facts(scene)) == 0.0


def test_oracle_margin_keeps_or_filters():
    scene = make_scene(5)
    facts, truth = scene_facts(scene), describe_scene(scene)
    assert not oracle_selection([truth, truth], facts, min_margin=0.05).kept  # equal scores: margin 0
    assert oracle_selection([truth, truth], facts, min_margin=0.0).kept
    altered = describe_scene(alter_scene(scene, "colour", random.Random(1)))
    selection = oracle_selection([altered, truth], facts, min_margin=0.05)
    assert selection.kept == (selection.margin >= 0.05)


def _write(table_rows: list[dict], schema: pa.Schema, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(table_rows, schema=schema), path)


def test_oracle_pairs_from_a_pair_job_output(tmp_path):
    """Real toy videos and their ground truth; audit rows as the pair job writes them. The oracle picks the
    truth over altered captions, never a candidate the pair job could not judge, and skips one-candidate videos."""
    manifest = write_toy_videos(str(tmp_path / "videos"), 3, seed=4, spec=ToyVideoSpec(max_duration_s=8), progress=False)
    rng = random.Random(2)
    audit, videos = [], []
    for number, entry in enumerate(manifest):
        scene = make_scene_from(entry["video"])
        texts = [describe_scene(alter_scene(scene, "direction", rng)), describe_scene(scene), describe_scene(alter_scene(scene, "invented_object", rng))]
        totals = [1.0, 2.0, 3.0] if number < 2 else [1.0, None, None]  # video 2: only one candidate judged
        if number == 1:
            texts.append(describe_scene(scene) + " The video lasts 999 seconds.")  # never chosen: its criterion failed
            totals.append(None)
        for index, (text, total) in enumerate(zip(texts, totals, strict=True)):
            audit.append({"video_id": entry["id"], "video": entry["video"], "candidate": index, "role": "", "text": text, "total": total, "judge": "rules-1"})
        videos.append({"video_id": entry["id"], "video": entry["video"], "prompt": entry["prompt"], "status": "paired", "generator": "tiny"})
    _write(audit, AUDIT, tmp_path / "out" / "audit" / "part-0.parquet")
    _write(videos, VIDEOS, tmp_path / "out" / "videos" / "part-0.parquet")

    pairs, counts = oracle_pairs(str(tmp_path / "out"), min_margin=0.0, storage=Storage())

    assert counts == {"kept": 2, "filtered": 0}
    assert [pair["video_id"] for pair in pairs] == [manifest[0]["id"], manifest[1]["id"]]
    for pair, entry in zip(pairs, manifest, strict=False):
        scene = make_scene_from(entry["video"])
        assert pair["chosen"] == describe_scene(scene)  # the rules judge's totals preferred the invented object
        assert pair["rejected"] != pair["chosen"] and "999 seconds" not in pair["rejected"]
        assert pair["judge"] == ORACLE_JUDGE and pair["prompt"] == entry["prompt"] and pair["generator"] == "tiny"
        assert pair["chosen_score"] == 1.0 and pair["rejected_score"] < 1.0


def make_scene_from(video: str):
    from synpo.toy.world import Scene

    return Scene.from_dict(json.loads(open(video.rsplit(".", 1)[0] + ".json").read())["scene"])


def test_toy_truth_names_a_video_without_ground_truth(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"not a toy video")
    with pytest.raises(FileNotFoundError, match=r"clip\.json.*toy videos only"):
        toy_truth(str(tmp_path / "clip.mp4"), Storage())
