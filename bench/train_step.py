"""Training-step throughput: SynPO vs our DPO vs TRL's DPOTrainer, and encoding the video once vs twice.

    .venv/bin/pip install -e '.[bench]'      # TRL for the comparison
    .venv/bin/python bench/train_step.py [--steps 20] [--warmup 3]

Part 1 — one small text LM (Qwen2, 4 layers x 256 wide, a 32k-row LM head), one batch shape
(8 pairs of toy-world prompt/chosen/rejected captions), LoRA r=16 on every projection, AdamW, CPU
float32. Each method runs warmup + timed optimizer steps; time is measured between consecutive step
ends (data collation included for all). Prints pairs/s and the ratios:
    SynPO / our DPO  (target >= 1.25: SynPO needs no reference forward pass)
    our DPO / TRL    (target >= 1.0)

Part 2 — the tiny video VLM, policy forward+backward on 4 pairs with 16 frames: the pair's video
encoded once and shared by chosen and rejected vs encoded for each sequence.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import Qwen2Config, Qwen2ForCausalLM, TrainerCallback

from synpo.storage import Storage
from synpo.toy.pairs import toy_pairs
from synpo.toy.tokenizer import IM_END, PAD_TOKEN, train_tokenizer
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.training.batches import InMemoryBatches
from synpo.training.collate import PairCollator, PairExample
from synpo.training.config import (
    DeepSpeedSettings,
    DiagnosticsSettings,
    LoraSettings,
    OptimSettings,
    ScalingSettings,
    TrainConfig,
)
from synpo.training.data import PairDataset
from synpo.training.logprobs import response_logps
from synpo.training.model import add_lora, load_base
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.trainer import LoopHooks
from synpo.video.sampler import VideoSamplingConfig

BATCH_PAIRS = 8
LORA_RANK = 16


def build_text_lm(folder: Path, vocab_size: int) -> Path:
    """4 x 256 Qwen2 with the toy tokenizer; the embedding/LM head is ``vocab_size`` rows like a real LLM's
    (rows past the tokenizer's are never fed in, but the LM head pays for them as it would in production)."""
    tokenizer = train_tokenizer()
    pad, eos = tokenizer.convert_tokens_to_ids(PAD_TOKEN), tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen2Config(
        vocab_size=max(vocab_size, len(tokenizer)), hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def ours(model_dir: Path, rows: list[dict], objective: str, steps: int, warmup: int) -> list[float]:
    """Step times (s) of our loop for ``objective`` on a text model."""
    total = warmup + steps
    config = TrainConfig(
        pairs="in-memory", model=str(model_dir), objective=objective,
        scaling=ScalingSettings(num_workers=1), deepspeed=DeepSpeedSettings(enabled=False),
        lora=LoraSettings(rank=LORA_RANK, alpha=2 * LORA_RANK, dropout=0.0),
        optim=OptimSettings(effective_batch_size=BATCH_PAIRS, micro_batch_size=BATCH_PAIRS, epochs=1000, max_steps=total),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=0),
    )
    policy = load_policy(config, model_dir)
    examples = [PairExample(row["pair_id"], row["prompt"], row["chosen"], row["rejected"]) for row in rows]
    batches = InMemoryBatches(examples, PairCollator(policy.processor, max_response_tokens=256), config)
    ends: list[float] = [time.perf_counter()]
    trainer = build_trainer(config, policy, batches, hooks=LoopHooks(log=lambda metrics, step: ends.append(time.perf_counter())))
    ends[0] = time.perf_counter()
    trainer.fit()
    return [later - earlier for earlier, later in zip(ends, ends[1:], strict=False)][warmup:]


class StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.ends = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def trl_dpo(model_dir: Path, rows: list[dict], steps: int, warmup: int, out: Path) -> list[float]:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    base, tokenizer = load_base(model_dir)
    dataset = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
            }
            for row in rows
        ]
    )
    args = DPOConfig(
        output_dir=str(out), per_device_train_batch_size=BATCH_PAIRS, max_steps=warmup + steps, beta=0.1,
        learning_rate=5e-6, logging_steps=1000, save_strategy="no", report_to="none", use_cpu=True,
        disable_dropout=True, dataloader_num_workers=0, max_length=1024,
        # Same numerics and memory strategy as our loop: TRL's defaults (bf16 autocast, gradient
        # checkpointing) are GPU-minded and make CPU steps ~30x slower, which would flatter us.
        bf16=False, gradient_checkpointing=False,
    )
    clock = StepClock()
    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0, target_modules=LoraSettings().target_modules, task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=base, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora, callbacks=[clock])
    clock.ends = [time.perf_counter()]
    trainer.train()
    return [later - earlier for earlier, later in zip(clock.ends, clock.ends[1:], strict=False)][warmup:]


