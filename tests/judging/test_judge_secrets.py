"""The API key: read from the named environment variable, sent to the server, never shown anywhere else."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from judge_servers import openai_config

from synpo.config.loader import ConfigError
from synpo.judging import Judge, JudgeConfig
from synpo.judging.cache import JudgementCache
from synpo.judging.client import ChatClient, redact
from synpo.testing.loopback_server import FaultPlan
from synpo.toy.judge_check import toy_judge_inputs

KEY = "sk-test-6f1d0c9a-never-print-me"


def test_key_is_sent_but_never_appears_in_output_reprs_or_logs(judge_server, monkeypatch, caplog):
    monkeypatch.setenv("SYNPO_TEST_JUDGE_KEY", KEY)
    server = judge_server(FaultPlan(api_key=KEY, script=["500"]))  # a retry, so the retry path logs too
    config = openai_config(server, api_key_env="SYNPO_TEST_JUDGE_KEY")
    videos, _ = toy_judge_inputs(2, seed=12, altered_per_scene=2)
    caplog.set_level(logging.DEBUG)

    async def run():
        judge = Judge(config)
        verdicts = await judge.judge_videos(videos)
        texts = [repr(judge), str(judge), repr(judge._client), repr(config), str(config), config.model_dump_json()]
        await judge.aclose()
        return verdicts, texts

    verdicts, texts = asyncio.run(run())
    assert all(verdict.failed_calls == 0 for verdict in verdicts)  # the server only answers with the right key
    assert all(verdict.http_attempts == 2 * verdict.calls for verdict in verdicts)
    for text in [*texts, json.dumps([verdict.to_dict() for verdict in verdicts]), caplog.text]:
        assert KEY not in text


def test_a_wrong_key_is_a_recorded_failure_that_does_not_echo_the_key(judge_server, monkeypatch, caplog):
    monkeypatch.setenv("SYNPO_TEST_JUDGE_KEY", KEY)
    server = judge_server(FaultPlan(api_key="a-different-key"))
    client = ChatClient(openai_config(server, api_key_env="SYNPO_TEST_JUDGE_KEY"))
    caplog.set_level(logging.DEBUG)

    async def run():
        try:
            return await client.ask([{"role": "user", "content": "Criterion: factuality.\nhello"}], "c1")
        finally:
            await client.aclose()

    result = asyncio.run(run())
    assert result.failure.startswith("HTTP 401") and KEY not in result.failure and KEY not in caplog.text


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("SYNPO_TEST_MISSING_KEY", raising=False)
    config = JudgeConfig(backend="openai", base_url="https://judge.example.com/v1", api_key_env="SYNPO_TEST_MISSING_KEY")
    with pytest.raises(ConfigError, match="environment variable SYNPO_TEST_MISSING_KEY is not set"):
        Judge(config)


def test_loopback_needs_no_key(judge_server, monkeypatch):
    monkeypatch.delenv("SYNPO_TEST_MISSING_KEY", raising=False)
    server = judge_server()
    videos, _ = toy_judge_inputs(1, seed=13, altered_per_scene=1)

    async def run():
        async with Judge(openai_config(server, api_key_env="SYNPO_TEST_MISSING_KEY")) as judge:
            return await judge.judge_video(videos[0])

    assert asyncio.run(run()).failed_calls == 0


def test_a_key_echoed_in_an_error_body_is_redacted(monkeypatch):
    monkeypatch.setenv("SYNPO_TEST_JUDGE_KEY", KEY)
    client = ChatClient(JudgeConfig(backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env="SYNPO_TEST_JUDGE_KEY"))
    assert client._redact(f"HTTP 401: Incorrect API key provided: {KEY}") == "HTTP 401: Incorrect API key provided: <api key>"


def test_a_key_echoed_in_a_200_reply_is_redacted_everywhere(judge_server, monkeypatch, caplog, tmp_path):
    """A leaky server quotes 'Authorization: Bearer <key>' in every reply: in the reasoning of valid answers, and in
    malformed prose (its failure message quotes the reply). The key reaches no verdict, scores file, cache or log."""
    monkeypatch.setenv("SYNPO_TEST_JUDGE_KEY", KEY)
    server = judge_server(FaultPlan(api_key=KEY, echo_authorization=True, rate_malformed=0.5, seed=3))
    config = openai_config(server, api_key_env="SYNPO_TEST_JUDGE_KEY", max_malformed_retries=0)
    videos, _ = toy_judge_inputs(2, seed=12, altered_per_scene=2)
    caplog.set_level(logging.DEBUG)

    async def run():
        async with Judge(config, JudgementCache(str(tmp_path / "cache"))) as judge:
            return await judge.judge_videos(videos)

    verdicts = asyncio.run(run())
    dumped = json.dumps([verdict.to_dict() for verdict in verdicts])
    reasons = [candidate for verdict in verdicts for candidate in verdict.candidates]
    assert any("malformed answer" in failure for candidate in reasons for failure in candidate.failures.values())
    assert "Authorization: Bearer <redacted>" in dumped  # the echoes reached the output, redacted
    cached = "".join(path.read_text() for path in (tmp_path / "cache").glob("*.jsonl"))
    for text in (dumped, cached, caplog.text):
        assert KEY not in text


def test_redact_removes_the_key_and_any_bearer_token():
    assert redact(f"x {KEY} y", KEY) == "x <api key> y"
    assert redact("Authorization: Bearer sk-other.token_1 rest", None) == "Authorization: Bearer <redacted> rest"
    assert redact(f"auth: bearer {KEY}", KEY) == "auth: Bearer <redacted>"
