"""The preference training loop — the only one: each Ray Train worker runs it (DeepSpeed backend), and so
do the toy warm start, the benchmarks and the tests in one process (plain-PyTorch backend).

    for epoch:                                   (up to optim.epochs)
        for micro-batch:                         (micro_batch_size pairs)
            loss = objective(policy log-probs [, reference log-probs])
            backend.backward(loss / accumulation)
            every `accumulation` micro-batches:  backend.step()  -> log step metrics
        validate -> keep the epoch that is best on `best_metric`
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from synpo.training.backend import Backend
from synpo.training.batches import PairBatches
from synpo.training.collate import PairBatch
from synpo.training.config import TrainConfig
from synpo.training.step import ClonedParameters, NonFiniteLossError, StepResult, compute_step, gradient_split

MetricLogger = Callable[[dict[str, float], int], None]
Reducer = Callable[[dict[str, float], float], dict[str, float]]
"""(local weighted means, local weight) -> means over all workers."""
Checkpointer = Callable[[Backend, "TrainResult", int, int, dict[str, float]], None]
"""(backend, result so far, epoch, optimizer steps done in that epoch, latest metrics) -> save a checkpoint."""


def local_only(metrics: dict[str, float], weight: float) -> dict[str, float]:
    return metrics


def this_rank(flag: bool) -> bool:
    return flag


def as_only_rank(value: Any) -> list[Any]:
    return [value]


def no_logging(metrics: dict[str, float], step: int) -> None:
    return None


@dataclass(frozen=True)
class LoopHooks:
    """Where the loop reports and what it agrees on with the other workers (``synpo.training.collectives``):
    metric rows (rank 0 logs them), cross-worker means, a flag true on every rank, every rank's value, checkpoints."""

    log: MetricLogger = no_logging
    reduce: Reducer = local_only
    all_true: Callable[[bool], bool] = this_rank
    gather: Callable[[Any], list[Any]] = as_only_rank
    checkpoint: Checkpointer | None = None


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    epochs_done: int = 0
    skipped_batches: int = 0  # micro-batches skipped by every worker for a non-finite loss


def _mean(rows: list[dict[str, float]], weights: list[int]) -> dict[str, float]:
    if not rows:  # every micro-batch of the step was skipped (on every worker alike)
        return {}
    total = sum(weights)
    return {key: sum(row[key] * weight for row, weight in zip(rows, weights, strict=True)) / total for key in rows[0]}


