"""The replication, end to end: does SynPO beat DPO, SimPO and SFT where the truth is known?

    toy videos (train, held out) ─ base model (tiny VLM, warm-started to be partly right)
      ─ pair job (Ray Data, HF engine, CD + retrospection, rules judge) ─ the same candidates judged by the oracle
      ─ per judge × objective × seed: LoRA training on that judge's pairs ─ evaluation job on the held-out videos
      ─ report (table, Fig.-3 curves, training speed)

Every part is kept under ``output`` and reused by a rerun: the toy videos and the base model are
rebuilt only when their recipe changes, the pair job resumes, a training with a ``result.json`` is
done, and the evaluation job finds its earlier MLflow run for the same model and eval set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from synpo.config.sections import MlflowSettings
from synpo.errors import UserError
from synpo.evaluation.config import EvalConfig
from synpo.evaluation.job import EvalResult, run_eval
from synpo.pairgen.pipeline import run_pairs
from synpo.pairgen.summary import RunSummary
from synpo.pairs import read_pairs, write_pairs
from synpo.replication.config import ReplicateConfig
from synpo.replication.oracle import fact_f1, oracle_pairs, toy_truth
from synpo.replication.training import TrainingRun, decode_examples, train_run
from synpo.storage import Storage
from synpo.toy.model import build_tiny_model, is_built
from synpo.toy.videos import ToyVideoSpec, write_toy_videos

logger = logging.getLogger(__name__)


class ReplicationError(UserError):
    """The replication cannot go on as configured (e.g. a judge kept too few pairs to train on)."""


@dataclass
class PairSet:
    """One judge's pairs of the shared candidates, with each caption's fact F1 against the ground truth."""

    judge: str
    pairs: list[dict]
    chosen_f1: list[float]  # per pair, in order
    rejected_f1: list[float]

    @property
    def truly_better(self) -> int:
        """Pairs whose chosen caption has the higher fact F1: where the judge agrees with the truth."""
        return sum(chosen > rejected for chosen, rejected in zip(self.chosen_f1, self.rejected_f1, strict=True))

    @property
    def truly_worse(self) -> int:
        return sum(chosen < rejected for chosen, rejected in zip(self.chosen_f1, self.rejected_f1, strict=True))


@dataclass
class Replication:
    """Everything the report is made of."""

    config: ReplicateConfig
    base_eval: EvalResult
    pair_summary: RunSummary
    pair_sets: dict[str, PairSet]
    runs: list[tuple[TrainingRun, EvalResult]]
    seconds: float  # this invocation
    part_seconds: dict[str, float]  # every part, when it was computed (this invocation or an earlier one)


class PartTimes:
    """Seconds each part took when it was computed, kept in ``<output>/timings.json`` so a rerun that reuses a
    part still reports what it cost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
        self.used: set[str] = set()

    def record(self, part: str, seconds: float) -> None:
        self.seconds[part] = seconds
        self.path.write_text(json.dumps(self.seconds, indent=1))

    def use(self, part: str) -> None:
        """Count ``part`` in this replication's total (computed now or reused)."""
        self.used.add(part)

    def total(self) -> dict[str, float]:
        """Seconds of the parts this replication used (parts of other settings in the same output left out)."""
        return {part: seconds for part, seconds in self.seconds.items() if part in self.used}


def toy_videos(folder: Path, count: int, seed: int, config: ReplicateConfig, progress: bool) -> str:
    """The toy video set in ``folder`` (written unless already there with this recipe); returns its manifest."""
    recipe = {"count": count, "seed": seed, "min_duration_s": config.data.min_duration_s, "max_duration_s": config.data.max_duration_s}
    marker = folder / "recipe.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == recipe):
        spec = ToyVideoSpec(min_duration_s=config.data.min_duration_s, max_duration_s=config.data.max_duration_s)
        write_toy_videos(str(folder), count, seed=seed, spec=spec, progress=progress)
        marker.write_text(json.dumps(recipe))  # last: the set is complete
    return str(folder / "manifest.jsonl")


def judged_pairs(judge: str, pairs: list[dict], storage: Storage) -> PairSet:
    """``pairs`` with each caption's fact F1 against the ground truth of its video."""
    truths = {video: toy_truth(video, storage) for video in {pair["video"] for pair in pairs}}
    chosen = [fact_f1(pair["chosen"], truths[pair["video"]]) for pair in pairs]
    rejected = [fact_f1(pair["rejected"], truths[pair["video"]]) for pair in pairs]
    return PairSet(judge, pairs, chosen, rejected)


