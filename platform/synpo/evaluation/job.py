"""The evaluation driver: resolve the model, caption the eval set on Ray Data, score, record in MLflow.

    eval rows ── decode (CPU tasks) ── caption (engine actor pool, greedy) ── write (tasks)   then score on the driver

The same model (a registry alias is recorded as the version it named) with the same caption
settings on the same eval set is evaluated once: its MLflow run is found by tags and reused. A run
that stopped half-way resumes: captions already under ``<output>/captions/`` are kept, and
``<output>/eval_identity.json`` refuses an output folder that holds another evaluation's captions.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass

from tqdm import tqdm

from synpo.console import console_stream
from synpo.errors import UserError
from synpo.evaluation.config import EvalConfig
from synpo.evaluation.evalset import EvalVideo, fingerprint, read_eval_set
from synpo.evaluation.llm_metrics import EvalJudge, LlmScores
from synpo.evaluation.llm_prompts import EVAL_PROMPT_VERSION
from synpo.evaluation.report import EvalReport, score_captions, with_llm_scores
from synpo.evaluation.stages import CaptionStage, DecodeStage, WriteStage, written_captions
from synpo.judging.cache import JudgementCache
from synpo.judging.client import ChatClient
from synpo.judging.config import JudgeConfig
from synpo.models import resolve_model
from synpo.registry.resolve import is_registry_uri, resolve_captioner
from synpo.sampling.engine import EngineSettings
from synpo.storage import Storage, join_uri
from synpo.toy.facts import caption_facts

logger = logging.getLogger(__name__)
TAG = "synpo.eval."
HEADLINE = ("CIDEr", "METEOR", "BLEU-4", "ROUGE-L", "facts/precision", "facts/recall", "facts/hallucination_rate", "llm/detail", "llm/qa_accuracy")


class EvalError(UserError):
    """The evaluation cannot finish as asked (videos that cannot be captioned, an output folder of another evaluation)."""


@dataclass(frozen=True)
class ModelUnderTest:
    identity: str  # models:/NAME/VERSION, or folder[+adapter]
    engine: EngineSettings  # the engine settings with the resolved local model and adapter
    name: str | None = None  # registered model name and version, when from the registry
    version: str | None = None


@dataclass
class EvalResult:
    run_id: str
    reused: bool
    model: str
    eval_set: str
    videos: int
    metrics: dict[str, float]


def model_under_test(config: EvalConfig) -> ModelUnderTest:
    """``config.model`` as local folders: a registry version (its base + adapter) or a model as in engine.model."""
    if is_registry_uri(config.model):
        if config.adapter:
            raise EvalError(f"adapter={config.adapter!r}: a registry model brings its own adapter; give a folder model to pair it with another")
        captioner = resolve_captioner(config.model, config.mlflow.tracking_uri)
        engine = config.engine.model_copy(update={"model": str(captioner.base_model), "adapter": str(captioner.adapter)})
        return ModelUnderTest(f"models:/{captioner.name}/{captioner.version}", engine, captioner.name, captioner.version)
    base = resolve_model(config.model, Storage(config.storage), field="model")
    engine = config.engine.model_copy(update={"model": str(base), "adapter": config.adapter})
    return ModelUnderTest(config.model + (f"+{config.adapter}" if config.adapter else ""), engine)


def _digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def settings_digest(config: EvalConfig) -> str:
    """What else makes captions differ for one model: prompt, length, frames, engine kind."""
    return _digest({"prompt": config.prompt, "max_new_tokens": config.max_new_tokens, "video": config.video.model_dump(), "engine": config.engine.kind})


def metrics_digest(config: EvalConfig) -> str:
    """What makes the scores of the same captions differ: which metrics, and the LLM judge and its prompts."""
    llm = config.metrics.llm
    judge = {"model": llm.judge.model, "base_url": llm.judge.base_url, "questions": llm.questions_per_video, "prompts": EVAL_PROMPT_VERSION}
    return _digest({"meteor": config.metrics.meteor, "facts": config.metrics.facts, "llm": llm.scores, **({"judge": judge} if llm.scores else {})})


def _check_output(config: EvalConfig, identity: dict, storage: Storage) -> None:
    uri = join_uri(config.output, "eval_identity.json")
    if storage.exists(uri):
        recorded = json.loads(storage.read_text(uri))
        if recorded != identity:
            raise EvalError(f"output={config.output!r} holds captions of another evaluation ({recorded}); use a new output folder")
    else:
        storage.write_text(uri, json.dumps(identity, indent=1))


def _existing_run(config: EvalConfig, identity: dict):
    from mlflow import MlflowClient

    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
    if experiment is None:
        return None
    query = " and ".join(f"tags.`{TAG}{key}` = '{value}'" for key, value in identity.items()) + " and attributes.status = 'FINISHED'"
    runs = client.search_runs([experiment.experiment_id], query, max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def _caption(config: EvalConfig, model: ModelUnderTest, todo: list[EvalVideo], progress: bool) -> None:
    import ray.data

    from synpo.pairgen.pipeline import actor_pool_options, decode_task_options

    rows = [{"video_id": video.video_id, "video": video.video, "prompt": video.prompt} for video in todo]
    dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), 2000))
    dataset = dataset.map_batches(DecodeStage(config.video, config.storage), **decode_task_options(0.5))
    dataset = dataset.map_batches(
        CaptionStage, fn_constructor_kwargs={"engine": model.engine, "max_new_tokens": config.max_new_tokens, "storage": config.storage},
        **actor_pool_options(config.engine_pool),
    )  # fmt: skip
    dataset = dataset.map_batches(WriteStage(config.output, config.storage), batch_size=config.engine_pool.batch_size, batch_format="pyarrow", num_cpus=0.1)
    with tqdm(total=len(rows), desc="captions", unit="video", disable=not progress, file=console_stream()) as bar:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            bar.update(batch.num_rows)


async def _check_judge(judge: JudgeConfig) -> None:
    client = ChatClient(judge)
    try:
        await client.check_reachable()
    finally:
        await client.aclose()


def _uses_facts(config: EvalConfig, videos: list[EvalVideo]) -> bool:
    if config.metrics.facts == "off":
        return False
    toy = all(not caption_facts(video.references[0]).unread_sentences for video in videos)
    if config.metrics.facts == "on" and not toy:
        raise EvalError("metrics.facts=on: fact accuracy needs toy-world reference captions; this eval set has others (use auto or off)")
    return toy


def _log(config: EvalConfig, model: ModelUnderTest, identity: dict, report: EvalReport, finite: dict[str, float], videos: int) -> str:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    experiment_id = config.mlflow.experiment_id()
    run_name = config.mlflow.run_name or f"eval-{identity['model'].replace('models:/', '').replace('/', '-')}-{identity['eval_set']}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({f"{TAG}{key}": value for key, value in identity.items()})
        mlflow.log_params({"model": config.model, "eval_set": config.eval_set, "videos": videos, "max_new_tokens": config.max_new_tokens})
        mlflow.log_metrics(finite)
        mlflow.log_table({key: [row.get(key) for row in report.per_video] for key in report.per_video[0]}, "per_video.json")
    if model.name is not None:
        client = MlflowClient(config.mlflow.tracking_uri)
        for metric in HEADLINE:
            if metric in finite:
                client.set_model_version_tag(model.name, model.version, f"eval.{identity['eval_set']}.{metric}", f"{finite[metric]:.4f}")
        client.set_model_version_tag(model.name, model.version, f"eval.{identity['eval_set']}.run_id", run.info.run_id)
    return run.info.run_id


async def _llm_scores(config: EvalConfig, captions: dict[str, str], videos: list[EvalVideo], progress: bool) -> LlmScores:
    llm = config.metrics.llm
    cache = JudgementCache(llm.cache or join_uri(config.output, "llm-judge-cache"), Storage(config.storage))
    async with EvalJudge(llm.judge, llm.scores, llm.questions_per_video, cache) as judge:
        scores = await judge.score(captions, videos, progress)
    logger.info("LLM scores: %d judge calls, %d answers from the cache, %d+%d tokens", scores.calls, scores.cache_hits, scores.prompt_tokens, scores.completion_tokens)
    if scores.failures:
        video_id, reason = next(iter(scores.failures.items()))
        raise EvalError(
            f"LLM scores: {len(scores.failures)} of {len(videos)} video(s) could not be scored (e.g. {video_id}: {reason}); "
            f"nothing was recorded. The answers received are cached: rerun to ask only for the rest"
        )
    return scores


def run_eval(config: EvalConfig, progress: bool = True) -> EvalResult:
    """Evaluate ``config.model`` on ``config.eval_set`` (or find that it was already); returns the run and its metrics."""
    config.require_paths()
    config = config.with_absolute_paths()
    storage = Storage(config.storage)
    videos = read_eval_set(config.eval_set, storage, config.prompt)
    model = model_under_test(config)
    captions_identity = {"model": model.identity, "eval_set": fingerprint(videos), "settings": settings_digest(config)}
    identity = {**captions_identity, "metrics": metrics_digest(config)}
    existing = _existing_run(config, identity)
    if existing is not None:
        logger.info("%s on eval set %s was evaluated already: run %s", model.identity, identity["eval_set"], existing.info.run_id)
        return EvalResult(existing.info.run_id, True, model.identity, identity["eval_set"], len(videos), dict(existing.data.metrics))
    storage.check_writable(config.output, "output", folder=True)
    if config.metrics.llm.scores:  # before any captioning: a judge that cannot answer would waste it
        asyncio.run(_check_judge(config.metrics.llm.judge))
    _check_output(config, captions_identity, storage)
    start = time.perf_counter()
    done = written_captions(config.output, storage)
    todo = [video for video in videos if video.video_id not in done]
    logger.info("%d videos: %d captioned already, %d to caption", len(videos), len(videos) - len(todo), len(todo))
    if todo:
        config.ray.init()
        _caption(config, model, todo, progress)
        done = written_captions(config.output, storage)
    missing = [video.video_id for video in videos if video.video_id not in done]
    if missing:
        raise EvalError(f"{len(missing)} video(s) could not be captioned, e.g. {missing[:3]}: see {join_uri(config.output, 'captions')} (failure column); fix or drop them, then rerun")
    captions = {video_id: row["caption"] for video_id, row in done.items()}
    report = score_captions(captions, videos, _uses_facts(config, videos), config.metrics.meteor)
    if config.metrics.llm.scores:
        report = with_llm_scores(report, asyncio.run(_llm_scores(config, captions, videos, progress)))
    finite = {key: value for key, value in report.metrics.items() if not math.isnan(value)}  # NaN: no fact of that kind in the set
    run_id = _log(config, model, identity, report, finite, len(videos))
    result = EvalResult(run_id, False, model.identity, identity["eval_set"], len(videos), finite)
    storage.write_text(join_uri(config.output, "report.json"), json.dumps({**asdict(result), "seconds": time.perf_counter() - start}, indent=1, default=str))
    return result

