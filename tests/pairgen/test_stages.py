"""The stages of pair generation, chained in one process (no Ray): rows, tables, markers, resume bookkeeping;
the writer table by table on hand-built judged rows; the judgement's trip from the judge stage to the writer."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pairgen_support import small_config

from synpo.judging.config import JudgeConfig
from synpo.judging.judge import Judge
from synpo.judging.results import CandidateJudgement, JudgeInput, PairSelection, VideoJudgement
from synpo.pairgen import progress
from synpo.pairgen.config import PairsConfig
from synpo.pairgen.decode_stage import DecodeStage
from synpo.pairgen.judge_stage import JudgeStage, JudgeStageSettings
from synpo.pairgen.rows import (
    INPUT,
    JUDGED,
    SAMPLED,
    SampledCandidate,
    failed,
    pack_candidates,
    pack_judgement,
    to_table,
    unpack_candidates,
    unpack_judgement,
)
from synpo.pairgen.sample_stage import SampleStage, SampleStageSettings, video_seed
from synpo.pairgen.write_stage import (
    WriteStage,
    audit_rows,
    failures_rows,
    pairs_rows,
    summary_row,
    video_outcome,
    videos_row,
)
from synpo.pairs import read_pairs
from synpo.storage import Storage, StorageConfig
from synpo.video.manifest import read_inputs


def sample_stage(config: PairsConfig) -> SampleStage:
    """The sample stage as ``build_plan`` makes it."""
    return SampleStage(SampleStageSettings(engine=config.engine, clips=config.clips, candidates=config.candidates, seed=config.seed))


def judge_stage(config: PairsConfig) -> JudgeStage:
    """The judge stage as ``build_plan`` makes it."""
    settings = JudgeStageSettings(judge=config.judge, output=config.output, storage=config.storage, cache_flush_s=config.judge_cache_flush_s)
    return JudgeStage(settings)


@pytest.fixture(scope="module")
def written(pair_videos, warm_vlm, tmp_path_factory):
    """Six videos (one corrupt) through decode -> sample -> judge (rules) -> write, in two batches."""
    output = tmp_path_factory.mktemp("stages_out")
    config = small_config(warm_vlm, str(pair_videos / "all.jsonl"), str(output)).with_absolute_paths()
    storage = Storage()
    videos = [video.to_dict() for video in read_inputs(config.input, storage, config.prompt)]
    decode, sample, judge, write = DecodeStage(config.video, storage), sample_stage(config), judge_stage(config), WriteStage(config.output, storage)
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



# ---- the writer, table by table, on hand-built judged rows (no engine, no judge) ----

CREATED_AT = "2026-11-23T00:00:00+00:00"
WEIGHTS = {"c1": 1.1, "c2": 1.0, "c3": 1.0}
PROMPT = "Describe the video."


def _sampled(*texts: str) -> list[SampledCandidate]:
    """Candidates as the sample stage records them: a first pass, stopped, one token per word."""
    return [SampledCandidate(text=text, first_pass=f"draft of {text}", finish_reason="stop", tokens=len(text.split())) for text in texts]


def _judged_row(judgement: VideoJudgement, candidates: list[SampledCandidate]) -> dict:
    """A JUDGED row as the judge stage hands it on (through an Arrow table): 8 s of video decoded at t=100,
    sampled at t=101, judged at t=104."""
    row = {"video_id": judgement.video_id, "video": f"s3://videos/{judgement.video_id}.mp4", "prompt": PROMPT,
           "failure_stage": None, "failure_reason": None, "decode_s": 0.5, "decode_start_t": 100.0, "decode_end_t": 100.5,
           "duration_s": 8.0, "candidates": pack_candidates(candidates), "clip_captions": json.dumps(["a red circle", "a blue square"]),
           "generator": "warm-vlm", "sample_s": 2.5, "sample_start_t": 101.0, "sample_end_t": 103.5,
           "judgement": pack_judgement(judgement), "judge_s": 0.25, "judge_start_t": 104.0, "judge_end_t": 104.25}  # fmt: skip
    return to_table([row], JUDGED).to_pylist()[0]


def paired() -> VideoJudgement:
    """Rules judge, three candidates: totals 1.1*5+5+3 = 13.5, 1.1*3+4+2 = 9.3, 1.1*2+3+1 = 6.2; margin 7.3 >= 4, kept."""
    candidates = [
        CandidateJudgement(0, "a red circle moves right", 5, 5, 3, 13.5, {"c1": "matches", "c2": "follows", "c3": "agrees"}),
        CandidateJudgement(1, "a red shape", 3, 4, 2, 9.3, {"c1": "vague", "c2": "short", "c3": "partly"}),
        CandidateJudgement(2, "a green car", 2, 3, 1, 6.2, {"c1": "wrong", "c2": "off", "c3": "disagrees"}),
    ]
    pair = PairSelection(True, "margin 7.3 >= 4", 0, "a red circle moves right", 13.5, 2, "a green car", 6.2, 7.3)
    return VideoJudgement("v-paired", PROMPT, candidates, pair, "rules", "rules-1", "rules-1", WEIGHTS)


def filtered() -> VideoJudgement:
    """LLM judge, two candidates: 1.1*5+3+2 = 10.5 and 1.1*4+3+2 = 9.4, margin 1.1 < 4, not kept; one answer from the cache."""
    candidates = [
        CandidateJudgement(0, "a blue square", 5, 3, 2, 10.5, {"c1": "a", "c2": "b", "c3": "c"}),
        CandidateJudgement(1, "a blue box", 4, 3, 2, 9.4, {"c1": "d", "c2": "e", "c3": "f"}),
    ]
    pair = PairSelection(False, "margin 1.1 < 4", 0, "a blue square", 10.5, 1, "a blue box", 9.4, 1.1)
    return VideoJudgement("v-filtered", PROMPT, candidates, pair, "openai", "qwen-plus", "v3", WEIGHTS,
                          calls=4, http_attempts=5, cache_hits=1, prompt_tokens=1200, completion_tokens=300, cost_usd=0.00045)  # fmt: skip


def judge_failed() -> VideoJudgement:
    """LLM judge, two candidates, the second one's C1 call failed: no total, so no pair; judged again next run."""
    candidates = [
        CandidateJudgement(0, "a red circle", 4, 5, 3, 12.4, {"c1": "ok", "c2": "ok", "c3": "ok"}),
        CandidateJudgement(1, "a blue square", None, 5, 3, None, {"c2": "ok", "c3": "ok"}, {"c1": "HTTP 500 (gave up after 6 attempts)"}),
    ]
    pair = PairSelection(False, "fewer than two judged candidates (1 of 2)")
    return VideoJudgement("v-judge-failed", PROMPT, candidates, pair, "openai", "qwen-plus", "v3", WEIGHTS,
                          calls=5, http_attempts=10, failed_calls=1, prompt_tokens=1500, completion_tokens=250, cost_usd=0.0005)  # fmt: skip


