"""The run summary: videos in / paired / filtered / failed (by reason), judge calls, tokens, cost, stage times.

Written to ``<output>/summary.json`` and logged to MLflow as a run of its own (params: the
settings that shaped the data; metrics: the counts; artifact: the summary).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from synpo.config.sections import MlflowSettings
from synpo.storage import Storage, join_uri


def reason_class(stage: str, reason: str) -> str:
    """``"decode: VideoError"``, ``"judge: fewer than two judged candidates"``: failures grouped by kind."""
    return f"{stage}: {reason.split(':', 1)[0].split('(', 1)[0].strip()}"


@dataclass
class RunSummary:
    output: str
    videos_in: int  # videos the input lists (after `limit`)
    already_done: int  # skipped: finished by an earlier run
    processed: int = 0  # finished by this run
    paired: int = 0
    filtered: int = 0  # judged, but the margin was below min_margin
    failed: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    generated_tokens: int = 0
    judge_calls: int = 0
    judge_failed_calls: int = 0
    judge_cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    busy_s: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "sample": 0.0, "judge": 0.0})  # summed per video
    stage_wall_s: dict[str, float] = field(default_factory=dict)  # first start to last finish of each stage
    sample_judge_overlap_s: float = 0.0  # how long sampling and judging both ran (the pipeline's overlap)
    wall_s: float = 0.0
    orphans_removed: int = 0
    totals: dict[str, int] = field(default_factory=dict)  # statuses over the whole output, earlier runs included
    _spans: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def add(self, row: dict) -> None:
        """Count one written video (a :data:`~synpo.pairgen.rows.WRITTEN` row)."""
        self.processed += 1
        setattr(self, row["status"], getattr(self, row["status"]) + 1)
        if row["status"] == "failed":
            kind = reason_class(row["failure_stage"], row["failure_reason"])
            self.failed_by_reason[kind] = self.failed_by_reason.get(kind, 0) + 1
        for key in ("generated_tokens", "judge_calls", "judge_failed_calls", "judge_cache_hits", "prompt_tokens", "completion_tokens"):
            setattr(self, key, getattr(self, key) + (row[key] or 0))
        self.cost_usd += row["cost_usd"] or 0.0
        for stage in self.busy_s:
            self.busy_s[stage] += row[f"{stage}_s"] or 0.0
            start, end = row[f"{stage}_start_t"], row[f"{stage}_end_t"]
            if start is not None:
                first, last = self._spans.get(stage, (start, end))
                self._spans[stage] = (min(first, start), max(last, end))

    def finish(self, statuses: dict[str, str], wall_s: float) -> None:
        self.totals = dict(Counter(statuses.values()))
        self.wall_s = wall_s
        self.stage_wall_s = {stage: end - start for stage, (start, end) in self._spans.items()}
        if "sample" in self._spans and "judge" in self._spans:
            (sample_start, sample_end), (judge_start, judge_end) = self._spans["sample"], self._spans["judge"]
            self.sample_judge_overlap_s = max(0.0, min(sample_end, judge_end) - max(sample_start, judge_start))

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if not key.startswith("_")}

    def lines(self) -> list[str]:
        """Human-readable lines for the job's log."""
        busy = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in self.busy_s.items())
        spans = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in self.stage_wall_s.items())
        failed = "".join(f"\n    {kind}: {count}" for kind, count in sorted(self.failed_by_reason.items()))
        return [
            f"videos in {self.videos_in}: {self.already_done} already done, {self.processed} processed now",
            f"  paired {self.paired}, filtered by margin {self.filtered}, failed {self.failed}{failed}",
            f"  judge calls {self.judge_calls} ({self.judge_failed_calls} failed, {self.judge_cache_hits} cache hits), "
            f"tokens {self.prompt_tokens} prompt + {self.completion_tokens} completion, est. cost ${self.cost_usd:.4f}",
            f"  generated tokens {self.generated_tokens}; busy time {busy}",
            f"  stage wall time {spans}; sampling and judging overlapped {self.sample_judge_overlap_s:.1f}s; job wall {self.wall_s:.1f}s",
            f"  whole output: {self.totals}",
        ]

    def where_pairs_are(self) -> str:
        """The line that tells the user where the pairs are, or that the output holds none (and why)."""
        paired = self.totals.get("paired", 0)
        if paired:
            return f"pairs: {paired} in {self.output}/pairs/  (summary: {self.output}/summary.json)"
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(self.totals.items())) or "no videos"
        return f"pairs: 0 — no video was paired ({statuses}); nothing in {self.output}/pairs/  (summary: {self.output}/summary.json)"

    def save(self, storage: Storage) -> str:
        """``<output>/summary.json`` (the latest run) and ``<output>/summaries/<UTC time>.json`` (every run, kept)."""
        text = json.dumps(self.to_dict(), indent=1)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        storage.write_text(join_uri(self.output, "summaries", f"{stamp}.json"), text)
        uri = join_uri(self.output, "summary.json")
        storage.write_text(uri, text)
        return uri


def log_to_mlflow(summary: RunSummary, params: dict, settings: MlflowSettings, run_name: str) -> str:
    """One MLflow run with the settings as params, the counts as metrics and the summary as an artifact; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(experiment_id=settings.experiment_id())
    metrics = {
        key: float(value)
        for key, value in summary.to_dict().items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    metrics.update({f"busy_s/{stage}": seconds for stage, seconds in summary.busy_s.items()})
    metrics.update({f"stage_wall_s/{stage}": seconds for stage, seconds in summary.stage_wall_s.items()})
    metrics.update({"failed/" + re.sub(r"[^A-Za-z0-9_.-]+", "_", kind): count for kind, count in summary.failed_by_reason.items()})
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tag("synpo.job", "generate_pairs")
        mlflow.set_tag("synpo.output", summary.output)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(summary.to_dict(), "summary.json")
        return run.info.run_id
