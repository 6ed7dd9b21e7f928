"""The preference training loop — the only one: the local job runs it in one process, the Ray Train
job runs it inside each worker with a DeepSpeed backend.

    for epoch:                                   (up to optim.epochs)
        for micro-batch:                         (micro_batch_size pairs)
            loss = objective(policy log-probs [, reference log-probs])
            backend.backward(loss / accumulation)
            every `accumulation` micro-batches:  backend.step()  -> log step metrics
        validate -> keep the epoch that is best on `best_metric`
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synpo.losses import get_objective
from synpo.training.collate import PairBatch
from synpo.training.config import TrainConfig
from synpo.training.model import trainable_parameters
from synpo.training.step import compute_step, gradient_split

MetricLogger = Callable[[dict[str, float], int], None]


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    best_adapter_dir: str | None = None


def _mean(rows: list[dict[str, float]], weights: list[int]) -> dict[str, float]:
    total = sum(weights)
    return {key: sum(row[key] * weight for row, weight in zip(rows, weights, strict=True)) / total for key in rows[0]}


class PreferenceTrainer:
    def __init__(
        self,
        config: TrainConfig,
        model: torch.nn.Module,
        backend,
        train_batches: Callable[[int], Iterable[PairBatch]],
        val_batches: Callable[[], Iterable[PairBatch]] | None,
        accumulation_steps: int,
        total_steps: int,
        device: torch.device,
        log: MetricLogger,
        is_main: bool = True,
    ) -> None:
        self.config, self.model, self.backend = config, model, backend
        self.train_batches, self.val_batches = train_batches, val_batches
        self.accumulation_steps, self.total_steps = accumulation_steps, total_steps
        self.device, self.log, self.is_main = device, log, is_main
        self.objective = get_objective(config.objective)
        self.parameters = [parameter for _, parameter in trainable_parameters(model)]

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _step_result(self, batch: PairBatch, step: int):
        with self._autocast():
            return compute_step(
                self.model,
                batch.to(self.device),
                self.objective,
                self.config.hyperparameters,
                reference=self.config.reference,
                encode_video_once=self.config.encode_video_once,
                step=step,
            )

    def evaluate(self) -> dict[str, float]:
        """Validation means: loss, accuracy, margin and the held-out NLL of chosen captions."""
        if self.val_batches is None:
            return {}
        rows, weights = [], []
        self.model.eval()
        with torch.no_grad():
            for batch in self.val_batches():
                metrics = self._step_result(batch, step=-1).metrics()
                rows.append(metrics)
                weights.append(batch.num_pairs)
        self.model.train()
        if not rows:
            return {}
        mean = _mean(rows, weights)
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

    def _optimizer_step(self, result: TrainResult, window: _StepWindow, epoch: int) -> None:
        grad_norm = self.backend.step()
        result.steps += 1
        elapsed = time.perf_counter() - window.started
        row = {
            **_mean(window.rows, window.weights),
            **window.split,
            "grad_norm/total": grad_norm,
            "lr": self.backend.learning_rate,
            "tokens_per_s": window.tokens / elapsed,
            "pairs_per_s": sum(window.weights) / elapsed,
            "epoch": float(epoch),
        }
        every = self.config.diagnostics
        if every.eval_every_steps and result.steps % every.eval_every_steps == 0:
            row.update(self.evaluate())
        if result.steps % every.log_every_steps == 0 or "val/loss" in row:
            self.log(row, result.steps)
            result.history.append({"step": result.steps, **row})

    def _reached_max_steps(self, result: TrainResult) -> bool:
        return self.config.optim.max_steps is not None and result.steps >= self.config.optim.max_steps

    def fit(self, start_epoch: int = 0, start_step: int = 0, save_adapter: Callable[[int], str] | None = None) -> TrainResult:
        """Train from ``start_epoch``; ``save_adapter(epoch) -> dir`` is called when an epoch is the best so far.

        A trailing group of fewer than ``accumulation_steps`` micro-batches at the end of an epoch
        still makes an optimizer step (its gradient is smaller, never carried into the next epoch).
        """
        result = TrainResult(steps=start_step)
        grad_split_every = self.config.diagnostics.grad_norm_every_steps
        self.model.train()
        for epoch in range(start_epoch, self.config.optim.epochs):
            window = _StepWindow()
            for micro_index, batch in enumerate(self.train_batches(epoch)):
                step_output = self._step_result(batch, result.steps + 1)
                starts_step = micro_index % self.accumulation_steps == 0
                if starts_step and grad_split_every and (result.steps + 1) % grad_split_every == 0:
                    window.split = gradient_split(step_output, self.parameters)
                self.backend.backward(step_output.loss, self.accumulation_steps)
                window.add(step_output.metrics(), batch.num_pairs, step_output.num_tokens)
                if (micro_index + 1) % self.accumulation_steps == 0:
                    self._optimizer_step(result, window, epoch)
                    window = _StepWindow()
                    if self._reached_max_steps(result):
                        break
            if window.rows:
                self._optimizer_step(result, window, epoch)
            validation = self.evaluate()
            if validation:
                self.log({**validation, "epoch": float(epoch)}, result.steps)
                result.history.append({"step": result.steps, **validation, "epoch": float(epoch)})
            value = validation.get(self.config.best_metric)
            if value is not None and self._is_better(value, result.best_value):
                result.best_epoch, result.best_value = epoch, value
                if save_adapter is not None and self.is_main:
                    result.best_adapter_dir = save_adapter(epoch)
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
    started: float = field(default_factory=time.perf_counter)

    def add(self, metrics: dict[str, float], pairs: int, tokens: int) -> None:
        self.rows.append(metrics)
        self.weights.append(pairs)
        self.tokens += tokens


def save_peft_adapter(model: torch.nn.Module, out: str | Path) -> str:
    out = Path(out)
    model.save_pretrained(out)
    return str(out)
