"""The loopback judge server's application: fault plan, counters and the OpenAI-compatible routes.

Started by :mod:`synpo.testing.loopback_server` (in a thread, a subprocess, or from the command line).
``POST /v1/chat/completions`` takes the criterion from the request's ``response_format.json_schema.name``
(from the user message's layout when the request has no schema), recovers the inputs from the user
message (both in :mod:`synpo.testing.judge_requests`), runs the rules judge on them and answers in
OpenAI's format with ``usage`` (word counts as tokens). ``GET /v1/models`` lists one
model; ``GET /stats`` returns the counters; ``POST /reset`` clears them; ``POST /faults`` changes
the :class:`FaultPlan` (JSON body with the fields to change).

Faults are drawn per request from a hash of (seed, request body, how many times this exact body was
seen before), so a retry of the same call gets a fresh draw and a run is reproducible whatever the
arrival order. ``FaultPlan.script`` forces the faults of the first attempts of every distinct body
(``["429", "500"]``: each call fails with 429, then 500, then is answered). ``FaultPlan.hold`` (or
``hold_after_answers``) stops answering: requests wait, then get 503 when the hold is lifted. A test
can freeze the judge part-way, kill a job, and check later that no judgement was answered twice
(``answered_hashes`` in the stats).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import Counter
from typing import Literal

import pydantic
from aiohttp import web

from synpo.config.base import StrictModel
from synpo.evaluation.llm_prompts import TEMPLATES as EVAL_TASKS
from synpo.judging.prompts import consistency_key
from synpo.judging.rules import score_consistency, score_factuality, score_fidelity
from synpo.testing import eval_rules
from synpo.testing.judge_requests import parse_user_message, request_criterion

Fault = Literal["ok", "429", "500", "timeout", "malformed", "out_of_range"]
RATE_FIELDS = {"429": "rate_429", "500": "rate_500", "timeout": "rate_timeout", "malformed": "rate_malformed", "out_of_range": "rate_out_of_range"}


class FaultPlan(StrictModel):
    """How the loopback server misbehaves. Rates are probabilities per request and must sum to at most 1."""

    latency_ms: float = pydantic.Field(default=0.0, ge=0, description="delay before every answer, milliseconds")
    rate_429: float = pydantic.Field(default=0.0, ge=0, le=1, description="share of requests answered 429 with Retry-After")
    retry_after_s: float = pydantic.Field(default=0.05, ge=0, description="the Retry-After value sent with a 429, seconds")
    rate_500: float = pydantic.Field(default=0.0, ge=0, le=1, description="share of requests answered 500")
    rate_timeout: float = pydantic.Field(default=0.0, ge=0, le=1, description="share of requests that hang for hang_s before answering")
    hang_s: float = pydantic.Field(default=30.0, ge=0, description="how long a 'timeout' request hangs, seconds")
    rate_malformed: float = pydantic.Field(default=0.0, ge=0, le=1, description="share of replies that are prose without JSON")
    rate_out_of_range: float = pydantic.Field(default=0.0, ge=0, le=1, description="share of replies with a score outside the range")
    only_criteria: list[Literal["c1", "c2", "c3", "detail", "qa_questions", "qa_answers", "qa_judgements"]] = pydantic.Field(
        default_factory=list, description="apply faults only to requests for these criteria (empty = all)"
    )
    script: list[Fault] = pydantic.Field(
        default_factory=list, description="faults of the 1st, 2nd, ... request with the same body; later requests draw by the rates"
    )
    answer_style: Literal["json", "fenced", "prose"] = pydantic.Field(
        default="json", description="bare JSON, JSON in a ```json fence, or JSON with prose around it"
    )
    seed: int = pydantic.Field(default=0, description="seed of the fault draws")
    api_key: str | None = pydantic.Field(default=None, description="if set, requests must send 'Authorization: Bearer <api_key>'")
    echo_authorization: bool = pydantic.Field(
        default=False, description="quote the request's Authorization header in every reply (valid and malformed): a leaky server"
    )
    hold: bool = pydantic.Field(
        default=False,
        description="stop answering: requests wait until hold is lifted, then get 503 (their client may be gone by then)",
    )
    hold_after_answers: int | None = pydantic.Field(
        default=None, ge=0, description="answer this many requests (since the last reset), then behave as if hold were set"
    )

    def holds(self, answered: int) -> bool:
        return self.hold or (self.hold_after_answers is not None and answered >= self.hold_after_answers)

    @pydantic.model_validator(mode="after")
    def _rates_sum(self) -> FaultPlan:
        total = sum(getattr(self, name) for name in RATE_FIELDS.values())
        if total > 1:
            raise ValueError(f"fault rates sum to {total:g}, more than 1")
        return self

    def fault_for(self, body_hash: str, occurrence: int) -> Fault:
        """The fault for the ``occurrence``-th (0-based) request with this body."""
        if occurrence < len(self.script):
            return self.script[occurrence]
        digest = hashlib.sha256(f"{self.seed}:{body_hash}:{occurrence}".encode()).digest()
        draw, cumulative = int.from_bytes(digest[:8], "big") / 2**64, 0.0
        for fault, name in RATE_FIELDS.items():
            cumulative += getattr(self, name)
            if draw < cumulative:
                return fault  # type: ignore[return-value]
        return "ok"


def judge_reply(criterion: str, inputs: dict) -> dict:
    """The rules judge's answer for ``criterion`` on the recovered ``inputs``, in the reply format the prompt asks for
    (an evaluation call's ``criterion`` is its task: see :mod:`synpo.testing.eval_rules`)."""
    if criterion in EVAL_TASKS:
        return eval_rules.reply(criterion, inputs)
    if criterion == "c1":
        score, reasoning = score_factuality(inputs["candidate"], inputs["clip_captions"])
        return {"reasoning": reasoning, "score": score}
    if criterion == "c2":
        score, reasoning = score_fidelity(inputs["prompt"], inputs["candidate"])
        return {"reasoning": reasoning, "score": score}
    scores, reasoning = score_consistency(inputs["candidates"])
    return {"reasoning": reasoning, **{consistency_key(number): score for number, score in enumerate(scores, 1)}}


class ServerState:
    """Counters shared by the server's event loop and the thread that reads them."""

    def __init__(self, faults: FaultPlan) -> None:
        self.lock = threading.Lock()
        self.faults = faults
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = self.in_flight = self.max_in_flight = 0
            self.request_times: list[float] = []
            self.token_times: list[tuple[float, int]] = []
            self.body_hashes: list[str] = []
            self.answered_hashes: list[str] = []  # bodies answered 200 with a judgement: what a judge would bill
            self.answer_slots = 0  # requests past the hold check (counted against hold_after_answers)
            self.occurrences: Counter[str] = Counter()
            self.faults_served: Counter[str] = Counter()
            self.criteria: Counter[str] = Counter()
            self.last_request: dict | None = None

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "request_times": list(self.request_times),
                "token_times": list(self.token_times),
                "body_hashes": list(self.body_hashes),
                "answered_hashes": list(self.answered_hashes),
                "faults_served": dict(self.faults_served),
                "criteria": dict(self.criteria),
                "last_request": self.last_request,
            }