def evaluate(config: ReplicateConfig, eval_set: str, model: str, adapter: str | None, name: str, progress: bool, times: PartTimes) -> EvalResult:
    """The evaluation job on ``eval_set`` (its earlier MLflow run when this model was evaluated already)."""
    start = time.perf_counter()
    eval_config = config.eval.model_copy(
        update={"model": model, "adapter": adapter, "eval_set": eval_set, "output": str(Path(config.output, "eval", name)), "mlflow": config.mlflow, "ray": config.ray}
    )
    result = run_eval(EvalConfig.model_validate(eval_config.model_dump()), progress=progress)
    if not result.reused:
        times.record(f"eval {name}", time.perf_counter() - start)
    times.use(f"eval {name}")
    return result


def digest(value: object) -> str:
    """A short name for a recipe: parts made with other settings land in other folders, never reused by mistake."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def replicate(config: ReplicateConfig, progress: bool = True) -> Replication:
    """Run (or resume) every part of the replication; returns what the report needs."""
    start = time.perf_counter()
    output = Path(config.output).resolve()
    mlflow = config.mlflow or MlflowSettings(tracking_uri=f"sqlite:///{output}/mlflow.db", experiment="synpo-replicate")
    config = config.model_copy(update={"output": str(output), "mlflow": mlflow.with_absolute_paths()})
    storage = Storage()
    output.mkdir(parents=True, exist_ok=True)
    times = PartTimes(output / "timings.json")
    train_set = toy_videos(output / "videos" / "train", config.data.train_videos, config.data.seed, config, progress)
    heldout_set = toy_videos(output / "videos" / "heldout", config.data.heldout_videos, config.data.seed + 1, config, progress)
    logger.info("base model: tiny VLM, %d warm-start steps", config.base.warm_start_steps)
    base_name = f"base-ws{config.base.warm_start_steps}-seed{config.base.seed}"
    built, part_start = is_built(output / "models" / base_name, "vlm", config.base.seed, config.base.warm_start_steps), time.perf_counter()
    base = str(build_tiny_model(output / "models" / base_name, warm_start_steps=config.base.warm_start_steps, seed=config.base.seed))
    if not built:
        times.record("base model", time.perf_counter() - part_start)
    times.use("base model")
    config.ray.init()
    base_eval = evaluate(config, heldout_set, base, None, base_name, progress, times)

    pairs_recipe = digest([base_name, train_set, config.pairs.model_dump(mode="json", exclude={"mlflow", "ray", "input", "output"})])
    pairs_output = str(output / "pairs" / pairs_recipe)
    pairs_config = config.pairs.model_copy(
        update={"input": train_set, "output": pairs_output, "engine": config.pairs.engine.model_copy(update={"model": base}), "mlflow": config.mlflow, "ray": config.ray}
    )
    pair_summary = run_pairs(pairs_config, progress=progress)
    if pair_summary.processed:
        times.record("pair job", times.seconds.get("pair job", 0.0) + pair_summary.wall_s)  # a resumed job adds its part
    times.use("pair job")
    pair_sets: dict[str, PairSet] = {}
    for judge in config.judges:
        if judge == "rules":
            pairs = read_pairs(f"{pairs_output}/pairs", storage) if pair_summary.totals.get("paired") else []
        else:
            pairs, _ = oracle_pairs(pairs_output, config.oracle_min_margin, storage)
            if pairs:
                write_pairs(pairs, f"{pairs_output}-oracle.parquet", storage)
        pair_sets[judge] = judged_pairs(judge, pairs, storage)
        logger.info("%s judge: %d pairs, chosen truly better in %d", judge, len(pairs), pair_sets[judge].truly_better)

    train_settings = config.train.model_dump(mode="json", exclude={"learning_rates"})
    runs: list[tuple[TrainingRun, EvalResult]] = []
    for judge, pair_set in pair_sets.items():
        if len(pair_set.pairs) < config.train.batch_size:
            raise ReplicationError(
                f"the {judge} judge kept {len(pair_set.pairs)} pairs, fewer than one training batch ({config.train.batch_size}): "
                "use more videos (data.train_videos) or a lower margin (pairs.judge.min_margin, oracle_min_margin)"
            )
        examples = decode_examples(pair_set.pairs, config.train.video, storage, progress)
        for learning_rate in config.train.learning_rates:
            train_root = output / "train" / digest([pairs_recipe, config.oracle_min_margin, {**train_settings, "learning_rate": learning_rate}])
            for objective in config.objectives:
                for seed in config.seeds:
                    name = f"{judge}-{objective}-seed{seed}"
                    run, trained = train_run(config.train, base, examples, judge, objective, seed, learning_rate, train_root / name, config.mlflow)
                    if trained:
                        times.record(f"train {train_root.name}/{name}", run.seconds)
                    times.use(f"train {train_root.name}/{name}")
                    runs.append((run, evaluate(config, heldout_set, base, run.adapter, f"{train_root.name}/{name}", progress, times)))
    return Replication(config, base_eval, pair_summary, pair_sets, runs, time.perf_counter() - start, times.total())