def video_encoding(model_dir: Path, video_rows: list[dict], repeats: int) -> tuple[float, float]:
    """Median seconds of policy forward+backward on 4 pairs (16 frames), video encoded once vs per sequence."""
    base, processor = load_base(model_dir)
    model = add_lora(base, LoraSettings(rank=LORA_RANK, alpha=2 * LORA_RANK, dropout=0.0))
    dataset = PairDataset(video_rows[:4], VideoSamplingConfig(num_frames=16, max_side=224), Storage())
    batch = PairCollator(processor)([dataset[index] for index in range(len(dataset))])
    timings = {True: [], False: []}
    for _ in range(repeats):
        for once in (True, False):
            start = time.perf_counter()
            logps = response_logps(model, batch, encode_video_once=once)
            (logps.chosen_logps.sum() + logps.rejected_logps.sum()).backward()
            timings[once].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    return statistics.median(timings[True]), statistics.median(timings[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per method")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--vocab-size", type=int, default=32000, help="LM-head rows of the text LM (32000: Llama/Mistral size)")
    parser.add_argument("--skip-trl", action="store_true", help="do not run TRL (if the bench extra is not installed)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="synpo-bench-") as work_dir:
        work = Path(work_dir)
        write_toy_videos(str(work / "videos"), count=48, seed=5, spec=ToyVideoSpec(max_duration_s=30), progress=False)
        rows = toy_pairs(str(work / "videos"))
        model_dir = build_text_lm(work / "text-lm", args.vocab_size)
        results = {"synpo": ours(model_dir, rows, "synpo", args.steps, args.warmup), "dpo (ours)": ours(model_dir, rows, "dpo", args.steps, args.warmup)}
        if not args.skip_trl:
            results["dpo (TRL)"] = trl_dpo(model_dir, rows, args.steps, args.warmup, work / "trl")
        print(f"\nPart 1: text LM 4x256 vocab {args.vocab_size}, {BATCH_PAIRS} pairs/step, LoRA r={LORA_RANK}, CPU fp32, {args.steps} timed steps")
        pairs_per_s = {name: BATCH_PAIRS / statistics.median(times) for name, times in results.items()}
        for name, rate in pairs_per_s.items():
            print(f"  {name:12s} {rate:7.2f} pairs/s  (median step {BATCH_PAIRS / rate * 1e3:.0f} ms)")
        print(f"  SynPO / our DPO: {pairs_per_s['synpo'] / pairs_per_s['dpo (ours)']:.2f}x  (target >= 1.25)")
        if "dpo (TRL)" in pairs_per_s:
            print(f"  our DPO / TRL DPO: {pairs_per_s['dpo (ours)'] / pairs_per_s['dpo (TRL)']:.2f}x  (target >= 1.0)")

        from synpo.toy.model import build_tiny_model

        vlm = build_tiny_model(work / "tiny-vlm", kind="vlm")
        once, twice = video_encoding(vlm, rows, repeats=7)
        print("\nPart 2: tiny VLM, 4 pairs, 16 frames 224px, policy forward+backward")
        print(f"  video encoded once: {once * 1e3:.0f} ms   twice: {twice * 1e3:.0f} ms   saving: {twice / once:.2f}x")


if __name__ == "__main__":
    main()
