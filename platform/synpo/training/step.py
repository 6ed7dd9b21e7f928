"""One preference step's computation: policy (and reference) log-probs -> objective -> loss.

Framework-agnostic: it computes; the caller (``trainer.py``, or a Ray Train worker) owns backward,
optimizer and schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from synpo.errors import UserError
from synpo.losses import ConfiguredObjective, LossOutput
from synpo.losses.common import mean_logp
from synpo.pairs.schema import PairSchemaError
from synpo.training.collate import PairBatch
from synpo.training.logprobs import ResponseLogps, encode_videos, reference_sequence_logps, response_logps


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or inf on some worker, beyond ``optim.skip_nonfinite_batches``: every worker stops
    together, and the job does not retry (a restart would replay the same data and hit it again)."""


@dataclass
class StepResult:
    loss: torch.Tensor  # scalar: mean over the batch's pairs
    output: LossOutput
    logps: ResponseLogps
    num_tokens: int  # all non-padding tokens processed (prompt + video + responses)

    @property
    def finite(self) -> bool:
        return math.isfinite(float(self.loss.detach()))

    def metrics(self) -> dict[str, float]:
        """Batch means of the step diagnostics (paper Fig. 3: rewards, margin, accuracy, language capability)."""
        chosen, rejected = self.output.chosen_rewards, self.output.rejected_rewards
        values = {
            "loss": float(self.loss.detach()),
            "rewards/chosen": float(chosen.mean()),
            "rewards/rejected": float(rejected.mean()),
            "rewards/margin": float((chosen - rejected).mean()),
            "rewards/accuracy": float((chosen > rejected).float().mean()),
            "nll/chosen": float(-mean_logp(self.logps.chosen_logps.detach(), self.logps.chosen_mask).mean()),
            "nll/rejected": float(-mean_logp(self.logps.rejected_logps.detach(), self.logps.rejected_mask).mean()),
        }
        values.update({f"objective/{name}": float(value.float().mean()) for name, value in self.output.metrics.items()})
        return values


def compute_step(
    model: torch.nn.Module,
    batch: PairBatch,
    objective: ConfiguredObjective,
    reference: str = "adapters_off",
    encode_video_once: bool = True,
) -> StepResult:
    """Loss of ``batch`` under ``objective``. A NaN or inf loss is returned as it is (``StepResult.finite``):
    the trainer decides, with every worker, what happens to it."""
    features = encode_videos(model, batch) if batch.videos is not None and encode_video_once else None
    policy = response_logps(model, batch, video_features=features, encode_video_once=encode_video_once)
    ref_chosen = ref_rejected = None
    if objective.needs_reference:
        if reference == "precomputed":
            if batch.ref_chosen_logp is None:
                raise PairSchemaError(f"objective {objective.name!r} with reference=precomputed needs ref_chosen_logp/ref_rejected_logp in every pair")
            ref_chosen, ref_rejected = batch.ref_chosen_logp, batch.ref_rejected_logp
        else:
            ref_chosen, ref_rejected = reference_sequence_logps(model, batch, video_features=features)
    output = objective(policy.chosen_logps, policy.chosen_mask, policy.rejected_logps, policy.rejected_mask, ref_chosen, ref_rejected)
    loss = output.losses.mean()
    return StepResult(loss=loss, output=output, logps=policy, num_tokens=int(batch.attention_mask.sum()))


def gradient_split(result: StepResult, parameters: list[torch.nn.Parameter]) -> dict[str, float]:
    """Normalised Frobenius norms of the gradient the chosen and the rejected responses contribute.

    The loss depends on the parameters through the chosen log-probs ``c`` and the rejected ones
    ``r``, so ``dL/dtheta = (dL/dc)(dc/dtheta) + (dL/dr)(dr/dtheta)``; each term is computed with its
    own autograd pass (graph retained for the main backward). Reported per term: the mean over the
    trainable matrices ``W`` (m x n) of ``||g_W||_F / (m * n)`` (paper Fig. 3).
    """
    chosen, rejected = result.logps.chosen_logps, result.logps.rejected_logps
    d_chosen, d_rejected = torch.autograd.grad(result.loss, [chosen, rejected], retain_graph=True, allow_unused=True)
    norms: dict[str, float] = {}
    for name, tensor, upstream in (("chosen", chosen, d_chosen), ("rejected", rejected, d_rejected)):
        if upstream is None:  # e.g. SFT: the rejected response does not enter the loss
            norms[f"grad_norm/{name}"] = 0.0
            continue
        grads = torch.autograd.grad(tensor, parameters, grad_outputs=upstream, retain_graph=True, allow_unused=True)
        matrices = [grad for grad in grads if grad is not None and grad.ndim == 2]
        per_matrix = [float(torch.linalg.matrix_norm(grad.float())) / grad.numel() for grad in matrices]
        norms[f"grad_norm/{name}"] = sum(per_matrix) / len(per_matrix) if per_matrix else 0.0
    return norms


class ClonedParameters:
    """``module`` called with detached copies of its trainable parameters (``torch.func.functional_call``).

    Used for the gradient split under DeepSpeed: ZeRO's gradient-reduction hooks sit on the real
    parameters and would fire on the diagnostic autograd passes; the copies carry no hooks.
    Attribute access (``get_video_features``, ``disable_adapter``, ...) goes to ``module``.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.clones = {
            name: parameter.detach().clone().requires_grad_(True)
            for name, parameter in module.named_parameters()
            if parameter.requires_grad
        }

    def __call__(self, **inputs):
        return torch.func.functional_call(self.module, self.clones, args=(), kwargs=inputs)

    def __getattr__(self, name: str):
        return getattr(self.module, name)
