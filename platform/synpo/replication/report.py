"""The replication's report: ``replication.md`` with a table, Fig.-3-style curves and training speed.

Every number is computed here from what the run left behind (evaluation metrics, per-step training
histories, the pair sets); nothing is typed in by hand. Means ± sample standard deviations are over
the seeds; with one seed the spread is shown as "–".
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from synpo.losses import OBJECTIVES  # noqa: E402
from synpo.replication.run import Replication  # noqa: E402
from synpo.toy.facts import KINDS  # noqa: E402

METRICS = (
    ("facts/precision", "fact precision ↑"),
    ("facts/recall", "fact recall ↑"),
    ("facts/hallucination_rate", "hallucination rate ↓"),
    ("facts/precision/colour", "colour precision ↑"),
    ("facts/precision/motion", "motion precision ↑"),
    ("CIDEr", "CIDEr ↑"),
)
HEADLINE_METRIC = "facts/precision"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    values = [value for value in values if not math.isnan(value)]
    if not values:
        return math.nan, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f} ± –"


Setting = tuple[str, float]  # (judge, learning rate): one group of rows, one figure


def settings(replication: Replication) -> list[Setting]:
    return [(judge, rate) for judge in replication.config.judges for rate in replication.config.train.learning_rates]


def metric_values(replication: Replication) -> dict[tuple[str, float, str], dict[str, list[float]]]:
    """(judge, learning rate, objective) -> metric -> one value per seed."""
    values: dict[tuple[str, float, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run, result in replication.runs:
        for metric, _ in METRICS:
            values[(run.judge, run.learning_rate, run.objective)][metric].append(result.metrics.get(metric, math.nan))
    return values


def results_table(replication: Replication) -> list[str]:
    values = metric_values(replication)
    seeds = len(replication.config.seeds)
    lines = [
        "| judge | lr | objective | " + " | ".join(label for _, label in METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
        "| – | – | base model (no preference training) | "
        + " | ".join(cell([replication.base_eval.metrics.get(metric, math.nan)]).replace(" ± –", "") for metric, _ in METRICS)
        + " |",
    ]
    for judge, rate in settings(replication):
        for objective in replication.config.objectives:
            row = values[(judge, rate, objective)]
            lines.append(f"| {judge} | {rate:g} | {objective} (×{seeds}) | " + " | ".join(cell(row[metric]) for metric, _ in METRICS) + " |")
    return lines


def step_means(replication: Replication, setting: Setting, objective: str, key: str) -> tuple[list[int], list[float]]:
    """Per optimizer step, the mean of ``key`` over the seeds' runs."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for run, _ in replication.runs:
        if (run.judge, run.learning_rate) == setting and run.objective == objective:
            for row in run.history:
                if key in row:
                    by_step[row["step"]].append(row[key])
    steps = sorted(by_step)
    return steps, [statistics.fmean(by_step[step]) for step in steps]


CURVES = (
    ("nll/chosen", "chosen: mean log-likelihood per token", -1.0),
    ("nll/rejected", "rejected: mean log-likelihood per token", -1.0),
    ("rewards/chosen", "chosen reward (each objective's own)", 1.0),
    ("rewards/rejected", "rejected reward (each objective's own)", 1.0),
)


def figure_name(setting: Setting) -> str:
    return f"curves-{setting[0]}-lr{setting[1]:g}.png"


def plot_curves(replication: Replication, setting: Setting, out: Path) -> Path:
    """Fig.-3-style panels for one judge's pairs at one learning rate: chosen and rejected log-likelihood and rewards per step."""
    figure, axes = plt.subplots(1, len(CURVES), figsize=(4.6 * len(CURVES), 4))
    for axis, (key, title, sign) in zip(axes, CURVES, strict=True):
        for objective in replication.config.objectives:
            steps, means = step_means(replication, setting, objective, key)
            axis.plot(steps, [sign * value for value in means], label=objective)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{setting[0]} judge's pairs, lr {setting[1]:g} (mean over {len(replication.config.seeds)} seed(s))")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def likelihood_table(replication: Replication) -> list[str]:
    """The curves' endpoints: mean log-likelihood per token of chosen and rejected at the first and last step."""
    lines = ["| judge | lr | objective | chosen: first → last step | rejected: first → last step |", "|---|---|---|---|---|"]
    for setting in settings(replication):
        for objective in replication.config.objectives:
            cells = []
            for key in ("nll/chosen", "nll/rejected"):
                _, means = step_means(replication, setting, objective, key)
                cells.append(f"{-means[0]:.3f} → {-means[-1]:.3f} ({-(means[-1] - means[0]):+.3f})" if means else "n/a")
            lines.append(f"| {setting[0]} | {setting[1]:g} | {objective} | " + " | ".join(cells) + " |")
    return lines


def speed_rows(replication: Replication) -> dict[str, list[float]]:
    speeds: dict[str, list[float]] = defaultdict(list)
    for run, _ in replication.runs:
        speeds[run.objective].append(run.pairs_per_s)
    return speeds


def speed_table(replication: Replication) -> list[str]:
    speeds = speed_rows(replication)
    lines = ["| objective | pairs/s (median step, mean ± std over runs) | reference pass |", "|---|---|---|"]
    for objective in replication.config.objectives:
        lines.append(f"| {objective} | {cell(speeds[objective])} | {'yes' if OBJECTIVES[objective].needs_reference else 'no'} |")
    if speeds.get("synpo") and speeds.get("dpo"):
        lines.append(f"| **synpo / dpo** | **{statistics.fmean(speeds['synpo']) / statistics.fmean(speeds['dpo']):.2f}×** | |")
    return lines


