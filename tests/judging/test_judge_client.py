"""The OpenAI-compatible client against the real loopback server: every fault ends in a good score
after retries or in a recorded failure with its reason, never in an exception."""

from __future__ import annotations

import asyncio
import time

import pydantic
import pytest
from judge_servers import openai_config

from synpo.judging.client import CallResult, ChatClient
from synpo.judging.prompts import fidelity_messages
from synpo.testing.loopback_server import FaultPlan, free_port

PROMPT = "Describe this video in detail: the subject matter, the setting, and what happens over time, in order."
CAPTION = "A small red circle moves left across a plain black background, then a blue square appears at the top."


def ask(config, calls: int = 1, criterion: str = "c2") -> list[CallResult]:
    async def run() -> list[CallResult]:
        client = ChatClient(config)
        try:
            return list(await asyncio.gather(*(client.ask(fidelity_messages(PROMPT, f"{CAPTION} ({index})"), criterion) for index in range(calls))))
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_a_clean_call_sends_the_openai_request_and_counts_tokens(judge_server):
    server = judge_server()
    [result] = ask(openai_config(server, max_tokens=256, max_reasoning_chars=200))
    assert result.failure is None and result.attempts == 1 and 0 <= result.answer.scores[0] <= 5
    assert result.prompt_tokens > 100 and result.completion_tokens > 0
    request = server.stats()["last_request"]
    assert request["model"] == "loopback-judge" and request["temperature"] == 0 and request["max_tokens"] == 256
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    properties = request["response_format"]["json_schema"]["schema"]["properties"]
    assert properties["score"]["enum"] == [0, 1, 2, 3, 4, 5]
    assert properties["reasoning"] == {"type": "string", "maxLength": 200}


def test_the_reasoning_bound_must_fit_in_max_tokens_or_be_left_out(judge_server):
    with pytest.raises(pydantic.ValidationError, match=r"max_tokens \(256\) must be at least max_reasoning_chars \(1000\)"):
        openai_config("http://127.0.0.1:1/v1", max_tokens=256)
    server = judge_server()
    ask(openai_config(server, max_tokens=256, max_reasoning_chars=None))
    assert server.stats()["last_request"]["response_format"]["json_schema"]["schema"]["properties"]["reasoning"] == {"type": "string"}


def test_response_format_can_be_json_object_or_left_out(judge_server):
    server = judge_server()
    ask(openai_config(server, response_format="json_object"))
    assert server.stats()["last_request"]["response_format"] == {"type": "json_object"}
    ask(openai_config(server, response_format="none"))
    assert "response_format" not in server.stats()["last_request"]


def test_429_waits_for_retry_after_then_succeeds(judge_server):
    server = judge_server(FaultPlan(script=["429"], retry_after_s=0.3))
    [result] = ask(openai_config(server))
    assert result.answer is not None and result.attempts == 2
    first, second = server.stats()["request_times"]
    assert second - first >= 0.29  # Retry-After honoured although the backoff would have been ~5 ms


def test_500s_are_retried(judge_server):
    server = judge_server(FaultPlan(script=["500", "500"]))
    [result] = ask(openai_config(server, max_retries=2))
    assert result.answer is not None and result.attempts == 3


def test_retries_run_out_into_a_recorded_failure(judge_server):
    server = judge_server(FaultPlan(rate_500=1.0))
    [result] = ask(openai_config(server, max_retries=2))
    assert result.answer is None and result.attempts == 3 and server.stats()["requests"] == 3
    assert result.failure.startswith("HTTP 500: ") and result.failure.endswith("(gave up after 3 attempts)")


def test_a_hanging_server_times_out_and_the_retry_succeeds(judge_server):
    server = judge_server(FaultPlan(script=["timeout"], hang_s=5.0))
    start = time.monotonic()
    [result] = ask(openai_config(server, timeout_s=0.3))
    assert result.answer is not None and result.attempts == 2
    assert time.monotonic() - start < 2.0
    assert server.stats()["in_flight"] == 0  # the hung handler was cancelled when the client gave up


def test_timeouts_every_time_end_in_a_failure(judge_server):
    server = judge_server(FaultPlan(rate_timeout=1.0, hang_s=5.0))
    [result] = ask(openai_config(server, timeout_s=0.2, max_retries=1))
    assert result.answer is None and result.failure == "timeout after 0.2 s (gave up after 2 attempts)"


