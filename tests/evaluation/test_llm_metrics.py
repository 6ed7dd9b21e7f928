"""LLM-judged scores through real HTTP: the loopback judge server answers with synpo.testing.eval_rules,
whose answers are simple enough to work out by hand, so the evaluation's arithmetic is checked end to end.

Golden values (content words exclude a, the, is, ...):
    video "half": reference "A red circle moves left. The background is blue." caption "A red circle moves left."
        detail: caption has {red, circle, moves, left} of {red, circle, moves, left, background, blue} -> round(5 * 4/6) = 3
        questions: one per sentence (2); answers: "yes" (all 4 words stated), "not mentioned" -> correct 1 of 2, scores 5, 0
    video "full": reference "A small green square grows. It turns yellow. The background is black." caption = the reference
        detail 5; 3 questions, all answered "yes": 3 of 3 correct, scores 5, 5, 5
    corpus: llm/detail = (3 + 5) / 2 = 4.0; llm/qa_accuracy = (1 + 3) / (2 + 3) = 0.8 (over questions: a per-video mean
    would give 0.75); llm/qa_score = (5 + 0 + 5 + 5 + 5) / 5 = 4.0
"""

from __future__ import annotations

import asyncio

import pytest

from synpo.evaluation import llm_prompts as prompts
from synpo.evaluation.evalset import EvalVideo
from synpo.evaluation.llm_metrics import EvalJudge, LlmScores
from synpo.judging.cache import JudgementCache
from synpo.judging.client import ChatClient, JudgeUnreachable
from synpo.judging.config import JudgeConfig
from synpo.judging.parse import MalformedAnswer
from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer, free_port

HALF = EvalVideo("half", "half.mp4", "Describe.", ("A red circle moves left. The background is blue.",))
FULL = EvalVideo("full", "full.mp4", "Describe.", ("A small green square grows. It turns yellow. The background is black.",))
CAPTIONS = {"half": "A red circle moves left.", "full": FULL.references[0]}


@pytest.fixture
def server():
    with LoopbackJudgeServer(FaultPlan()) as running:
        yield running


def judge_config(base_url: str, **changes) -> JudgeConfig:
    return JudgeConfig(backend="openai", base_url=base_url, model="loopback-judge", backoff_base_s=0.01, backoff_max_s=0.05, **changes)


def score(base_url: str, captions: dict, cache: JudgementCache, scores=("detail", "qa"), **changes) -> LlmScores:
    async def run() -> LlmScores:
        async with EvalJudge(judge_config(base_url, **changes), list(scores), 5, cache) as judge:
            return await judge.score(captions, [HALF, FULL])

    return asyncio.run(run())


def test_scores_match_the_hand_worked_values(server, tmp_path):
    result = score(server.base_url, CAPTIONS, JudgementCache(str(tmp_path / "cache")))
    assert result.failures == {}
    assert result.metrics == pytest.approx({"llm/detail": 4.0, "llm/qa_accuracy": 0.8, "llm/qa_score": 4.0})
    half, full = result.per_video["half"], result.per_video["full"]
    assert (half["llm_detail"], half["llm_qa_accuracy"], half["llm_qa_score"]) == (3, 0.5, 2.5)
    assert (full["llm_detail"], full["llm_qa_accuracy"], full["llm_qa_score"]) == (5, 1.0, 5.0)
    assert [(item["predicted"], item["correct"], item["score"]) for item in half["llm_qa"]] == [("yes", True, 5), ("not mentioned", False, 0)]
    assert half["llm_qa"][1]["question"].endswith("The background is blue.") and half["llm_qa"][1]["answer"] == "yes"
    assert result.calls == 2 * 4 and result.cache_hits == 0  # detail + questions + answers + judgements, per video


def test_only_the_asked_scores_are_computed(server, tmp_path):
    result = score(server.base_url, CAPTIONS, JudgementCache(), scores=("detail",))
    assert result.metrics == pytest.approx({"llm/detail": 4.0}) and result.calls == 2
    assert set(server.stats()["criteria"]) == {"detail"}


