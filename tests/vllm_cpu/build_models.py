"""Build the vLLM tests' models in the MAIN venv (.venv): the tiny Qwen2 text LM and a LoRA adapter for it.

The vLLM venv (.venv-vllm) has its own torch and transformers and no peft, so the models are made
here and handed over as folders:

    .venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test
    SYNPO_TINY_TEXT_MODEL=runs/vllm-test/tiny-text SYNPO_TINY_TEXT_LORA=runs/vllm-test/tiny-text-lora \
        .venv-vllm/bin/python -m pytest tests/vllm_cpu

The adapter is rank 8 on every attention and MLP projection, with *random* A and B
(``init_lora_weights=False``; peft's default B = 0 would make it a no-op) and alpha 64, so applying
it visibly changes what the random tiny model writes. Both folders are reused when already built
(≈10 s either way, mostly imports).
"""

from __future__ import annotations

import argparse
from pathlib import Path

LORA_RANK = 8
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_lora_adapter(model_dir: Path, out: Path, seed: int = 0) -> Path:
    """A PEFT LoRA adapter folder for ``model_dir`` with random non-zero weights (reused unless the model is newer)."""
    adapter_config = out / "adapter_config.json"
    if adapter_config.is_file() and adapter_config.stat().st_mtime >= (model_dir / "config.json").stat().st_mtime:
        return out
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=LORA_RANK, lora_alpha=64, target_modules=LORA_TARGETS, init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder that receives tiny-text/ and tiny-text-lora/")
    args = parser.parse_args()
    from synpo.toy.model import build_tiny_model

    model_dir = build_tiny_model(args.out / "tiny-text", kind="text")
    adapter_dir = build_lora_adapter(model_dir, args.out / "tiny-text-lora")
    print(f"SYNPO_TINY_TEXT_MODEL={model_dir} SYNPO_TINY_TEXT_LORA={adapter_dir}")


if __name__ == "__main__":
    main()
