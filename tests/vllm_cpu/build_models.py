"""Build the vLLM tests' models and videos in the MAIN venv (.venv), where the platform's training runs:

    tiny-text/        the tiny Qwen2 text LM
    tiny-text-lora/   a LoRA adapter for it: rank 8 on every projection, *random* A and B
                      (``init_lora_weights=False``; peft's default B = 0 would be a no-op), alpha 64
    tiny-vlm/         the tiny Qwen2-VL video model, warm-started on toy captions (it writes words, not
                      token soup, so its samples can be teacher-forced back through the HF engine)
    tiny-<family>/    the tiny Qwen2.5-VL and Qwen3-VL (random weights): the families whose frames carry times
    tiny-vlm-lora/    a LoRA adapter for it written by the platform's training loop
                      (``synpo.training.recipe``, as the training job's workers run it): a few SynPO
                      steps on toy pairs, rank 8 on the language model's projections
    videos/           toy mp4 files (the pairs' videos; the tests caption them)

    .venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test
    SYNPO_VLLM_TEST_DIR=runs/vllm-test .venv-vllm/bin/python -m pytest tests/vllm_cpu

Everything is reused when already built (≈10 s, mostly imports; ≈2 min the first time, the warm start).
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


VLM_WARM_START_STEPS = 150
OTHER_FAMILIES = ("qwen2.5-vl", "qwen3-vl")  # tests/vllm_cpu/test_vllm_families.py
VLM_TRAINING_STEPS = 6


def train_vlm_adapter(model_dir: Path, videos: Path, out: Path) -> Path:
    """``out``: the LoRA adapter a short SynPO run of the platform's training loop writes (reused unless the model is newer)."""
    adapter_config = out / "adapter_config.json"
    if adapter_config.is_file() and adapter_config.stat().st_mtime >= (model_dir / "config.json").stat().st_mtime:
        return out
    from synpo.storage import Storage
    from synpo.toy.pairs import toy_pairs
    from synpo.training.batches import InMemoryBatches
    from synpo.training.collate import PairCollator
    from synpo.training.config import (
        DeepSpeedSettings,
        DiagnosticsSettings,
        LoraSettings,
        OptimSettings,
        ScalingSettings,
        TrainConfig,
    )
    from synpo.training.data import PairDataset
    from synpo.training.recipe import build_trainer, load_policy
    from synpo.video.sampler import VideoSamplingConfig

    video = VideoSamplingConfig(num_frames=8, max_side=160)
    config = TrainConfig(
        pairs=str(videos),
        model=str(model_dir),
        objective="synpo",
        scaling=ScalingSettings(num_workers=1),
        deepspeed=DeepSpeedSettings(enabled=False),
        lora=LoraSettings(rank=LORA_RANK, alpha=16, dropout=0.0),
        optim=OptimSettings(learning_rate=2e-2, warmup_ratio=0.0, effective_batch_size=4, micro_batch_size=4, max_steps=VLM_TRAINING_STEPS),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=0),
        video=video,
    )
    policy = load_policy(config, model_dir)
    dataset = PairDataset(toy_pairs(str(videos)), video, Storage())
    examples = [dataset[index] for index in range(len(dataset))]
    build_trainer(config, policy, InMemoryBatches(examples, PairCollator(policy.processor, 96), config)).fit()
    policy.model.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder that receives the models, adapters and videos")
    args = parser.parse_args()
    from synpo.toy.model import build_tiny_model
    from synpo.toy.videos import ToyVideoSpec, write_toy_videos

    text_model = build_tiny_model(args.out / "tiny-text", kind="text")
    build_lora_adapter(text_model, args.out / "tiny-text-lora")
    videos = args.out / "videos"
    if not any(videos.glob("*.mp4")):
        write_toy_videos(str(videos), count=8, seed=3, spec=ToyVideoSpec(min_duration_s=4, max_duration_s=8), progress=False)
    vlm = build_tiny_model(args.out / "tiny-vlm", kind="vlm", warm_start_steps=VLM_WARM_START_STEPS)
    train_vlm_adapter(vlm, videos, args.out / "tiny-vlm-lora")
    for family in OTHER_FAMILIES:
        build_tiny_model(args.out / f"tiny-{family}", kind="vlm", family=family)
    print(f"SYNPO_VLLM_TEST_DIR={args.out}")


if __name__ == "__main__":
    main()