def comparison_lines(replication: Replication) -> list[str]:
    """Per judge and learning rate: SynPO against each other objective on the headline metric, with the seeds' spread."""
    values = metric_values(replication)
    lines = []
    for judge, rate in settings(replication):
        synpo = values.get((judge, rate, "synpo"), {}).get(HEADLINE_METRIC)
        if not synpo:
            continue
        synpo_mean, synpo_std = mean_std(synpo)
        for objective in replication.config.objectives:
            if objective == "synpo":
                continue
            other_mean, other_std = mean_std(values[(judge, rate, objective)][HEADLINE_METRIC])
            where = f"{judge} pairs, lr {rate:g}"
            if math.isnan(synpo_mean) or math.isnan(other_mean):
                lines.append(f"- {where}, SynPO vs {objective}: no fact precision to compare (no caption stated a readable fact)")
                continue
            spread = max(std or 0.0 for std in (synpo_std, other_std))
            difference = synpo_mean - other_mean
            verdict = "within the seeds' spread" if abs(difference) <= spread else ("SynPO higher" if difference > 0 else "SynPO lower")
            lines.append(f"- {where}, SynPO − {objective}: {difference:+.3f} fact precision (largest seed std {spread:.3f}): {verdict}")
    return lines


def pairs_lines(replication: Replication) -> list[str]:
    summary = replication.pair_summary
    totals = summary.totals  # the whole output's counts, whether this run or an earlier one wrote them
    lines = [
        f"- pair job: {summary.videos_in} training videos, {totals.get('paired', 0)} pairs kept by the rules judge, "
        f"{totals.get('filtered', 0)} filtered by margin, {totals.get('failed', 0)} failed",
    ]
    for judge, pair_set in replication.pair_sets.items():
        count = len(pair_set.pairs)
        if not count:
            lines.append(f"- {judge} judge: no pairs")
            continue
        lines.append(
            f"- {judge} judge: {count} pairs; by the truth (fact F1), the chosen caption is better in {pair_set.truly_better} "
            f"({pair_set.truly_better / count:.0%}), worse in {pair_set.truly_worse} ({pair_set.truly_worse / count:.0%}); "
            f"mean fact F1 chosen {statistics.fmean(pair_set.chosen_f1):.3f}, rejected {statistics.fmean(pair_set.rejected_f1):.3f}"
        )
    return lines


def kinds_line(metrics: dict[str, float]) -> str:
    """``shape 0.82, colour 0.11, …``: precision per kind of fact, for the kinds the captions stated."""
    present = [(kind, metrics[f"facts/precision/{kind}"]) for kind in KINDS if f"facts/precision/{kind}" in metrics]
    return ", ".join(f"{kind} {value:.2f}" for kind, value in present) or "no fact stated"


def write_report(replication: Replication, out: Path, command: str, commit: str) -> Path:
    """Write ``out`` (Markdown) and its figures into ``<out stem>/``; returns ``out``."""
    config = replication.config
    figures = out.parent / out.stem
    images = [plot_curves(replication, setting, figures / figure_name(setting)) for setting in settings(replication)]
    base = replication.base_eval.metrics
    text = [
        "# Known-answer replication on CPU: SynPO vs DPO, SimPO and SFT in the toy world",
        "",
        "Generated by `jobs/replicate.py`; do not edit by hand. Every run is also in MLflow "
        f"(`{config.mlflow.tracking_uri}`, experiment `{config.mlflow.experiment}`).",
        "",
        f"- command: `{command}`",
        f"- commit: `{commit}`",
        f"- compute time: {sum(replication.part_seconds.values()) / 60:.1f} min, the sum of every part's time when it ran "
        f"(this invocation: {replication.seconds / 60:.1f} min; a rerun reuses finished parts)",
        "",
        "## Set-up",
        "",
        f"- base model: the tiny toy VLM warm-started for {config.base.warm_start_steps} supervised steps on true toy captions "
        f"(fact precision {base.get('facts/precision', math.nan):.3f}, recall {base.get('facts/recall', math.nan):.3f} on the held-out videos; "
        f"precision per kind of fact: {kinds_line(base)})",
        f"- videos: {config.data.train_videos} for pair generation, {config.data.heldout_videos} held out, "
        f"{config.data.min_duration_s}–{config.data.max_duration_s} s",
        f"- candidates: the pair job (HF engine), mode `{config.pairs.candidates.mode}`, n = {config.pairs.candidates.sampling.n}, "
        f"T = {config.pairs.candidates.sampling.temperature}; the same candidates judged by the rules judge "
        f"(min_margin {config.pairs.judge.min_margin:g}) and by the oracle (fact F1 against the truth, min_margin {config.oracle_min_margin:g})",
        *pairs_lines(replication),
        f"- training: {config.train.steps} steps × {config.train.batch_size} pairs, LoRA r = {config.train.lora.rank}, "
        f"learning rates {', '.join(f'{rate:g}' for rate in config.train.learning_rates)} (every objective at each), "
        f"seeds {config.seeds}, each objective at its default hyperparameters"
        + (f" except {config.train.hyperparameters}" if config.train.hyperparameters else ""),
        f"- evaluation: the evaluation job, greedy captions of the {config.data.heldout_videos} held-out videos, "
        "facts read from each caption and checked against the scene",
        "",
        "## Results (held-out videos, mean ± std over seeds)",
        "",
        *results_table(replication),
        "",
        *comparison_lines(replication),
        "",
        "## Training curves (paper Fig. 3)",
        "",
        *(f"![{image.stem}]({figures.name}/{image.name})" for image in images),
        "",
        *likelihood_table(replication),
        "",
        "## Training speed",
        "",
        *speed_table(replication),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(text))
    return out
