"""An async client for any OpenAI-compatible chat endpoint (hosted APIs, vLLM, Ray Serve LLM).

One call = one ``POST {base_url}/chat/completions`` with ``temperature: 0`` and, by config, a
``response_format`` asking for the criterion's JSON schema (its reasoning bounded to
``max_reasoning_chars``, so a constrained reply always reaches its scores). Around each call:

- **bounds**: at most ``max_concurrency`` calls in flight (a semaphore held only while a request is
  on the wire, not while backing off), request starts paced to ``requests_per_s``, and a
  ``tokens_per_min`` budget (see :mod:`synpo.judging.ratelimit`);
- **retries**: 429, 408, 5xx, timeouts (``timeout_s`` wall clock per attempt) and connection errors
  are retried up to ``max_retries`` times, waiting ``uniform(0, min(backoff_max_s, backoff_base_s * 2**k))``
  (full jitter) or the server's ``Retry-After``, whichever is longer; a reply without valid scores
  is retried up to ``max_malformed_retries`` times; other 4xx are not retried;
- **result**: :meth:`ChatClient.ask` never raises for a failed call. It returns a :class:`CallResult`
  with the validated answer or the failure reason, and the tokens of every attempt (all are paid for).

The API key is read from the environment variable the config names and lives only in the HTTP
session's default headers: it is not an attribute, not in ``repr``, not logged. Every text that comes
back from the server (reply content, error bodies) passes through :func:`redact` in ``_attempt``
before anything is built from it, so a server that echoes the ``Authorization`` header cannot put
the key into a failure message, a log line, the judge's reasoning or a scores file.

HTTP goes through ``aiohttp`` (installed with ``ray[serve]``), not ``httpx``: measured here against
the loopback server with 100 ms latency, ``httpx.AsyncClient`` 0.28 managed 76 calls/s at 64 in
flight (9.6 ms of client CPU per call in its connection pool; encode/httpx#3215), aiohttp ~550
(0.15 ms per call). See docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import functools
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from synpo.config.loader import ConfigError
from synpo.errors import UserError
from synpo.judging.config import JudgeConfig
from synpo.judging.parse import MalformedAnswer, parse_answer
from synpo.judging.prompts import SCHEMA_NAMES, answer_schema
from synpo.judging.ratelimit import RequestPacer, TokenBucket

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429})  # and every 5xx
BEARER_TOKEN = re.compile(r"Bearer\s+\S+", re.IGNORECASE)


def redact(text: str, api_key: str | None) -> str:
    """``text`` without the API key and without any ``Bearer <token>`` (whatever token a server echoes)."""
    text = BEARER_TOKEN.sub("Bearer <redacted>", text)
    return text.replace(api_key, "<api key>") if api_key else text


@dataclasses.dataclass(frozen=True)
class CallResult:
    """The outcome of one judge call after all its attempts: ``answer`` or ``failure`` (never both)."""

    answer: Any  # the parsed reply (a JudgeAnswer for judge criteria), None when the call failed
    failure: str | None
    attempts: int
    prompt_tokens: int
    completion_tokens: int


@dataclasses.dataclass(frozen=True)
class _Attempt:
    text: str | None  # the reply's message content when the server answered 200
    error: str | None
    retryable: bool
    retry_after_s: float | None
    prompt_tokens: int
    completion_tokens: int


class JudgeUnreachable(UserError):
    """The judge server cannot be reached, or refuses the key: a job that needs it stops before doing work."""


def read_api_key(config: JudgeConfig) -> str | None:
    """The key from ``$<api_key_env>``; missing is an error unless the endpoint is on loopback."""
    key = os.environ.get(config.api_key_env) or None
    if key is None and not config.is_loopback:
        raise ConfigError(
            f"judge: environment variable {config.api_key_env} is not set; it must hold the API key for {config.base_url} "
            f"(set it, or point api_key_env at the variable that holds the key)"
        )
    return key


def retry_after_s(header: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or unreadable."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        when = email.utils.parsedate_to_datetime(header) if email.utils.parsedate_tz(header) else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


class ChatClient:
    """Bounded, rate-limited, retrying judge calls against ``config.base_url``. Build one per event loop."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        api_key = read_api_key(config)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._redact = lambda text: redact(text, api_key)
        self._in_flight = asyncio.Semaphore(config.max_concurrency)
        self._pacer = RequestPacer(config.requests_per_s) if config.requests_per_s else None
        self._tokens = TokenBucket(config.tokens_per_min) if config.tokens_per_min else None
        self._random = random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._url = f"{config.base_url}/chat/completions"

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.config.base_url!r}, model={self.config.model!r}, max_concurrency={self.config.max_concurrency})"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created inside the running loop that will use it
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self.config.max_concurrency),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
                trust_env=not self.config.is_loopback,  # proxies from the environment, never for loopback
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def request_body(self, messages: list[dict], criterion: str, num_candidates: int = 1) -> dict:
        """The body of one call for a judge criterion (its answer schema sized for ``num_candidates``)."""
        schema = answer_schema(criterion, num_candidates, self.config.max_reasoning_chars)
        return self.json_request_body(messages, SCHEMA_NAMES[criterion], schema)

    def json_request_body(self, messages: list[dict], schema_name: str, schema: dict) -> dict:
        body: dict = {"model": self.config.model, "messages": messages, "temperature": 0, "max_tokens": self.config.max_tokens}
        if self.config.response_format == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema, "strict": True}}
        elif self.config.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    async def ask(self, messages: list[dict], criterion: str, num_candidates: int = 1) -> CallResult:
        """Send one judge call (with retries) and validate its reply for ``criterion``. Never raises for a failed call."""
        body = self.request_body(messages, criterion, num_candidates)
        return await self.ask_body(body, criterion, functools.partial(parse_answer, criterion=criterion, num_candidates=num_candidates))

    async def ask_json(self, messages: list[dict], schema_name: str, schema: dict, parse: Callable[[str], Any]) -> CallResult:
        """Any JSON-answer call: the reply must match ``schema`` (sent as the response format, by config) and
        ``parse`` turns its text into the answer or raises :class:`MalformedAnswer`. Never raises for a failed call."""
        return await self.ask_body(self.json_request_body(messages, schema_name, schema), schema_name, parse)

    async def ask_body(self, body: dict, label: str, parse: Callable[[str], Any]) -> CallResult:
        """Send ``body`` with the retry policy of the module docstring; ``parse`` validates the reply text."""
        estimate = sum(len(message["content"]) for message in body["messages"]) // 4 + self.config.max_tokens
        prompt_tokens = completion_tokens = attempts = transport_retries = malformed_retries = 0
        while True:
            attempts += 1
            attempt = await self._attempt(body, estimate)
            prompt_tokens += attempt.prompt_tokens
            completion_tokens += attempt.completion_tokens
            error, retryable, budget_left = attempt.error, attempt.retryable, transport_retries < self.config.max_retries
            if attempt.text is not None:
                try:
                    return CallResult(parse(attempt.text), None, attempts, prompt_tokens, completion_tokens)
                except MalformedAnswer as problem:
                    error, retryable = f"malformed answer: {problem}", True
                    budget_left = malformed_retries < self.config.max_malformed_retries
                    malformed_retries += 1
            else:
                transport_retries += 1 if retryable else 0
            if not (retryable and budget_left):
                failure = f"{error} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
                logger.warning("judge %s call failed: %s", label, failure)
                return CallResult(None, failure, attempts, prompt_tokens, completion_tokens)
            delay_s = self._random.uniform(0, min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempts - 1)))
            delay_s = max(delay_s, attempt.retry_after_s or 0.0)
            logger.debug("judge %s attempt %d failed (%s); retrying in %.2f s", label, attempts, error, delay_s)
            await asyncio.sleep(delay_s)

    async def check_reachable(self) -> None:
        """Raise :class:`JudgeUnreachable` unless the server answers ``GET {base_url}/models`` (any answer but 401/403
        and 5xx counts: a server without that route still shows it is there). For jobs that cannot do without the judge."""
        try:
            async with self._http().get(f"{self.config.base_url}/models") as response:
                status, content = response.status, await response.read()
        except TimeoutError:
            raise JudgeUnreachable(f"judge {self.config.base_url}: no answer within {self.config.timeout_s:g} s") from None
        except aiohttp.ClientError as error:
            raise JudgeUnreachable(f"judge {self.config.base_url} is unreachable: {self._redact(f'{type(error).__name__}: {error}')}") from None
        if status in (401, 403) or status >= 500:
            excerpt = self._redact(content[:200].decode("utf-8", errors="replace").strip())
            raise JudgeUnreachable(f"judge {self.config.base_url} answered HTTP {status}: {excerpt} (check {self.config.api_key_env} and the server)")

    async def _attempt(self, body: dict, estimate: int) -> _Attempt:
        """One HTTP attempt, its texts redacted: the one place server text enters (a server may echo the
        key in an error body, a reply or an exception message)."""
        attempt = await self._send(body, estimate)
        return dataclasses.replace(
            attempt,
            text=None if attempt.text is None else self._redact(attempt.text),
            error=None if attempt.error is None else self._redact(attempt.error),
        )

    async def _send(self, body: dict, estimate: int) -> _Attempt:
        async with self._in_flight:
            if self._pacer is not None:
                await self._pacer.wait()
            reserved = await self._tokens.take(estimate) if self._tokens is not None else 0
            try:  # the session's ClientTimeout(total=timeout_s) bounds connect + send + the whole reply
                async with self._http().post(self._url, json=body) as response:
                    status, headers, content = response.status, response.headers, await response.read()
            except TimeoutError:
                return _Attempt(None, f"timeout after {self.config.timeout_s:g} s", True, None, 0, 0)
            except aiohttp.ClientError as error:
                return _Attempt(None, f"connection error: {type(error).__name__}: {error}", True, None, 0, 0)
        attempt = _read_response(status, headers.get("Retry-After"), content)
        if self._tokens is not None and attempt.error is None:
            self._tokens.refund(reserved - attempt.prompt_tokens - attempt.completion_tokens)
        return attempt


def _read_response(status: int, retry_after: str | None, content: bytes) -> _Attempt:
    """Classify one HTTP response: the reply text and usage, or an error saying whether to retry."""
    if status != 200:
        excerpt = content[:200].decode("utf-8", errors="replace").strip()
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        return _Attempt(None, error, status in RETRYABLE_STATUS or status >= 500, retry_after_s(retry_after), 0, 0)
    try:
        data = json.loads(content)
        usage = data.get("usage") or {}
        prompt_tokens, completion_tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        text = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as problem:
        excerpt = content[:120].decode("utf-8", errors="replace")
        return _Attempt(None, f"unreadable response body ({type(problem).__name__}): {excerpt!r}", True, None, 0, 0)
    if not isinstance(text, str):
        return _Attempt(None, f"reply has no text content: {text!r}", True, None, prompt_tokens, completion_tokens)
    return _Attempt(text, None, False, None, prompt_tokens, completion_tokens)
