"""LLM-judged caption scores: a VDD-style detail score and a VDC-style question-answering score.

    async with EvalJudge(settings.llm, JudgementCache(uri)) as judge:
        scores = await judge.score(captions, videos)
    scores.metrics["llm/detail"], scores.per_video["vid-1"]["llm_qa_accuracy"], scores.failures

Per video (prompts in :mod:`synpo.evaluation.llm_prompts`): one ``detail`` call (caption vs the
references, 0-5); and for QA, questions with answers drawn from the references (depend on the
references only, so cached once for every model evaluated on the set), the questions answered from
the caption, and each answer judged against the reference's. Corpus metrics:

    llm/detail          mean detail score over videos (0-5)
    llm/qa_accuracy     correct answers / questions, over the whole set
    llm/qa_score        mean 0-5 score of the answers, over the whole set

An answer of "not mentioned" is never correct and scores 0, whatever the judge says.
Calls go through :class:`synpo.judging.client.ChatClient` (bounded, paced, retried) and the
:class:`synpo.judging.cache.JudgementCache` (a rerun pays for nothing twice). A call that fails after
its retries leaves its video unscored with the reason in ``failures``; the caller decides (the
evaluation job refuses to report metrics over part of the set, so two models are always compared on
the same videos, and a rerun asks only what is missing).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import fmean

from tqdm import tqdm

from synpo.console import console_stream
from synpo.evaluation import llm_prompts as prompts
from synpo.evaluation.evalset import EvalVideo
from synpo.judging.cache import JudgementCache, cache_key
from synpo.judging.client import ChatClient
from synpo.judging.config import JudgeConfig

SCORES = ("detail", "qa")


class CallFailed(Exception):
    """One judge call gave no answer after its retries; ends that video's scoring (never leaves this module)."""


@dataclass
class LlmScores:
    metrics: dict[str, float]
    per_video: dict[
        str, dict
    ]  # video id -> llm_detail, llm_qa_accuracy, llm_qa_score, llm_qa (the questions and answers)
    failures: dict[str, str]  # video id -> why it has no scores
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EvalJudge:
    """Scores captions with an LLM behind an OpenAI-compatible endpoint. Build one per event loop."""

    def __init__(
        self, judge: JudgeConfig, scores: list[str], questions_per_video: int, cache: JudgementCache
    ) -> None:
        self.config, self.scores, self.questions_per_video, self.cache = (
            judge,
            list(scores),
            questions_per_video,
            cache,
        )
        self.client = ChatClient(judge)
        self._totals = LlmScores({}, {}, {})

    async def __aenter__(self) -> EvalJudge:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cache.flush()
        await self.client.aclose()

    async def score(
        self, captions: dict[str, str], videos: list[EvalVideo], progress: bool = False
    ) -> LlmScores:
        """Every video of ``videos`` scored on ``self.scores``; corpus metrics over the videos that were. A judge
        that cannot be reached shows as failures; a job checks it first (``ChatClient.check_reachable``)."""
        in_flight = asyncio.Semaphore(self.config.max_videos_in_flight)
        totals = self._totals = LlmScores({}, {}, {})
        with tqdm(total=len(videos), desc="llm scores", unit="video", disable=not progress, file=console_stream()) as bar:

            async def one(video: EvalVideo) -> None:
                async with in_flight:
                    try:
                        totals.per_video[video.video_id] = await self._score_video(
                            video, captions[video.video_id]
                        )
                    except CallFailed as failure:
                        totals.failures[video.video_id] = str(failure)
                bar.update(1)

            await asyncio.gather(*(one(video) for video in videos))
        totals.metrics = corpus_metrics(list(totals.per_video.values()), self.scores)
        return totals

    async def _score_video(self, video: EvalVideo, caption: str) -> dict:
        references = list(video.references)
        row: dict = {}
        if "detail" in self.scores:
            row["llm_detail"] = await self._ask(
                "detail", {"references": references, "caption": caption}, prompts.detail_messages(references, caption),
                prompts.detail_schema(self.config.max_reasoning_chars), prompts.parse_detail,
            )  # fmt: skip
        if "qa" in self.scores:
            row.update(await self._qa(references, caption))
        return row

    async def _qa(self, references: list[str], caption: str) -> dict:
        count = self.questions_per_video
        questions = await self._ask(
            "qa_questions", {"references": references, "count": count}, prompts.questions_messages(references, count),
            prompts.questions_schema(count), functools.partial(prompts.parse_questions, count=count),
        )  # fmt: skip
        texts = [item["question"] for item in questions]
        answers = await self._ask(
            "qa_answers", {"caption": caption, "questions": texts}, prompts.answers_messages(caption, texts),
            prompts.answers_schema(len(texts)), functools.partial(prompts.parse_answers, count=len(texts)),
        )  # fmt: skip
        judged = await self._ask(
            "qa_judgements", {"questions": questions, "answers": answers}, prompts.judgements_messages(questions, answers),
            prompts.judgements_schema(len(texts)), functools.partial(prompts.parse_judgements, count=len(texts)),
        )  # fmt: skip
        qa = [
            {
                **item,
                "predicted": answer,
                **dict(zip(("correct", "score"), _overruled(answer, correct, score), strict=True)),
            }
            for item, answer, (correct, score) in zip(questions, answers, judged, strict=True)
        ]
        return {
            "llm_qa_accuracy": fmean(item["correct"] for item in qa),
            "llm_qa_score": fmean(item["score"] for item in qa),
            "llm_qa": qa,
        }

    async def _ask(
        self, task: str, inputs: dict, messages: list[dict], schema: dict, parse: Callable[[str], object]
    ):  # noqa: ANN202
        key = cache_key(prompts.EVAL_PROMPT_VERSION, self.config.model, task, inputs)
        cached = self.cache.get(key)
        if cached is not None:
            self._totals.cache_hits += 1
            return _from_json(task, cached["answer"])
        result = await self.client.ask_json(messages, prompts.SCHEMA_NAMES[task], schema, parse)
        self._totals.calls += 1
        self._totals.prompt_tokens += result.prompt_tokens
        self._totals.completion_tokens += result.completion_tokens
        if result.answer is None:
            raise CallFailed(f"{task}: {result.failure}")
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.cache.put(
            key,
            {
                "task": task,
                "answer": result.answer,
                "prompt_version": prompts.EVAL_PROMPT_VERSION,
                "judge_model": self.config.model,
                "created_at": created_at,
            },
        )
        return result.answer


def _from_json(task: str, answer: object) -> object:
    """A cached answer as the parser returned it (JSON turns the judgements' tuples into lists)."""
    return [tuple(item) for item in answer] if task == "qa_judgements" else answer


def _overruled(answer: str, correct: bool, score: int) -> tuple[bool, int]:
    """ "not mentioned" is never a correct answer, whatever the judge said."""
    return (False, 0) if answer.strip().lower().rstrip(".") == prompts.NOT_MENTIONED else (correct, score)


def corpus_metrics(rows: list[dict], scores: list[str]) -> dict[str, float]:
    """``llm/detail`` (mean over videos), ``llm/qa_accuracy`` and ``llm/qa_score`` (over every question)."""
    metrics: dict[str, float] = {}
    if "detail" in scores and rows:
        metrics["llm/detail"] = fmean(row["llm_detail"] for row in rows)
    questions = [item for row in rows for item in row.get("llm_qa", [])]
    if "qa" in scores and questions:
        metrics["llm/qa_accuracy"] = fmean(item["correct"] for item in questions)
        metrics["llm/qa_score"] = fmean(item["score"] for item in questions)
    return metrics
