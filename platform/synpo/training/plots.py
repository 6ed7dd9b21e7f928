"""The paper's Figure-3-style training curves as one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(row["step"], row[key]) for row in history if key in row]
    return [step for step, _ in points], [value for _, value in points]


def plot_training_curves(history: list[dict], out: str | Path, title: str) -> Path:
    """Rewards (chosen vs rejected), margin/accuracy, gradient split, loss/NLL — one panel each."""
    panels = [
        ("rewards", [("rewards/chosen", "chosen"), ("rewards/rejected", "rejected")]),
        ("margin & accuracy", [("rewards/margin", "margin"), ("rewards/accuracy", "accuracy"), ("val/accuracy", "val accuracy")]),
        ("gradient norm ||g||_F/(mn)", [("grad_norm/chosen", "from chosen"), ("grad_norm/rejected", "from rejected")]),
        ("loss & language NLL", [("loss", "train loss"), ("val/loss", "val loss"), ("nll/chosen", "NLL chosen"), ("val/nll_chosen", "val NLL chosen")]),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for axis, (name, keys) in zip(axes, panels, strict=True):
        for key, label in keys:
            steps, values = _series(history, key)
            if steps:
                axis.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
        axis.set_title(name)
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
        if axis.has_data():
            axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
