"""The LLM judge: three criteria, score aggregation and pair selection (METHOD.md §1 steps 5-6).

    from synpo.judging import Judge, JudgeConfig, JudgeInput, JudgementCache

    async with Judge(JudgeConfig(backend="openai", base_url=..., model=...), JudgementCache(uri)) as judge:
        verdict = await judge.judge_video(JudgeInput(video_id=..., prompt=..., candidates=[...], clip_captions=[...]))
    verdict.pair.kept, verdict.pair.chosen_text, verdict.pair.rejected_text, verdict.to_dict()

Modules: :mod:`~synpo.judging.config` (the typed config), :mod:`~synpo.judging.prompts` (templates
and their version), :mod:`~synpo.judging.client` (bounded, retrying OpenAI-compatible client),
:mod:`~synpo.judging.parse` (reply -> validated scores), :mod:`~synpo.judging.rules` (the offline
judge), :mod:`~synpo.judging.aggregate` (totals and selection), :mod:`~synpo.judging.cache`,
:mod:`~synpo.judging.judge` (ties them together). A real OpenAI-compatible judge server with
injectable faults, for tests, benchmarks and dry runs, is in :mod:`synpo.testing`; how well a judge
ranks captions in the toy world, in :mod:`synpo.toy.judge_check`.
"""

from synpo.judging.aggregate import select_pair, total_score
from synpo.judging.cache import JudgementCache
from synpo.judging.config import CriterionWeights, JudgeConfig
from synpo.judging.judge import Judge
from synpo.judging.prompts import PROMPT_VERSION
from synpo.judging.results import CandidateJudgement, JudgeInput, PairSelection, VideoJudgement

__all__ = [
    "PROMPT_VERSION",
    "CandidateJudgement",
    "CriterionWeights",
    "Judge",
    "JudgeConfig",
    "JudgeInput",
    "JudgementCache",
    "PairSelection",
    "VideoJudgement",
    "select_pair",
    "total_score",
]
