"""Let torchvision 0.28.0 (a CUDA build) import beside torch 2.13.0+cpu in .venv-vllm.

infra/vllm_cpu_venv.sh copies this file into the venv's site-packages and adds
``synpo_torchvision_ops.pth`` (one line: ``import synpo_torchvision_ops``), so it runs at the start of
every Python process of the venv, vLLM's engine-core child processes included.

Why: PyPI's torchvision 0.28.0 is the only build matching torch 2.13, and its C extension cannot load
beside torch+cpu. torchvision then still imports ``torchvision._meta_registrations``, which registers
fake kernels for ``torchvision::nms`` and ``torchvision::qnms``; with no extension nobody defined those
ops, and the import fails. transformers' Qwen2-VL video processor needs ``torchvision.transforms.v2``,
so vLLM cannot even inspect a Qwen2-VL model without torchvision.

What: a meta-path finder that, just before ``torchvision._meta_registrations`` is imported, defines the
two op schemas, only if torchvision's extension did not load. It imports nothing itself and removes
itself after that one import. The ops stay without kernels (calling nms raises). Qwen2-VL never
calls them: the Qwen2-VL video tests of tests/vllm_cpu run with it.
"""

from __future__ import annotations

import importlib.abc
import sys

TARGET = "torchvision._meta_registrations"
SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


def define_missing_ops() -> list[str]:
    """Define ``torchvision::nms`` / ``qnms`` when torchvision's extension is not loaded; returns what was defined."""
    import torch
    from torchvision import extension

    if extension._has_ops():
        return []
    for op in ("nms", "qnms"):
        torch.library.define(f"torchvision::{op}", SCHEMA)
    return ["nms", "qnms"]


class DefineOpsBeforeMetaRegistrations(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == TARGET:
            sys.meta_path.remove(self)
            define_missing_ops()
        return None  # the regular finders load the module


if not any(isinstance(finder, DefineOpsBeforeMetaRegistrations) for finder in sys.meta_path):
    sys.meta_path.insert(0, DefineOpsBeforeMetaRegistrations())
