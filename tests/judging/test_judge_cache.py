"""The judge cache: a rerun makes zero calls, answers persist as JSONL shards (local and S3), failures are asked again."""

from __future__ import annotations

import asyncio

from judge_servers import openai_config

from synpo.judging import Judge, JudgementCache
from synpo.testing.loopback_server import FaultPlan
from synpo.toy.judge_check import toy_judge_inputs


def judge_with_cache(config, videos, cache: JudgementCache) -> list:
    async def run() -> list:
        async with Judge(config, cache) as judge:  # leaving flushes new answers as a shard
            return await judge.judge_videos(videos)

    return asyncio.run(run())


def scores(verdicts) -> list:
    return [[(c.c1, c.c2, c.c3) for c in verdict.candidates] for verdict in verdicts]


def test_rerun_makes_zero_calls(judge_server, tmp_path):
    server = judge_server()
    config = openai_config(server)
    videos, _ = toy_judge_inputs(3, seed=9, altered_per_scene=3)
    first = judge_with_cache(config, videos, JudgementCache(str(tmp_path / "cache")))
    calls = server.stats()["requests"]
    assert calls == 3 * (2 * 4 + 1)
    second = judge_with_cache(config, videos, JudgementCache(str(tmp_path / "cache")))  # a new process would do the same
    assert server.stats()["requests"] == calls
    assert all(verdict.calls == 0 and verdict.cache_hits == 9 and verdict.prompt_tokens == 0 for verdict in second)
    assert scores(second) == scores(first) and [v.pair for v in second] == [v.pair for v in first]
    assert len(list((tmp_path / "cache").glob("judgements-*.jsonl"))) == 1  # nothing new to write on the rerun


def test_key_covers_model_prompt_version_and_inputs(judge_server, tmp_path):
    server = judge_server()
    videos, _ = toy_judge_inputs(1, seed=9, altered_per_scene=1)
    cache = JudgementCache(str(tmp_path / "cache"))
    judge_with_cache(openai_config(server), videos, cache)
    judge_with_cache(openai_config(server, model="another-judge"), videos, cache)
    assert server.stats()["requests"] == 2 * 5  # another model: nothing reused
    changed = [videos[0].model_copy(update={"prompt": "Describe the video briefly."})]
    judge_with_cache(openai_config(server), changed, cache)
    assert server.stats()["requests"] == 2 * 5 + 2  # only C2 (which shows the prompt) is asked again


def test_failures_are_not_cached_and_are_asked_again(judge_server, tmp_path):
    server = judge_server(FaultPlan(rate_500=1.0, only_criteria=["c1"]))
    videos, _ = toy_judge_inputs(1, seed=10, altered_per_scene=2)
    first = judge_with_cache(openai_config(server, max_retries=0), videos, JudgementCache(str(tmp_path / "cache")))
    assert first[0].failed_calls == 3
    server.set_faults(FaultPlan())
    server.reset()
    second = judge_with_cache(openai_config(server, max_retries=0), videos, JudgementCache(str(tmp_path / "cache")))
    assert server.stats()["criteria"] == {"c1": 3} and second[0].cache_hits == 4 and second[0].failed_calls == 0


def test_writers_sharing_a_folder_write_separate_shards(tmp_path):
    uri = str(tmp_path / "shared")
    first, second = JudgementCache(uri), JudgementCache(uri)
    first.put("a", {"scores": [1], "reasoning": "r"})
    second.put("b", {"scores": [2], "reasoning": "r"})
    shards = {first.flush(), second.flush()}
    assert len(shards) == 2 and all(shard.endswith(".jsonl") for shard in shards)
    reader = JudgementCache(uri)
    assert len(reader) == 2 and reader.get("b")["scores"] == [2]
    assert first.flush() is None  # nothing pending


def test_cache_on_s3(judge_server, s3_storage):
    storage, bucket = s3_storage
    server = judge_server()
    videos, _ = toy_judge_inputs(2, seed=11, altered_per_scene=2)
    uri = f"s3://{bucket}/runs/r1/judge-cache"
    first = judge_with_cache(openai_config(server), videos, JudgementCache(uri, storage))
    assert [shard.rsplit("/", 1)[1].startswith("judgements-") for shard in storage.list(uri)] == [True]
    second = judge_with_cache(openai_config(server), videos, JudgementCache(uri, storage))
    assert server.stats()["requests"] == 2 * 7 and all(verdict.calls == 0 for verdict in second)
    assert scores(second) == scores(first)
