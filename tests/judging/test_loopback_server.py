"""The loopback judge server itself: OpenAI protocol, counters, runtime fault changes, subprocess mode."""

from __future__ import annotations

import json

import httpx
from judge_servers import openai_config

from synpo.judging.client import ChatClient
from synpo.judging.prompts import PROMPT_VERSION, consistency_messages, factuality_messages, fidelity_messages
from synpo.testing.judge_requests import parse_user_message
from synpo.testing.loopback_app import judge_reply
from synpo.testing.loopback_server import FaultPlan, loopback_server_process


def post(base_url: str, messages: list[dict]) -> httpx.Response:
    return httpx.post(f"{base_url}/chat/completions", json={"model": "m", "messages": messages}, trust_env=False, timeout=10)


def test_prompts_round_trip_through_the_server_parser():
    candidate, clips = "A red circle moves left.\n\nIt stops.", ["On black. A red circle.", "", "It stops."]
    assert parse_user_message(factuality_messages(candidate, clips)[-1]["content"]) == ("c1", {"candidate": candidate, "clip_captions": clips})
    assert parse_user_message(fidelity_messages("Describe it.", candidate)[-1]["content"]) == ("c2", {"prompt": "Describe it.", "candidate": candidate})
    assert parse_user_message(consistency_messages(["a", "", "c"])[-1]["content"]) == ("c3", {"candidates": ["a", "", "c"]})
    assert len(PROMPT_VERSION) == 12
    assert parse_user_message(fidelity_messages("p", "c")[-1]["content"], "c2") == ("c2", {"prompt": "p", "candidate": "c"})
    reply = judge_reply(*parse_user_message(consistency_messages(["a red circle", "a red circle", "a blue square"])[-1]["content"]))
    assert set(reply) == {"reasoning", "the score of caption 1", "the score of caption 2", "the score of caption 3"}


def test_openai_response_format_and_counters(judge_server):
    server = judge_server(FaultPlan(latency_ms=1))
    response = post(server.base_url, fidelity_messages("Describe the video.", "A red circle moves left, then stops."))
    data = response.json()
    assert response.status_code == 200 and data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["role"] == "assistant" and data["usage"]["prompt_tokens"] > 0
    assert httpx.get(f"{server.base_url}/models", trust_env=False).json()["data"][0]["id"] == "loopback-judge"
    stats = server.stats()
    assert stats["requests"] == 1 and stats["criteria"] == {"c2": 1} and len(stats["body_hashes"]) == 1
    assert httpx.get(server.base_url.removesuffix("/v1") + "/stats", trust_env=False).json()["requests"] == 1


def test_criterion_comes_from_the_json_schema_name(judge_server):
    """The client names each criterion's schema; the server reads the criterion from that name, not from the prompt."""
    server = judge_server()
    client = ChatClient(openai_config(server))
    body = client.request_body(consistency_messages(["a red circle", "a red circle", "a blue square"]), "c3", num_candidates=3)
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, trust_env=False, timeout=10)
    assert response.status_code == 200 and server.stats()["criteria"] == {"c3": 1}
    assert set(json.loads(response.json()["choices"][0]["message"]["content"])) == {"reasoning", *(f"the score of caption {n}" for n in (1, 2, 3))}
    mismatched = client.request_body(fidelity_messages("Describe it.", "a red circle"), "c1")  # a C1 schema on a C2 prompt
    response = httpx.post(f"{server.base_url}/chat/completions", json=mismatched, trust_env=False, timeout=10)
    assert response.status_code == 400 and "not a c1 judge prompt" in response.json()["error"]["message"]
    unknown = {**body, "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": {}}}}
    response = httpx.post(f"{server.base_url}/chat/completions", json=unknown, trust_env=False, timeout=10)
    assert response.status_code == 400 and "unknown response schema 'weather'" in response.json()["error"]["message"]


def test_not_a_judge_prompt_is_a_400(judge_server):
    server = judge_server()
    response = post(server.base_url, [{"role": "user", "content": "What is the capital of France?"}])
    assert response.status_code == 400 and "not a judge prompt" in response.json()["error"]["message"]


def test_faults_and_reset_over_http(judge_server):
    server = judge_server()
    root = server.base_url.removesuffix("/v1")
    assert httpx.post(f"{root}/faults", json={"rate_500": 1.0}, trust_env=False).json()["rate_500"] == 1.0
    assert post(server.base_url, fidelity_messages("p", "c")).status_code == 500
    assert httpx.post(f"{root}/faults", json={"rate_500": 2.0}, trust_env=False).status_code == 400
    httpx.post(f"{root}/reset", trust_env=False)
    assert server.stats()["requests"] == 0


def test_script_applies_per_distinct_body(judge_server):
    server = judge_server(FaultPlan(script=["429", "500"], retry_after_s=7))
    messages = fidelity_messages("p", "a caption")
    first = post(server.base_url, messages)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert post(server.base_url, fidelity_messages("p", "another caption")).status_code == 429
    assert post(server.base_url, messages).status_code == 500
    assert post(server.base_url, messages).status_code == 200


def test_subprocess_mode():
    with loopback_server_process(FaultPlan(latency_ms=1)) as base_url:
        assert post(base_url, factuality_messages("a red circle", ["a red circle"])).status_code == 200
        assert httpx.get(base_url.removesuffix("/v1") + "/stats", trust_env=False).json()["requests"] == 1