def test_a_rerun_pays_for_nothing_and_another_model_gets_the_same_questions(server, tmp_path):
    cache_uri = str(tmp_path / "cache")
    first = score(server.base_url, CAPTIONS, JudgementCache(cache_uri))
    server.reset()
    again = score(server.base_url, CAPTIONS, JudgementCache(cache_uri))
    assert server.stats()["requests"] == 0 and again.calls == 0 and again.cache_hits == 8
    assert again.metrics == first.metrics and again.per_video == first.per_video

    other_model = {"half": "A blue square. The background is blue.", "full": "Nothing happens."}
    third = score(server.base_url, other_model, JudgementCache(cache_uri))
    assert "qa_questions" not in server.stats()["criteria"]  # the references' questions came from the cache
    assert [item["question"] for item in third.per_video["half"]["llm_qa"]] == [item["question"] for item in first.per_video["half"]["llm_qa"]]
    assert third.per_video["full"]["llm_qa_accuracy"] == 0.0 and third.metrics["llm/detail"] < first.metrics["llm/detail"]


def test_transient_faults_are_retried_and_change_nothing(server, tmp_path):
    server.set_faults(FaultPlan(script=["500", "429", "malformed"]))
    result = score(server.base_url, CAPTIONS, JudgementCache(), max_retries=3, max_malformed_retries=1)
    assert result.failures == {} and result.metrics == pytest.approx({"llm/detail": 4.0, "llm/qa_accuracy": 0.8, "llm/qa_score": 4.0})
    assert server.stats()["faults_served"]["500"] == 8


def test_a_call_that_keeps_failing_leaves_its_video_unscored_with_the_reason(server, tmp_path):
    server.set_faults(FaultPlan(rate_500=1.0, only_criteria=["qa_answers"]))
    cache = JudgementCache(str(tmp_path / "cache"))
    result = score(server.base_url, CAPTIONS, cache, max_retries=1)
    assert set(result.failures) == {"half", "full"} and result.per_video == {} and result.metrics == {}
    assert result.failures["half"].startswith("qa_answers: HTTP 500") and "gave up after 2 attempts" in result.failures["half"]
    assert len(JudgementCache(str(tmp_path / "cache"))) == 4  # the answers that did come (detail, questions) are kept


def test_an_unreachable_or_refusing_judge_is_named(server, tmp_path):
    async def check(config: JudgeConfig) -> None:
        client = ChatClient(config)
        try:
            await client.check_reachable()
        finally:
            await client.aclose()

    with pytest.raises(JudgeUnreachable, match=r"judge http://127.0.0.1:\d+/v1 is unreachable: ClientConnectorError"):
        asyncio.run(check(judge_config(f"http://127.0.0.1:{free_port()}/v1", timeout_s=5)))
    server.set_faults(FaultPlan(api_key="right"))
    with pytest.raises(JudgeUnreachable, match="answered HTTP 401"):
        asyncio.run(check(judge_config(server.base_url)))
    server.set_faults(FaultPlan())
    asyncio.run(check(judge_config(server.base_url)))


@pytest.mark.parametrize(
    ("parse", "text", "problem"),
    [
        (prompts.parse_detail, '{"reasoning": "", "score": 6}', "score is 6, not an integer from 0 to 5"),
        (prompts.parse_detail, '{"reasoning": "", "score": 4.0}', "score is 4.0"),
        (lambda text: prompts.parse_questions(text, 2), '{"questions": []}', "'questions' has 0 item"),
        (lambda text: prompts.parse_questions(text, 2), '{"questions": [{"question": "Q?", "answer": ""}]}', "empty"),
        (lambda text: prompts.parse_answers(text, 2), '{"answers": ["yes"]}', "'answers' has 1 item"),
        (lambda text: prompts.parse_judgements(text, 1), '{"judgements": [{"correct": "yes", "score": 5}]}', "boolean 'correct'"),
        (lambda text: prompts.parse_judgements(text, 1), "no json here", "no JSON object"),
    ],
)
def test_replies_without_valid_answers_are_malformed(parse, text, problem):
    with pytest.raises(MalformedAnswer, match=problem):
        parse(text)


def test_a_not_mentioned_answer_is_never_correct():
    from synpo.evaluation.llm_metrics import _overruled

    assert _overruled("Not mentioned.", True, 5) == (False, 0) and _overruled("yes", True, 4) == (True, 4)
