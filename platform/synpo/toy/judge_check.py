"""How well a judge ranks captions in the toy world, where the true caption is known.

Per toy scene: candidates = the true caption plus ``altered_per_scene`` captions of the same scene
with one fact changed (a wrong colour, the opposite direction, an invented object; cycling), in a
random order; clip captions = the scene's ground-truth per-clip captions (the paper's clip split at
8 fps, as ``synpo toy videos`` writes them). The judge's chosen candidate (rank 1) and rejected
candidate (last rank) are compared with the truth:

- ``top_is_true``: share of scenes whose chosen candidate is the true caption (chance: 1/k);
- ``bottom_is_true``: share of scenes whose rejected candidate is the true caption (should be ~0).

A judge that ranks by truth has ``top_is_true`` well above ``bottom_is_true``. Used by
``tests/judging/test_judge_rules.py`` and ``bench/judge_throughput.py``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from synpo.judging.config import JudgeConfig
from synpo.judging.judge import Judge
from synpo.judging.results import JudgeInput
from synpo.toy.pairs import ALTERATIONS, alter_scene
from synpo.toy.videos import DEFAULT_PROMPT, ground_truth
from synpo.toy.world import describe_scene, make_scene


@dataclass(frozen=True)
class ToyRankingReport:
    scenes: int
    candidates_per_scene: int
    top_is_true: float
    bottom_is_true: float
    chance: float
    kept_pairs: int
    kept_with_true_chosen: int
    kept_with_true_rejected: int


def toy_judge_inputs(num_scenes: int, seed: int = 0, altered_per_scene: int = 4) -> tuple[list[JudgeInput], list[int]]:
    """Toy videos to judge and, for each, the index of its true caption among the candidates."""
    rng = random.Random(seed)
    videos, true_indices = [], []
    for number in range(num_scenes):
        scene = make_scene(seed * 1_000_003 + number)
        truth = ground_truth(scene, f"toy-check-{number}", fps=8)
        altered = [describe_scene(alter_scene(scene, ALTERATIONS[k % len(ALTERATIONS)], rng)) for k in range(altered_per_scene)]
        candidates = [truth["caption"], *altered]
        rng.shuffle(candidates)
        videos.append(
            JudgeInput(
                video_id=truth["id"],
                prompt=DEFAULT_PROMPT,
                candidates=candidates,
                clip_captions=[clip["caption"] for clip in truth["clips"]],
            )
        )
        true_indices.append(candidates.index(truth["caption"]))
    return videos, true_indices


def toy_ranking_rates(config: JudgeConfig | None = None, num_scenes: int = 60, seed: int = 0, altered_per_scene: int = 4) -> ToyRankingReport:
    """Judge toy scenes with ``config`` (default: the rules judge) and measure its ranking against the truth."""
    videos, true_indices = toy_judge_inputs(num_scenes, seed, altered_per_scene)

    async def judge_all() -> list:
        async with Judge(config or JudgeConfig(backend="rules")) as judge:
            return await judge.judge_videos(videos)

    verdicts = asyncio.run(judge_all())
    top = sum(verdict.pair.chosen_index == true for verdict, true in zip(verdicts, true_indices, strict=True))
    bottom = sum(verdict.pair.rejected_index == true for verdict, true in zip(verdicts, true_indices, strict=True))
    kept = [(verdict, true) for verdict, true in zip(verdicts, true_indices, strict=True) if verdict.pair.kept]
    return ToyRankingReport(
        scenes=num_scenes,
        candidates_per_scene=altered_per_scene + 1,
        top_is_true=top / num_scenes,
        bottom_is_true=bottom / num_scenes,
        chance=1 / (altered_per_scene + 1),
        kept_pairs=len(kept),
        kept_with_true_chosen=sum(verdict.pair.chosen_index == true for verdict, true in kept),
        kept_with_true_rejected=sum(verdict.pair.rejected_index == true for verdict, true in kept),
    )