def decode_failed_row() -> dict:
    """A video the decoder could not read, passed on untouched by sample and judge (:func:`synpo.pairgen.rows.failed`)."""
    row = failed({"video_id": "v-broken", "video": "s3://videos/v-broken.mp4", "prompt": PROMPT, "decode_s": 0.125,
                  "decode_start_t": 100.0, "decode_end_t": 100.125}, "decode", "VideoError: s3://videos/v-broken.mp4: moov atom not found")  # fmt: skip
    return to_table([row], JUDGED).to_pylist()[0]


CASES = {
    "paired": lambda: _judged_row(paired(), _sampled("a red circle moves right", "a red shape", "a green car")),
    "filtered": lambda: _judged_row(filtered(), _sampled("a blue square", "a blue box")),
    "judge_failed": lambda: _judged_row(judge_failed(), _sampled("a red circle", "a blue square")),
    "decode_failed": decode_failed_row,
}
JUDGE_FAILURE = "fewer than two judged candidates (1 of 2) — c1: HTTP 500 (gave up after 6 attempts)"
DECODE_FAILURE = "VideoError: s3://videos/v-broken.mp4: moov atom not found"
TIMES = {"decode_start_t": 100.0, "decode_end_t": 100.5, "sample_start_t": 101.0, "sample_end_t": 103.5, "judge_start_t": 104.0, "judge_end_t": 104.25}
# What each table gets from each video (worked out by the writer before its per-table split, and checked by hand).
EXPECTED = {
    "paired": {
        "pairs": [{"pair_id": "v-paired", "video_id": "v-paired", "video": "s3://videos/v-paired.mp4", "prompt": PROMPT,
                   "chosen": "a red circle moves right", "rejected": "a green car", "chosen_score": 13.5, "rejected_score": 6.2,
                   "source": "pipeline", "generator": "warm-vlm", "judge": "rules:rules-1@rules-1", "created_at": CREATED_AT}],
        "audit": [
            {"video_id": "v-paired", "video": "s3://videos/v-paired.mp4", "candidate": 0, "role": "chosen", "text": "a red circle moves right",
             "first_pass": "draft of a red circle moves right", "finish_reason": "stop", "generated_tokens": 5, "c1": 5, "c2": 5, "c3": 3,
             "total": 13.5, "reasoning": '{"c1": "matches", "c2": "follows", "c3": "agrees"}', "judge_failures": "{}", "judge": "rules:rules-1@rules-1"},
            {"video_id": "v-paired", "video": "s3://videos/v-paired.mp4", "candidate": 1, "role": "", "text": "a red shape",
             "first_pass": "draft of a red shape", "finish_reason": "stop", "generated_tokens": 3, "c1": 3, "c2": 4, "c3": 2,
             "total": 9.3, "reasoning": '{"c1": "vague", "c2": "short", "c3": "partly"}', "judge_failures": "{}", "judge": "rules:rules-1@rules-1"},
            {"video_id": "v-paired", "video": "s3://videos/v-paired.mp4", "candidate": 2, "role": "rejected", "text": "a green car",
             "first_pass": "draft of a green car", "finish_reason": "stop", "generated_tokens": 3, "c1": 2, "c2": 3, "c3": 1,
             "total": 6.2, "reasoning": '{"c1": "wrong", "c2": "off", "c3": "disagrees"}', "judge_failures": "{}", "judge": "rules:rules-1@rules-1"},
        ],
        "videos": {"video_id": "v-paired", "video": "s3://videos/v-paired.mp4", "prompt": PROMPT, "duration_s": 8.0,
                   "clip_captions": '["a red circle", "a blue square"]', "generator": "warm-vlm", "decode_s": 0.5, "sample_s": 2.5,
                   "judge_s": 0.25, "status": "paired", "reason": "margin 7.3 >= 4", "margin": 7.3, "judge": "rules:rules-1@rules-1",
                   "judge_calls": 0, "judge_cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0},
        "failures": [],
        "summary": {"video_id": "v-paired", "decode_s": 0.5, "sample_s": 2.5, "judge_s": 0.25, "status": "paired", "failure_stage": None,
                    "failure_reason": None, "judge_retry": False, "generated_tokens": 11, "judge_calls": 0, "judge_failed_calls": 0,
                    "judge_cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, **TIMES},
    },
    "filtered": {
        "pairs": [],
        "audit": [
            {"video_id": "v-filtered", "video": "s3://videos/v-filtered.mp4", "candidate": 0, "role": "chosen", "text": "a blue square",
             "first_pass": "draft of a blue square", "finish_reason": "stop", "generated_tokens": 3, "c1": 5, "c2": 3, "c3": 2,
             "total": 10.5, "reasoning": '{"c1": "a", "c2": "b", "c3": "c"}', "judge_failures": "{}", "judge": "openai:qwen-plus@v3"},
            {"video_id": "v-filtered", "video": "s3://videos/v-filtered.mp4", "candidate": 1, "role": "rejected", "text": "a blue box",
             "first_pass": "draft of a blue box", "finish_reason": "stop", "generated_tokens": 3, "c1": 4, "c2": 3, "c3": 2,
             "total": 9.4, "reasoning": '{"c1": "d", "c2": "e", "c3": "f"}', "judge_failures": "{}", "judge": "openai:qwen-plus@v3"},
        ],
        "videos": {"video_id": "v-filtered", "video": "s3://videos/v-filtered.mp4", "prompt": PROMPT, "duration_s": 8.0,
                   "clip_captions": '["a red circle", "a blue square"]', "generator": "warm-vlm", "decode_s": 0.5, "sample_s": 2.5,
                   "judge_s": 0.25, "status": "filtered", "reason": "margin 1.1 < 4", "margin": 1.1, "judge": "openai:qwen-plus@v3",
                   "judge_calls": 4, "judge_cache_hits": 1, "prompt_tokens": 1200, "completion_tokens": 300, "cost_usd": 0.00045},
        "failures": [],
        "summary": {"video_id": "v-filtered", "decode_s": 0.5, "sample_s": 2.5, "judge_s": 0.25, "status": "filtered", "failure_stage": None,
                    "failure_reason": None, "judge_retry": False, "generated_tokens": 6, "judge_calls": 4, "judge_failed_calls": 0,
                    "judge_cache_hits": 1, "prompt_tokens": 1200, "completion_tokens": 300, "cost_usd": 0.00045, **TIMES},
    },
    "judge_failed": {
        "pairs": [],
        "audit": [
            {"video_id": "v-judge-failed", "video": "s3://videos/v-judge-failed.mp4", "candidate": 0, "role": "", "text": "a red circle",
             "first_pass": "draft of a red circle", "finish_reason": "stop", "generated_tokens": 3, "c1": 4, "c2": 5, "c3": 3,
             "total": 12.4, "reasoning": '{"c1": "ok", "c2": "ok", "c3": "ok"}', "judge_failures": "{}", "judge": "openai:qwen-plus@v3"},
            {"video_id": "v-judge-failed", "video": "s3://videos/v-judge-failed.mp4", "candidate": 1, "role": "", "text": "a blue square",
             "first_pass": "draft of a blue square", "finish_reason": "stop", "generated_tokens": 3, "c1": None, "c2": 5, "c3": 3,
             "total": None, "reasoning": '{"c2": "ok", "c3": "ok"}', "judge_failures": '{"c1": "HTTP 500 (gave up after 6 attempts)"}',
             "judge": "openai:qwen-plus@v3"},
        ],
        "videos": {"video_id": "v-judge-failed", "video": "s3://videos/v-judge-failed.mp4", "prompt": PROMPT, "duration_s": 8.0,
                   "clip_captions": '["a red circle", "a blue square"]', "generator": "warm-vlm", "decode_s": 0.5, "sample_s": 2.5,
                   "judge_s": 0.25, "status": "failed", "reason": JUDGE_FAILURE, "margin": None, "judge": "openai:qwen-plus@v3",
                   "judge_calls": 5, "judge_cache_hits": 0, "prompt_tokens": 1500, "completion_tokens": 250, "cost_usd": 0.0005},
        "failures": [{"video_id": "v-judge-failed", "video": "s3://videos/v-judge-failed.mp4", "stage": "judge", "reason": JUDGE_FAILURE}],
        "summary": {"video_id": "v-judge-failed", "decode_s": 0.5, "sample_s": 2.5, "judge_s": 0.25, "status": "failed", "failure_stage": "judge",
                    "failure_reason": JUDGE_FAILURE, "judge_retry": True, "generated_tokens": 6, "judge_calls": 5, "judge_failed_calls": 1,
                    "judge_cache_hits": 0, "prompt_tokens": 1500, "completion_tokens": 250, "cost_usd": 0.0005, **TIMES},
    },
    "decode_failed": {
        "pairs": [],
        "audit": [],
        "videos": {"video_id": "v-broken", "video": "s3://videos/v-broken.mp4", "prompt": PROMPT, "duration_s": None, "clip_captions": None,
                   "generator": None, "decode_s": 0.125, "sample_s": None, "judge_s": None, "status": "failed", "reason": DECODE_FAILURE,
                   "margin": None, "judge": None, "judge_calls": 0, "judge_cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0,
                   "cost_usd": 0},
        "failures": [{"video_id": "v-broken", "video": "s3://videos/v-broken.mp4", "stage": "decode", "reason": DECODE_FAILURE}],
        "summary": {"video_id": "v-broken", "decode_s": 0.125, "sample_s": None, "judge_s": None, "status": "failed", "failure_stage": "decode",
                    "failure_reason": DECODE_FAILURE, "judge_retry": False, "generated_tokens": 0, "judge_calls": 0, "judge_failed_calls": 0,
                    "judge_cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0, "decode_start_t": 100.0,
                    "decode_end_t": 100.125, "sample_start_t": None, "sample_end_t": None, "judge_start_t": None, "judge_end_t": None},
    },
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_table_gets_its_rows_of_a_video(case):
    """A paired, a filtered, a judge-failed (judged again next run) and a decode-failed video, through each table's function."""
    row, expected = CASES[case](), EXPECTED[case]
    judgement = unpack_judgement(row["judgement"]) if row["judgement"] else None
    candidates = unpack_candidates(row["candidates"]) if row["candidates"] else []
    outcome = video_outcome(row, judgement)
    assert pairs_rows(row, outcome, judgement, CREATED_AT) == expected["pairs"]
    assert audit_rows(row, judgement, candidates) == expected["audit"]
    assert videos_row(row, outcome, judgement) == expected["videos"]
    assert failures_rows(row, outcome) == expected["failures"]
    assert summary_row(row, outcome, judgement, candidates) == expected["summary"]


def test_the_writer_writes_every_table_and_marks_the_judge_failure_for_retry(tmp_path):
    """The four videos in one batch: each table's part holds the rows above, the marker lists the judge failure for the next run."""
    storage, output = Storage(), str(tmp_path)
    summaries = WriteStage(output, storage)(to_table([make() for make in CASES.values()], JUDGED)).to_pylist()
    assert summaries == [EXPECTED[case]["summary"] for case in CASES]
    for name in ("pairs", "audit", "videos", "failures"):
        (part,) = storage.list(f"{output}/{name}")
        written = pq.read_table(part).to_pylist()
        if name == "pairs":  # created now; the reference log-probabilities come later (synpo pairs add-reference)
            assert [(pair.pop("ref_chosen_logp"), pair.pop("ref_rejected_logp")) for pair in written] == [(None, None)]
            written = [{**pair, "created_at": CREATED_AT} for pair in written]
        per_video = [EXPECTED[case][name] for case in CASES]
        assert written == ([row for rows in per_video for row in rows] if name != "videos" else per_video)
    (marker_uri,) = storage.list(f"{output}/_progress")
    marker = json.loads(storage.read_text(marker_uri))
    assert marker["videos"] == {"v-paired": "paired", "v-filtered": "filtered", "v-judge-failed": "failed", "v-broken": "failed"}
    assert marker["judge_retry"] == ["v-judge-failed"]


def test_a_video_with_fewer_than_two_judged_candidates_is_a_judge_failure():
    """Two candidates, the second one's C1 call failed: no total, so no pair; the row is a failure that
    names the judge's reason and the call's failure, and the next run judges it again."""
    outcome = video_outcome(CASES["judge_failed"](), judge_failed())
    assert outcome.status == "failed" and outcome.failure_stage == "judge" and outcome.judge_retry
    assert outcome.reason.startswith("fewer than two judged candidates (1 of 2)") and "c1: HTTP 500" in outcome.reason


def test_a_row_neither_judged_nor_failed_is_an_error():
    row = {**CASES["paired"](), "judgement": None}
    with pytest.raises(ValueError, match="video 'v-paired' reached the writer neither judged nor failed"):
        video_outcome(row, None)


def test_a_judgement_reaches_the_writer_as_the_judge_stage_made_it(tmp_path):
    """The judge stage's ``judgement`` column, parsed as the writer parses it, is the judge's verdict field for field:
    the rules judge's verdict from the real stage, and LLM verdicts with failed criteria, costs and no pair."""
    texts = ["a red circle moves right", "a red shape", "a green car"]
    clip_captions = ["a red circle moves right", "the circle stops"]
    sampled = {"video_id": "v1", "video": "s3://videos/v1.mp4", "prompt": PROMPT, "candidates": pack_candidates(_sampled(*texts)),
               "clip_captions": json.dumps(clip_captions), "generator": "warm-vlm", "sample_s": 2.5}  # fmt: skip
    settings = JudgeStageSettings(judge=JudgeConfig(backend="rules", min_margin=0), output=str(tmp_path), storage=StorageConfig(), cache_flush_s=0.5)
    (judged,) = asyncio.run(JudgeStage(settings)(to_table([sampled], SAMPLED))).to_pylist()
    direct = asyncio.run(Judge(settings.judge).judge_video(JudgeInput(video_id="v1", prompt=PROMPT, candidates=texts, clip_captions=clip_captions)))
    assert unpack_judgement(judged["judgement"]).to_dict() == direct.to_dict()
    for judgement in (paired(), filtered(), judge_failed()):
        (row,) = to_table([{"video_id": judgement.video_id, "judgement": pack_judgement(judgement)}], JUDGED).to_pylist()
        assert unpack_judgement(row["judgement"]).to_dict() == judgement.to_dict()


def test_the_closing_line_says_where_the_pairs_are_or_that_there_are_none():
    from synpo.pairgen.summary import RunSummary

    summary = RunSummary(output="s3://b/run", videos_in=3, already_done=0, totals={"paired": 2, "failed": 1})
    assert summary.where_pairs_are() == "pairs: 2 in s3://b/run/pairs/  (summary: s3://b/run/summary.json)"
    summary.totals = {"filtered": 2, "failed": 1}
    assert summary.where_pairs_are().startswith("pairs: 0 — no video was paired (1 failed, 2 filtered); nothing in s3://b/run/pairs/")
