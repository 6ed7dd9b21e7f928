"""How gradients become updates. The loop calls ``backward`` per micro-batch and ``step`` per
optimizer step; the plain-PyTorch backend owns AdamW, the linear warmup schedule and clipping.
(The Ray Train job supplies a DeepSpeed backend with the same two methods.)"""

from __future__ import annotations

import torch
from transformers import get_linear_schedule_with_warmup

from synpo.training.config import OptimSettings


class TorchBackend:
    def __init__(self, parameters: list[torch.nn.Parameter], settings: OptimSettings, total_steps: int) -> None:
        self.parameters = parameters
        self.settings = settings
        self.optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
        warmup = round(settings.warmup_ratio * total_steps)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, num_warmup_steps=warmup, num_training_steps=max(total_steps, 1))

    def backward(self, loss: torch.Tensor, accumulation_steps: int) -> None:
        (loss / accumulation_steps).backward()

    def step(self) -> float:
        """Clip, update, advance the schedule; returns the pre-clip global gradient norm."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.settings.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    @property
    def learning_rate(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
