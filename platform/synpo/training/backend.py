"""How gradients become updates. The loop calls ``backward`` per micro-batch and ``step`` per
optimizer step; the plain-PyTorch backend owns AdamW, the linear warmup schedule and clipping.
(``deepspeed_backend.py`` has the DeepSpeed backend with the same interface; ``recipe.py`` picks one.)"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from transformers import get_linear_schedule_with_warmup

from synpo.training.config import OptimSettings
from synpo.training.model import trainable_parameters


class Backend(Protocol):
    """What the training loop needs from a backend (:class:`TorchBackend`, ``DeepSpeedBackend``)."""

    hooks_on_parameters: bool  # gradient hooks on the real parameters (diagnostic passes must use copies)
    partitions_parameters: bool  # no rank holds whole parameters (ZeRO-3)

    @property
    def model(self) -> torch.nn.Module: ...  # what to call forward on

    @property
    def learning_rate(self) -> float: ...

    def backward(self, loss: torch.Tensor, accumulation_steps: int) -> None: ...

    def skip(self, accumulation_steps: int) -> None: ...  # a micro-batch that contributes no gradient

    def step(self) -> float: ...

    def save(self, folder: Path) -> None: ...

    def load(self, folder: Path) -> None: ...


def make_optimizer(parameters: list[torch.nn.Parameter], settings: OptimSettings, total_steps: int):
    """AdamW + linear schedule with ``warmup_ratio`` warmup (paper App. C)."""
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    warmup = round(settings.warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=max(total_steps, 1))
    return optimizer, scheduler


class TorchBackend:
    """One process, no wrapper: ``model`` is trained as it is (its parameters that require grad)."""

    hooks_on_parameters = False  # the chosen/rejected gradient split can run on the real parameters
    partitions_parameters = False

    def __init__(self, model: torch.nn.Module, settings: OptimSettings, total_steps: int) -> None:
        self.model = model
        self.named_trainable = trainable_parameters(model)
        self.parameters = [parameter for _, parameter in self.named_trainable]
        self.settings = settings
        self.optimizer, self.scheduler = make_optimizer(self.parameters, settings, total_steps)

    def backward(self, loss: torch.Tensor, accumulation_steps: int) -> None:
        (loss / accumulation_steps).backward()

    def skip(self, accumulation_steps: int) -> None:
        """Nothing to do: the skipped micro-batch simply adds no gradient."""

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

    def save(self, folder: Path) -> None:
        """The trainable weights, optimizer and schedule (single worker): tensors, numbers, strings, lists and
        dicts only (AdamW's and LambdaLR's state dicts are), so :meth:`load` needs no pickled objects."""
        trainable = {name: parameter.detach().cpu() for name, parameter in self.named_trainable}
        torch.save({"trainable": trainable, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}, folder / "torch_state.pt")

    def load(self, folder: Path) -> None:
        """``weights_only=True``: a checkpoint may come from shared storage (s3://), and unpickling arbitrary
        objects runs code; a file holding anything but tensors and plain containers is refused."""
        state = torch.load(folder / "torch_state.pt", weights_only=True)
        with torch.no_grad():
            for name, parameter in self.named_trainable:
                parameter.copy_(state["trainable"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
