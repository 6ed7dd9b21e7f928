"""Judging whole videos through the loopback server: three criteria, failures kept, pairs selected."""

from __future__ import annotations

import asyncio
import json

from judge_servers import openai_config

from synpo.judging import PROMPT_VERSION, Judge, JudgeConfig, JudgeInput
from synpo.testing.loopback_server import FaultPlan
from synpo.toy.judge_check import toy_judge_inputs


def judge_all(config: JudgeConfig, videos: list[JudgeInput]) -> list:
    async def run() -> list:
        async with Judge(config) as judge:
            return await judge.judge_videos(videos)

    return asyncio.run(run())


def test_llm_path_matches_the_rules_judge_it_serves(judge_server):
    """The loopback server answers with the rules judge, so both paths must give the same scores and pairs."""
    videos, _ = toy_judge_inputs(3, seed=2)
    server = judge_server()
    llm = judge_all(openai_config(server, price_prompt_usd_per_1m=1.0, price_completion_usd_per_1m=2.0), videos)
    rules = judge_all(JudgeConfig(backend="rules"), videos)
    for via_http, offline in zip(llm, rules, strict=True):
        assert [(c.c1, c.c2, c.c3, c.total) for c in via_http.candidates] == [(c.c1, c.c2, c.c3, c.total) for c in offline.candidates]
        assert via_http.pair == offline.pair
        assert via_http.calls == 2 * len(via_http.candidates) + 1 == via_http.http_attempts
        assert via_http.prompt_version == PROMPT_VERSION and via_http.judge_model == "loopback-judge"
        expected_cost = (via_http.prompt_tokens * 1.0 + via_http.completion_tokens * 2.0) / 1e6
        assert via_http.prompt_tokens > 0 and abs(via_http.cost_usd - expected_cost) < 1e-8
        assert offline.calls == offline.prompt_tokens == 0 and offline.cost_usd == 0.0
    assert server.stats()["criteria"] == {"c1": 15, "c2": 15, "c3": 3}
    json.dumps([verdict.to_dict() for verdict in llm])  # plain JSON types


def test_a_batch_with_every_fault_completes_with_reasons(judge_server):
    """Faults at high rates: every candidate ends with its three scores or with a failure reason per
    missing score; no exception escapes; selection only uses fully judged candidates."""
    faults = FaultPlan(rate_429=0.15, retry_after_s=0.01, rate_500=0.15, rate_timeout=0.05, hang_s=2.0, rate_malformed=0.1, rate_out_of_range=0.1, seed=3)
    videos, _ = toy_judge_inputs(6, seed=4)
    verdicts = judge_all(openai_config(judge_server(faults), timeout_s=0.25, max_retries=1, max_malformed_retries=0), videos)
    assert len(verdicts) == 6
    reasons = set()
    for verdict in verdicts:
        for candidate in verdict.candidates:
            for criterion in ("c1", "c2", "c3"):
                score = getattr(candidate, criterion)
                assert (score is None) == (criterion in candidate.failures)
                reasons.update(candidate.failures.values())
            assert (candidate.total is None) == bool(candidate.failures)
        judged = {candidate.index for candidate in verdict.candidates if candidate.total is not None}
        if verdict.pair.chosen_index is not None:
            assert {verdict.pair.chosen_index, verdict.pair.rejected_index} <= judged
        assert verdict.failed_calls > 0 or len(judged) == len(verdict.candidates)
    assert any(reason.startswith("HTTP 500") for reason in reasons)
    assert any(reason.startswith("malformed answer") for reason in reasons)


def test_a_failed_consistency_call_leaves_the_video_without_a_pair(judge_server):
    """C3 scores only mean something relative to the other candidates, so a failed C3 call removes
    every candidate from selection."""
    server = judge_server(FaultPlan(rate_500=1.0, only_criteria=["c3"]))
    videos, _ = toy_judge_inputs(1, seed=6)
    [verdict] = judge_all(openai_config(server, max_retries=1), videos)
    assert verdict.failed_calls == 1 and verdict.calls == 2 * len(verdict.candidates) + 1
    assert all(candidate.c3 is None and candidate.c1 is not None and candidate.c2 is not None for candidate in verdict.candidates)
    assert all(candidate.failures["c3"].startswith("HTTP 500") for candidate in verdict.candidates)
    assert verdict.pair.reason == f"fewer than two judged candidates (0 of {len(verdict.candidates)})"


def test_concurrency_bound_holds_across_videos(judge_server):
    server = judge_server(FaultPlan(latency_ms=15))
    videos, _ = toy_judge_inputs(4, seed=8, altered_per_scene=3)
    verdicts = judge_all(openai_config(server, max_concurrency=3), videos)
    assert sum(verdict.calls for verdict in verdicts) == server.stats()["requests"] == 4 * 9
    assert server.stats()["max_in_flight"] == 3
