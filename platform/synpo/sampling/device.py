"""Which torch device a setting names (``auto`` = the first GPU if there is one, else the CPU)."""

from __future__ import annotations

import torch


def pick_device(device: str) -> torch.device:
    """``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` -> a :class:`torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
