"""The stages of pair generation, chained in one process (no Ray): rows, tables, markers, resume bookkeeping."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pairgen_support import small_config

from synpo.pairgen import progress
from synpo.pairgen.decode_stage import DecodeStage
from synpo.pairgen.inputs import read_inputs
from synpo.pairgen.judge_stage import JudgeStage
from synpo.pairgen.rows import INPUT
from synpo.pairgen.sample_stage import SampleStage, video_seed
from synpo.pairgen.write_stage import WriteStage
from synpo.pairs import read_pairs
from synpo.storage import Storage


@pytest.fixture(scope="module")
def written(pair_videos, warm_vlm, tmp_path_factory):
    """Six videos (one corrupt) through decode -> sample -> judge (rules) -> write, in two batches."""
    output = tmp_path_factory.mktemp("stages_out")
    config = small_config(warm_vlm, str(pair_videos / "all.jsonl"), str(output)).with_absolute_paths()
    storage = Storage()
    videos = [video.to_dict() for video in read_inputs(config.input, storage, config.prompt)]
    decode, sample, judge, write = DecodeStage(config.video, storage), SampleStage(config), JudgeStage(config), WriteStage(config.output, storage)
    summaries = []
    for batch in (videos[:4], videos[4:]):
        table = pa.Table.from_pylist(batch, schema=INPUT)
        judged = asyncio.run(judge(sample(decode(table))))
        summaries.extend(write(judged).to_pylist())
    return config, storage, summaries


def test_every_video_is_written_once_with_its_status(written):
    config, storage, summaries = written
    assert len(summaries) == 6
    statuses = {row["video_id"]: row["status"] for row in summaries}
    assert statuses["broken"] == "failed" and all(status == "paired" for key, status in statuses.items() if key != "broken")
    assert progress.completed(config.output, storage) == statuses


def test_pairs_audit_videos_and_failures_tables(written):
    config, storage, _ = written
    pairs = read_pairs(f"{config.output}/pairs", storage)
    assert sorted(pair["video_id"] for pair in pairs) == [f"toy-0011-0000{index}" for index in range(5)]
    assert all(pair["chosen_score"] >= pair["rejected_score"] and pair["judge"].startswith("rules:") for pair in pairs)
    audit = pa.concat_tables([pq.read_table(uri) for uri in storage.list(f"{config.output}/audit")]).to_pylist()
    assert len(audit) == 5 * 3  # every candidate of every judged video
    for pair in pairs:
        roles = {row["role"]: row for row in audit if row["video_id"] == pair["video_id"] and row["role"]}
        assert roles["chosen"]["text"] == pair["chosen"] and roles["rejected"]["text"] == pair["rejected"]
    assert all(row["first_pass"] and row["c1"] is not None and json.loads(row["reasoning"]) for row in audit)
    failures = pa.concat_tables([pq.read_table(uri) for uri in storage.list(f"{config.output}/failures")]).to_pylist()
    assert len(failures) == 1 and failures[0]["stage"] == "decode" and "broken.mp4" in failures[0]["reason"]
    videos = pa.concat_tables([pq.read_table(uri) for uri in storage.list(f"{config.output}/videos")]).to_pylist()
    clips = {row["video_id"]: json.loads(row["clip_captions"]) for row in videos if row["status"] == "paired"}
    assert all(len(captions) >= 2 and all(captions) for captions in clips.values())  # the clip split: at least 2 clips


def test_orphaned_parts_are_removed_and_settings_are_checked(written, tmp_path):
    config, storage, _ = written
    orphan = f"{config.output}/pairs/part-deadbeef.parquet"
    storage.write_bytes(orphan, b"written by a run that died before its marker")
    assert progress.remove_orphans(config.output, storage) == [orphan]
    assert not storage.exists(orphan) and progress.remove_orphans(config.output, storage) == []
    progress.check_fingerprint(config, storage)  # same settings: fine
    changed = config.model_copy(update={"seed": 5, "candidates": config.candidates.model_copy(update={"mode": "plain"})})
    with pytest.raises(progress.ResumeError, match=r"candidates.mode: 'both' -> 'plain'; seed: 0 -> 5"):
        progress.check_fingerprint(changed, storage)


def test_video_seeds_are_stable_and_distinct():
    assert video_seed(0, "a") == video_seed(0, "a") != video_seed(0, "b") != video_seed(1, "a")
    assert 0 <= video_seed(123, "x" * 100) < 2**31


def test_a_video_with_fewer_than_two_judged_candidates_is_a_judge_failure():
    """Two candidates, the second one's C1 call failed: no total, so no pair; the row is a failure that
    names the judge's reason and the call's failure."""
    from synpo.pairgen.write_stage import video_outputs

    candidate = {"index": 0, "text": "a red circle", "c1": 4, "c2": 5, "c3": 3, "total": 12.4, "reasoning": {}, "failures": {}}
    broken = {"index": 1, "text": "a blue square", "c1": None, "c2": 5, "c3": 3, "total": None, "reasoning": {},
              "failures": {"c1": "HTTP 500 (gave up after 6 attempts)"}}  # fmt: skip
    pair = {"kept": False, "reason": "fewer than two judged candidates (1 of 2)", "chosen_index": None, "chosen_text": None,
            "chosen_score": None, "rejected_index": None, "rejected_text": None, "rejected_score": None, "margin": None}  # fmt: skip
    verdict = {"candidates": [candidate, broken], "pair": pair, "backend": "openai", "judge_model": "m", "prompt_version": "v",
               "calls": 5, "failed_calls": 1, "cache_hits": 0, "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.0}  # fmt: skip
    row = {"video_id": "v1", "video": "s3://b/v1.mp4", "prompt": "p", "failure_stage": None, "failure_reason": None,
           "judgement": json.dumps(verdict), "generator": "g",
           "candidates": json.dumps([{"text": "a red circle", "first_pass": "x", "finish_reason": "stop", "tokens": 3}] * 2)}  # fmt: skip
    out = video_outputs(row, "2026-11-23T00:00:00+00:00")
    assert out["pairs"] == [] and len(out["audit"]) == 2
    (failure,) = out["failures"]
    assert failure["stage"] == "judge" and failure["reason"].startswith("fewer than two judged candidates (1 of 2)")
    assert "c1: HTTP 500" in failure["reason"]
    assert out["summary"][0]["status"] == "failed" and out["summary"][0]["judge_failed_calls"] == 1
