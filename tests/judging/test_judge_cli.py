"""``synpo judge score``: JSONL in, one judgement per video out, with the rules and the openai backends."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from synpo.cli import judge_cmd
from synpo.cli.judge_cmd import JudgeInputError, default_cache_uri, read_judge_inputs
from synpo.judging import VideoJudgement
from synpo.testing.loopback_server import FaultPlan
from synpo.toy.judge_check import toy_judge_inputs


def run_cli(argv: list[str]) -> int:
    """Parse and run like ``synpo`` does (``synpo.cli.main`` registers ``judge_cmd`` the same way)."""
    parser = argparse.ArgumentParser(prog="synpo")
    judge_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def write_candidates(path, count: int = 3) -> list:
    videos, _ = toy_judge_inputs(count, seed=14, altered_per_scene=3)
    rows = [{"id": video.video_id, "prompt": video.prompt, "candidates": video.candidates, "clip_captions": video.clip_captions} for video in videos]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def test_rules_backend_round_trip(tmp_path, capsys):
    rows = write_candidates(tmp_path / "candidates.jsonl")
    out = tmp_path / "scores.jsonl"
    config = tmp_path / "judge.yaml"
    config.write_text("backend: rules\nmin_margin: 2\n")
    assert run_cli(["judge", "score", "--input", str(tmp_path / "candidates.jsonl"), "--out", str(out), "--config", str(config), "--no-progress", "weights.c3=0.5"]) == 0
    verdicts = [VideoJudgement.from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    assert [verdict.video_id for verdict in verdicts] == [row["id"] for row in rows]
    assert all(verdict.weights == {"c1": 1.1, "c2": 1.0, "c3": 0.5} and verdict.backend == "rules" for verdict in verdicts)
    assert all(len(verdict.candidates) == 4 and verdict.pair.chosen_index is not None for verdict in verdicts)
    assert "judged 3 videos with rules judge 'rules-1'" in capsys.readouterr().out
    assert not (tmp_path / "scores.judge-cache").exists()  # the rules judge needs no cache


def test_openai_backend_against_the_loopback_server_and_rerun_from_cache(tmp_path, judge_server, capsys):
    write_candidates(tmp_path / "candidates.jsonl", count=2)
    server = judge_server(FaultPlan(rate_429=0.2, retry_after_s=0.01, seed=1))
    argv = [
        "judge", "score", "--input", str(tmp_path / "candidates.jsonl"), "--out", str(tmp_path / "scores.jsonl"), "--no-progress",
        "backend=openai", f"base_url={server.base_url}", "model=loopback-judge", "backoff_base_s=0.005", "max_concurrency=4",
    ]
    assert run_cli(argv) == 0
    first = (tmp_path / "scores.jsonl").read_text()
    assert all(json.loads(line)["failed_calls"] == 0 for line in first.splitlines())
    assert list((tmp_path / "scores.judge-cache").glob("judgements-*.jsonl"))
    requests = server.stats()["requests"]
    assert run_cli(argv) == 0
    assert server.stats()["requests"] == requests  # everything came from the cache
    assert "0 calls, 18 cache hits" in capsys.readouterr().out
    assert verdicts_without_costs((tmp_path / "scores.jsonl").read_text()) == verdicts_without_costs(first)


def verdicts_without_costs(text: str) -> list[dict]:
    costs = ("calls", "http_attempts", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd")
    return [{key: value for key, value in json.loads(line).items() if key not in costs} for line in text.splitlines()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "a", "prompt": "p", "candidates": ["x"], "clip_captions": ["y"]}\nnot json\n', "in.jsonl: line 2 is not valid JSON"),
        ('{"prompt": "p", "candidates": ["x"], "clip_captions": ["y"]}\n', "in.jsonl: line 1: expected an object with id"),
        ('{"id": "a", "prompt": "p", "candidates": [], "clip_captions": ["y"]}\n', "in.jsonl: line 1 (id 'a'): candidates: List should have at least 1 item"),
        ('{"id": "a", "prompt": "p", "candidates": ["x"]}\n', "in.jsonl: line 1 (id 'a'): clip_captions: Field required"),
        ('{"id": "a", "prompt": "p", "candidates": ["x"], "clip_captions": ["y"], "extra": 1}\n', "extra: Extra inputs are not permitted"),
        ('{"id": "a", "prompt": "p", "candidates": ["x"], "clip_captions": ["y"]}\n' * 2, "line 2: id 'a' already used on line 1"),
        ("\n", "in.jsonl holds no rows"),
    ],
)
def test_bad_rows_name_the_line(text, message):
    with pytest.raises(JudgeInputError, match=re.escape(message)):
        read_judge_inputs(text, "in.jsonl")


def test_default_cache_sits_beside_the_output():
    assert default_cache_uri("runs/x/scores.jsonl") == "runs/x/scores.judge-cache"
    assert default_cache_uri("s3://bucket/run/scores.jsonl") == "s3://bucket/run/scores.judge-cache"
    assert default_cache_uri("scores") == "scores.judge-cache"