def test_malformed_reply_is_retried_then_recorded(judge_server):
    server = judge_server(FaultPlan(script=["malformed"]))
    [result] = ask(openai_config(server, max_malformed_retries=1))
    assert result.answer is not None and result.attempts == 2
    server = judge_server(FaultPlan(rate_malformed=1.0))
    [result] = ask(openai_config(server, max_malformed_retries=1))
    assert result.answer is None and result.attempts == 2
    assert result.failure.startswith("malformed answer: no JSON object in the reply 'The caption looks mostly right")
    assert result.prompt_tokens > 0  # failed attempts are paid for and counted


def test_out_of_range_score_is_a_malformed_answer(judge_server):
    server = judge_server(FaultPlan(rate_out_of_range=1.0))
    [result] = ask(openai_config(server, max_malformed_retries=0))
    assert result.failure == "malformed answer: score is 9, outside 0..5 (gave up after 1 attempt)"
    server = judge_server(FaultPlan(script=["out_of_range"]))
    [result] = ask(openai_config(server, max_malformed_retries=1))
    assert result.answer is not None


def test_fenced_and_prose_wrapped_replies_are_parsed(judge_server):
    for style in ("fenced", "prose"):
        [result] = ask(openai_config(judge_server(FaultPlan(answer_style=style))))
        assert result.answer is not None, style


def test_connection_refused_is_retried_then_recorded():
    config = openai_config(f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    [result] = ask(config)
    assert result.answer is None and result.attempts == 3
    assert result.failure.startswith("connection error: ClientConnectorError")


def test_client_errors_other_than_429_are_not_retried(judge_server):
    server = judge_server(FaultPlan(api_key="the-right-key"))
    [result] = ask(openai_config(server))
    assert result.attempts == 1 and result.failure.startswith("HTTP 401: ")


def test_concurrency_bound_holds(judge_server):
    """40 calls, 5 allowed in flight, 30 ms each: the server never sees more than 5 at once."""
    server = judge_server(FaultPlan(latency_ms=30))
    results = ask(openai_config(server, max_concurrency=5), calls=40)
    assert all(result.answer is not None for result in results)
    assert server.stats()["max_in_flight"] == 5


def test_request_rate_bound_holds(judge_server):
    """40 calls at 20 requests/s (16 allowed in flight): the client starts them >= 50 ms apart, so the
    server sees at most 21 in any one-second window (22 allowed for network jitter) and the run
    lasts at least 39/20 = 1.95 s."""
    server = judge_server(FaultPlan(latency_ms=5))
    start = time.monotonic()
    results = ask(openai_config(server, max_concurrency=16, requests_per_s=20), calls=40)
    elapsed = time.monotonic() - start
    assert all(result.answer is not None for result in results)
    times = sorted(server.stats()["request_times"])
    busiest_second = max(sum(1 for other in times if moment <= other < moment + 1.0) for moment in times)
    assert busiest_second <= 22 and elapsed >= 1.9
    assert (len(times) - 1) / (times[-1] - times[0]) <= 20 * 1.05  # the mean rate, with 5% slack


def test_token_budget_holds_calls_back_until_usage_is_refunded(judge_server):
    """Each call reserves ~chars/4 + max_tokens = ~2300 tokens of a 3000-token minute budget, so
    only one call fits at a time; its refund (real usage ~200 tokens) lets the next one start."""
    server = judge_server(FaultPlan(latency_ms=20))
    results = ask(openai_config(server, max_concurrency=4, tokens_per_min=3000, max_tokens=2000), calls=4)
    assert all(result.answer is not None for result in results)
    assert server.stats()["max_in_flight"] == 1


def test_token_bucket_refills_at_the_minute_rate():
    """60,000 tokens/min = 1,000/s: the full bucket goes at once, then 2 x 300 tokens take ~0.6 s."""
    from synpo.judging.ratelimit import TokenBucket

    async def run() -> float:
        bucket = TokenBucket(60_000)
        await bucket.take(60_000)
        start = time.monotonic()
        await bucket.take(300)
        await bucket.take(300)
        return time.monotonic() - start

    assert 0.55 <= asyncio.run(run()) < 0.9
