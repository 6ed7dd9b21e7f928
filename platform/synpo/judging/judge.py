"""Judge a video's candidates on the three criteria and select its preference pair.

    judge = Judge(JudgeConfig(...), cache=JudgementCache("s3://bucket/run/judge-cache"))
    verdict = await judge.judge_video(JudgeInput(video_id=..., prompt=..., candidates=[...], clip_captions=[...]))
    verdicts = await judge.judge_videos(videos)        # many videos at once, under the same bounds
    await judge.aclose()                                # flushes the cache, closes the HTTP client

Per video (``backend: openai``): one C1 call and one C2 call per candidate and one C3 call with all
candidates, all sent concurrently; the client's bounds (concurrency, requests/s, tokens/min) hold
across every video the judge is working on. A failed call never raises: its criterion is ``None``
for that candidate, the reason is kept, and the candidate has no total, so it cannot be selected.
A failed C3 call leaves *every* candidate of the video without C3, hence without a total, and the
video yields no pair ("fewer than two judged candidates (0 of N)"): C3 scores are relative to the
other candidates, so there is nothing sound to fall back on.

``backend: rules`` goes through the same path with :mod:`synpo.judging.rules` in place of HTTP
calls (no cache, no tokens, no cost). ``Judge`` is built from a picklable :class:`JudgeConfig`, so
an async Ray actor can build one in ``__init__`` and ``await judge.judge_video(...)`` in
``async def __call__``; nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from synpo.judging.aggregate import select_pair, total_score
from synpo.judging.cache import JudgementCache, cache_key
from synpo.judging.client import ChatClient
from synpo.judging.config import JudgeConfig
from synpo.judging.parse import JudgeAnswer
from synpo.judging.prompts import PROMPT_VERSION, consistency_messages, factuality_messages, fidelity_messages
from synpo.judging.results import CandidateJudgement, JudgeInput, VideoJudgement
from synpo.judging.rules import RULES_VERSION, score_consistency, score_factuality, score_fidelity


@dataclass
class _Outcome:
    """One criterion call: the validated answer or why there is none."""

    answer: JudgeAnswer | None
    failure: str | None = None


@dataclass
class _Tally:
    calls: int = 0
    http_attempts: int = 0
    failed_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Judge:
    """The three-criteria judge over one backend, with a cache of past answers."""

    def __init__(self, config: JudgeConfig, cache: JudgementCache | None = None) -> None:
        self.config = config
        self.cache = cache if cache is not None else JudgementCache()
        self._client = ChatClient(config) if config.backend == "openai" else None
        self.judge_model = config.model if config.backend == "openai" else RULES_VERSION
        self.prompt_version = PROMPT_VERSION if config.backend == "openai" else RULES_VERSION
        self._videos_in_flight: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"Judge(backend={self.config.backend!r}, judge_model={self.judge_model!r}, prompt_version={self.prompt_version!r})"

    async def __aenter__(self) -> Judge:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Write new cache entries and close the HTTP client."""
        self.cache.flush()
        if self._client is not None:
            await self._client.aclose()

    async def judge_videos(
        self, videos: Sequence[JudgeInput], on_done: Callable[[VideoJudgement], None] | None = None
    ) -> list[VideoJudgement]:
        """Judge ``videos`` concurrently; results in input order. At most ``max_videos_in_flight`` videos are
        judged at once by this judge, across every concurrent call (e.g. the batches of an async actor)."""
        if self._videos_in_flight is None:  # created in the event loop that uses it
            self._videos_in_flight = asyncio.Semaphore(self.config.max_videos_in_flight)
        videos_in_flight = self._videos_in_flight

        async def judge_one(video: JudgeInput) -> VideoJudgement:
            async with videos_in_flight:
                verdict = await self.judge_video(video)
            if on_done is not None:
                on_done(verdict)
            return verdict

        tasks = [asyncio.ensure_future(judge_one(video)) for video in videos]
        flusher = asyncio.ensure_future(self._flush_periodically())
        try:
            return list(await asyncio.gather(*tasks))
        finally:  # an error in one (e.g. on_done stopping the run) or a cancellation stops the others
            for task in (*tasks, flusher):
                task.cancel()
            await asyncio.gather(*tasks, flusher, return_exceptions=True)

    async def _flush_periodically(self) -> None:
        """Write the cache every ``cache.flush_every_s`` while videos are judged, answers arriving or not, so a
        process killed while calls hang loses at most that much."""
        while True:
            await asyncio.sleep(self.cache.flush_every_s)
            self.cache.flush()

    async def judge_video(self, video: JudgeInput) -> VideoJudgement:
        """All three criteria for every candidate of ``video``, the totals and the selected pair."""
        tally = _Tally()
        client = self._client
        if client is None:
            factuality, fidelity, consistency = self._rules(video)
        else:
            texts = video.candidates
            calls = [
                *(self._ask(client, "c1", {"candidate": text, "clip_captions": video.clip_captions}, tally) for text in texts),
                *(self._ask(client, "c2", {"prompt": video.prompt, "candidate": text}, tally) for text in texts),
                self._ask(client, "c3", {"candidates": texts}, tally),
            ]
            outcomes = await asyncio.gather(*calls)
            factuality, fidelity, consistency = outcomes[: len(texts)], outcomes[len(texts) : 2 * len(texts)], outcomes[-1]
        candidates = [self._candidate(index, text, factuality[index], fidelity[index], consistency) for index, text in enumerate(video.candidates)]
        return VideoJudgement(
            video_id=video.video_id,
            prompt=video.prompt,
            candidates=candidates,
            pair=select_pair(candidates, self.config.min_margin),
            backend=self.config.backend,
            judge_model=self.judge_model,
            prompt_version=self.prompt_version,
            weights=self.config.weights.model_dump(),
            calls=tally.calls,
            http_attempts=tally.http_attempts,
            failed_calls=tally.failed_calls,
            cache_hits=tally.cache_hits,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
            cost_usd=round(self.config.cost_usd(tally.prompt_tokens, tally.completion_tokens), 8),
        )

    def _candidate(self, index: int, text: str, factuality: _Outcome, fidelity: _Outcome, consistency: _Outcome) -> CandidateJudgement:
        candidate = CandidateJudgement(index=index, text=text)
        for criterion, outcome, position in (("c1", factuality, 0), ("c2", fidelity, 0), ("c3", consistency, index)):
            if outcome.answer is None:
                candidate.failures[criterion] = outcome.failure or "no answer"
                continue
            setattr(candidate, criterion, outcome.answer.scores[position])
            candidate.reasoning[criterion] = outcome.answer.reasoning
        candidate.total = total_score(candidate.c1, candidate.c2, candidate.c3, self.config.weights)
        return candidate

    async def _ask(self, client: ChatClient, criterion: str, inputs: dict, tally: _Tally) -> _Outcome:
        """One criterion call through the cache and the client."""
        key = cache_key(self.prompt_version, self.judge_model, criterion, inputs)
        cached = self.cache.get(key)
        if cached is not None:
            tally.cache_hits += 1
            return _Outcome(JudgeAnswer.from_dict(cached))
        if criterion == "c1":
            messages, count = factuality_messages(inputs["candidate"], inputs["clip_captions"]), 1
        elif criterion == "c2":
            messages, count = fidelity_messages(inputs["prompt"], inputs["candidate"]), 1
        else:
            messages, count = consistency_messages(inputs["candidates"]), len(inputs["candidates"])
        result = await client.ask(messages, criterion, count)
        tally.calls += 1
        tally.http_attempts += result.attempts
        tally.prompt_tokens += result.prompt_tokens
        tally.completion_tokens += result.completion_tokens
        if result.answer is None:
            tally.failed_calls += 1
            return _Outcome(None, result.failure)
        entry = {
            **result.answer.to_dict(),
            "criterion": criterion,
            "prompt_version": self.prompt_version,
            "judge_model": self.judge_model,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.cache.put(key, entry)
        return _Outcome(result.answer)

    def _rules(self, video: JudgeInput) -> tuple[list[_Outcome], list[_Outcome], _Outcome]:
        """The offline judge's answers, shaped like the LLM's."""
        factuality = [_Outcome(JudgeAnswer((score,), why)) for score, why in (score_factuality(text, video.clip_captions) for text in video.candidates)]
        fidelity = [_Outcome(JudgeAnswer((score,), why)) for score, why in (score_fidelity(video.prompt, text) for text in video.candidates)]
        scores, why = score_consistency(video.candidates)
        return factuality, fidelity, _Outcome(JudgeAnswer(tuple(scores), why))