def _words(text: str) -> int:
    return len(text.split())


def build_app(state: ServerState) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body_hash = hashlib.sha256(raw).hexdigest()
        try:
            body = json.loads(raw)
            user_text = next(message["content"] for message in reversed(body["messages"]) if message["role"] == "user")
            (criterion, inputs), problem = parse_user_message(user_text, request_criterion(body)), None
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as error:
            body, inputs, criterion, problem = None, {}, None, error
        with state.lock:
            faults = state.faults
            targeted = criterion is not None and (not faults.only_criteria or criterion in faults.only_criteria)
            fault = faults.fault_for(body_hash, state.occurrences[body_hash]) if targeted else "ok"
            state.occurrences[body_hash] += 1
            state.requests += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            state.request_times.append(time.time())
            state.body_hashes.append(body_hash)
            state.faults_served[fault] += 1
            if criterion is not None:
                state.criteria[criterion] += 1
                state.last_request = body
        try:
            if faults.api_key is not None and request.headers.get("Authorization") != f"Bearer {faults.api_key}":
                return web.json_response({"error": {"message": "invalid API key", "type": "authentication_error"}}, status=401)
            if body is None:
                return web.json_response({"error": {"message": f"bad request: {problem}", "type": "invalid_request"}}, status=400)
            await asyncio.sleep(faults.latency_ms / 1000)
            with state.lock:
                held = state.faults.holds(state.answer_slots)
                state.answer_slots += 0 if held else 1
            if held:
                while state.faults.holds(state.answer_slots):
                    await asyncio.sleep(0.05)
                return web.json_response({"error": {"message": "held, then released", "type": "unavailable"}}, status=503)
            if fault == "429":
                headers = {"Retry-After": f"{faults.retry_after_s:g}"}
                return web.json_response({"error": {"message": "rate limited", "type": "rate_limit"}}, status=429, headers=headers)
            if fault == "500":
                return web.json_response({"error": {"message": "injected server error", "type": "server_error"}}, status=500)
            if fault == "timeout":
                await asyncio.sleep(faults.hang_s)
            answer = judge_reply(criterion, inputs)
            echoed = f" (request had Authorization: {request.headers.get('Authorization')})" if faults.echo_authorization else ""
            if "reasoning" in answer:
                answer["reasoning"] += echoed
            if fault == "out_of_range":
                answer["score" if "score" in answer or criterion in EVAL_TASKS else consistency_key(1)] = 9
            content = json.dumps(answer)
            if fault == "malformed":
                content = "The caption looks mostly right to me; I would give it a four out of five." + echoed
            elif faults.answer_style == "fenced":
                content = f"```json\n{content}\n```"
            elif faults.answer_style == "prose":
                content = f"Here is my assessment.\n{content}\nI hope this helps."
            prompt_tokens = sum(_words(message["content"]) for message in body["messages"])
            completion_tokens = _words(content)
            with state.lock:
                state.token_times.append((time.time(), prompt_tokens + completion_tokens))
                state.answered_hashes.append(body_hash)
            return web.json_response(
                {
                    "id": f"chatcmpl-{body_hash[:16]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "loopback-judge"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
                }
            )
        finally:
            with state.lock:
                state.in_flight -= 1

    async def models(request: web.Request) -> web.Response:
        api_key = state.faults.api_key
        if api_key is not None and request.headers.get("Authorization") != f"Bearer {api_key}":
            return web.json_response({"error": {"message": "invalid API key", "type": "authentication_error"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "loopback-judge", "object": "model", "owned_by": "synpo"}]})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state.snapshot())

    async def reset(request: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"reset": True})

    async def set_faults(request: web.Request) -> web.Response:
        try:
            changed = FaultPlan.model_validate({**state.faults.model_dump(), **(await request.json())})
        except (pydantic.ValidationError, ValueError) as problem:
            return web.json_response({"error": {"message": str(problem)}}, status=400)
        with state.lock:
            state.faults = changed
        return web.json_response(changed.model_dump())

    app = web.Application()
    app.add_routes(
        [
            web.post("/v1/chat/completions", chat),
            web.get("/v1/models", models),
            web.get("/stats", stats),
            web.post("/reset", reset),
            web.post("/faults", set_faults),
        ]
    )
    return app