class PreferenceTrainer:
    """Built by :func:`synpo.training.recipe.build_trainer`; everything it does follows from ``config``."""

    def __init__(self, config: TrainConfig, backend: Backend, batches: PairBatches, device: torch.device, hooks: LoopHooks) -> None:
        self.config, self.backend, self.batches = config, backend, batches
        self.model = backend.model
        self.device, self.hooks = device, hooks
        self.objective = config.loss_objective()
        self.accumulation_steps = config.accumulation_steps
        # ZeRO-3 partitions the parameters: no rank can take the chosen/rejected split of whole gradients.
        self.grad_split_every = 0 if backend.partitions_parameters else config.diagnostics.grad_norm_every_steps

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _step_result(self, batch: PairBatch) -> StepResult:
        with self._autocast():
            return compute_step(
                self.model, batch.to(self.device, non_blocking=True), self.objective,
                reference=self.config.reference, encode_video_once=self.config.encode_video_once,
            )

    def _gradient_split(self, batch: PairBatch) -> dict[str, float]:
        """Chosen/rejected gradient norms of the batch's first pair, from a forward of its own. Called after the
        micro-batch's backward has freed its graph, so the diagnostic never holds a second batch's activations
        beside the step's; under DeepSpeed on hook-free parameter copies (ZeRO's reduction hooks sit on the real ones)."""
        if self.backend.hooks_on_parameters:
            model = ClonedParameters(self.model.module)
            parameters = list(model.clones.values())
        else:
            model, parameters = self.model, [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        with self._autocast():
            result = compute_step(
                model, batch.first_pairs(1).to(self.device), self.objective,
                reference=self.config.reference, encode_video_once=self.config.encode_video_once,
            )
        return gradient_split(result, parameters)

    def evaluate(self) -> dict[str, float]:
        """Validation means: loss, accuracy, margin and the held-out NLL of chosen captions."""
        batches = self.batches.validation()
        if batches is None:
            return {}
        rows, weights = [], []
        self.model.eval()
        with torch.no_grad():
            for batch in batches:
                metrics = self._step_result(batch).metrics()
                rows.append(metrics)
                weights.append(batch.num_pairs)
        self.model.train()
        if not rows:
            return {}
        mean = self.hooks.reduce(_mean(rows, weights), float(sum(weights)))
        return {
            "val/loss": mean["loss"],
            "val/accuracy": mean["rewards/accuracy"],
            "val/margin": mean["rewards/margin"],
            "val/nll_chosen": mean["nll/chosen"],
        }

    def _is_better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best if self.config.best_is_lower else value > best

    def _optimizer_step(self, result: TrainResult, window: _StepWindow, epoch: int) -> dict[str, float]:
        grad_norm = self.backend.step()
        result.steps += 1
        elapsed = time.perf_counter() - window.started
        row = {
            **self.hooks.reduce(_mean(window.rows, window.weights), float(sum(window.weights))),
            **window.split,
            "grad_norm/total": grad_norm,
            "lr": self.backend.learning_rate,
            "tokens_per_s": window.tokens / elapsed,  # this worker's
            "pairs_per_s": sum(window.weights) / elapsed,
            "epoch": float(epoch),
        }
        if result.skipped_batches:
            row["skipped_batches"] = float(result.skipped_batches)
        every = self.config.diagnostics
        if every.eval_every_steps and result.steps % every.eval_every_steps == 0:
            row.update(self.evaluate())
        if result.steps % every.log_every_steps == 0 or "val/loss" in row:
            self.hooks.log(row, result.steps)
            result.history.append({"step": result.steps, **row})
        return row

    def _non_finite_where(self, output: StepResult, batch: PairBatch) -> str:
        """Which workers had a non-finite loss, with their pairs (every rank calls this together)."""
        mine = None
        if not output.finite:
            losses = output.output.losses.detach().float().cpu().tolist()
            mine = (float(output.loss.detach()), [pair for pair, loss in zip(batch.pair_ids, losses, strict=True) if not math.isfinite(loss)])
        return "; ".join(
            f"worker {rank}: loss {found[0]} from pairs {found[1]}" for rank, found in enumerate(self.hooks.gather(mine)) if found is not None
        )

    def _skip_or_stop(self, result: TrainResult, where: str, epoch: int) -> None:
        """Every worker, together: skip the micro-batch (no gradient from it) while ``optim.skip_nonfinite_batches``
        allows, else raise :class:`NonFiniteLossError` on every worker alike."""
        at = f"optimizer step {result.steps + 1} (epoch {epoch})"
        limit = self.config.optim.skip_nonfinite_batches
        if result.skipped_batches >= limit:
            raise NonFiniteLossError(
                f"non-finite loss at {at}: {where}. Training stopped on every worker"
                + (f" after skipping {limit} such micro-batch(es) (optim.skip_nonfinite_batches)" if limit else "")
                + "; a rerun would meet the same data: check those pairs (e.g. their ref_*_logp), lower optim.learning_rate, "
                "or raise optim.skip_nonfinite_batches to skip them"
            )
        result.skipped_batches += 1
        print(f"warning: non-finite loss at {at}: {where}; every worker skips this micro-batch "
              f"({result.skipped_batches} of optim.skip_nonfinite_batches={limit})", flush=True)  # fmt: skip
        self.backend.skip(self.accumulation_steps)

    def _reached_max_steps(self, result: TrainResult) -> bool:
        return self.config.optim.max_steps is not None and result.steps >= self.config.optim.max_steps

    def fit(self, start_epoch: int = 0, resume: TrainResult | None = None, steps_done_in_start_epoch: int = 0) -> TrainResult:
        """Train from ``start_epoch`` (continuing ``resume``'s counters and best epoch, if given).

        ``batches.train(start_epoch)`` must already skip the ``steps_done_in_start_epoch`` optimizer
        steps a resumed run completed. ``hooks.checkpoint`` is called at every epoch end and every
        ``run.checkpoint_every_steps``; the epoch that is best on ``best_metric`` is recorded in the result.
        A trailing group of fewer than ``accumulation_steps`` micro-batches at the end of an epoch
        still makes an optimizer step (its gradient is smaller, never carried into the next epoch).

        A micro-batch whose loss is NaN or inf on any worker is handled alike on every worker (the flag is
        agreed through ``hooks.all_true``, so no rank waits in a reduction another left): all skip it, up to
        ``optim.skip_nonfinite_batches`` per run, then all raise :class:`NonFiniteLossError`.
        """
        result = resume or TrainResult()
        grad_split_every, checkpoint = self.grad_split_every, self.hooks.checkpoint
        checkpoint_every = self.config.run.checkpoint_every_steps
        self.model.train()
        for epoch in range(start_epoch, self.config.optim.epochs):
            window = _StepWindow()
            steps_in_epoch = steps_done_in_start_epoch if epoch == start_epoch else 0
            for micro_index, batch in enumerate(self.batches.train(epoch)):
                step_output = self._step_result(batch)
                starts_step = micro_index % self.accumulation_steps == 0
                if self.hooks.all_true(step_output.finite):
                    self.backend.backward(step_output.loss, self.accumulation_steps)
                    if starts_step and grad_split_every and (result.steps + 1) % grad_split_every == 0:
                        window.split = self._gradient_split(batch)  # after backward: the step's graph is gone
                    window.add(step_output.metrics(), batch.num_pairs, step_output.num_tokens)
                else:
                    where = self._non_finite_where(step_output, batch)
                    del step_output  # its graph, before the skip's backward
                    self._skip_or_stop(result, where, epoch)
                    window.skipped += 1
                if (micro_index + 1) % self.accumulation_steps == 0:
                    row = self._optimizer_step(result, window, epoch)
                    steps_in_epoch += 1
                    window = _StepWindow()
                    if self._reached_max_steps(result):
                        break
                    if checkpoint and checkpoint_every and result.steps % checkpoint_every == 0:
                        checkpoint(self.backend, result, epoch, steps_in_epoch, row)
            if window.rows or window.skipped:
                self._optimizer_step(result, window, epoch)
            validation = self.evaluate()
            if validation:
                self.hooks.log({**validation, "epoch": float(epoch)}, result.steps)
                result.history.append({"step": result.steps, **validation, "epoch": float(epoch)})
            value = validation.get(self.config.best_metric)
            if value is not None and self._is_better(value, result.best_value):
                result.best_epoch, result.best_value = epoch, value
            result.epochs_done = epoch + 1
            if checkpoint:
                checkpoint(self.backend, result, epoch + 1, 0, {**validation, "epoch": float(epoch)})
            if self._reached_max_steps(result):
                break
        return result


@dataclass
class _StepWindow:
    """Micro-batch metrics gathered for one optimizer step."""

    rows: list[dict[str, float]] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)
    tokens: int = 0
    split: dict[str, float] = field(default_factory=dict)
    skipped: int = 0  # micro-batches skipped for a non-finite loss
    started: float = field(default_factory=time.perf_counter)

    def add(self, metrics: dict[str, float], pairs: int, tokens: int) -> None:
        self.rows.append(metrics)
        self.weights.append(pairs)
        self.tokens += tokens
