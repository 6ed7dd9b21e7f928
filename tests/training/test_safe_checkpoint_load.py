"""DeepSpeed checkpoints load weights-only: a ZeRO round trip restores the training state; a crafted
file in the checkpoint folder is refused before any of its code runs.

Single process on CPU: DeepSpeed over a one-rank gloo process group, the tiny Qwen2 text model with LoRA.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import deepspeed
import pytest
import torch

from synpo.training.checkpoints import ADAPTER_DIR, fetch, needed_to_resume
from synpo.training.config import DeepSpeedSettings, LoraSettings, OptimSettings, ScalingSettings, TrainConfig
from synpo.training.deepspeed_backend import CHECKPOINT_TAG, DeepSpeedBackend
from synpo.training.model import add_lora, load_base

STEPS = 3


def train_config(zero_stage: int) -> TrainConfig:
    return TrainConfig(
        pairs="unused",
        scaling=ScalingSettings(num_workers=1),
        deepspeed=DeepSpeedSettings(zero_stage=zero_stage),
        lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        optim=OptimSettings(learning_rate=1e-2, warmup_ratio=0.5, effective_batch_size=2, micro_batch_size=2, max_steps=8),
    )


def lora_backend(model_dir: Path, zero_stage: int, seed: int) -> DeepSpeedBackend:
    """A fresh LoRA model wrapped by DeepSpeed; ``seed`` decides the LoRA A matrices (B starts at zero)."""
    torch.manual_seed(seed)
    base, _ = load_base(model_dir)
    model = add_lora(base, LoraSettings(rank=4, alpha=8, dropout=0.0))
    return DeepSpeedBackend(model, train_config(zero_stage), world_size=1, total_steps=8, use_bf16=False)


def training_state(backend: DeepSpeedBackend) -> dict[str, torch.Tensor]:
    """The trainable weights (gathered, for ZeRO-3) and the AdamW moments of the fp32 master partitions."""
    engine = backend.engine
    named = [(name, parameter) for name, parameter in engine.module.named_parameters() if parameter.requires_grad]
    with deepspeed.zero.GatheredParameters([parameter for _, parameter in named]):
        state = {name: parameter.detach().clone() for name, parameter in named}
    for index, moments in enumerate(engine.optimizer.optimizer.state.values()):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            state[f"optimizer.{index}.{key}"] = moments[key].clone()
    return state


def train_and_save(model_dir: Path, zero_stage: int, folder: Path) -> tuple[DeepSpeedBackend, dict[str, torch.Tensor]]:
    backend = lora_backend(model_dir, zero_stage, seed=0)
    vocab_size = backend.engine.module.config.vocab_size
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        input_ids = torch.randint(vocab_size, (2, 12), generator=generator)  # (B, T)
        backend.backward(backend.engine(input_ids=input_ids, labels=input_ids).loss, accumulation_steps=1)
    backend.save(folder)
    return backend, training_state(backend)


def rank_files_on_s3(saved: Path, storage, bucket: str, zero_stage: int) -> str:
    """The saved checkpoint in a bucket as a two-rank run's would be: rank 1's shard files (copies of rank 0's), an adapter."""
    prefix = f"s3://{bucket}/zero{zero_stage}/checkpoint_000003"  # the bucket's name is cut before the parameter
    for file in saved.rglob("*"):
        if file.is_file():
            relative = file.relative_to(saved).as_posix()
            storage.write_bytes(f"{prefix}/{relative}", file.read_bytes())
            if "zero_pp_rank_0_" in relative:
                storage.write_bytes(f"{prefix}/{relative.replace('zero_pp_rank_0_', 'zero_pp_rank_1_')}", file.read_bytes())
    storage.write_text(f"{prefix}/{ADAPTER_DIR}/adapter_config.json", "{}")
    return prefix


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_round_trip_restores_lora_weights_optimizer_and_schedule(process_group, tiny_text_lm, tmp_path, zero_stage, s3_storage):
    """Through S3 as a resuming rank 0 fetches it: only the shared files and its own ZeRO shards, and DeepSpeed resumes from them."""
    trained, expected = train_and_save(tiny_text_lm, zero_stage, tmp_path / "saved")
    storage, bucket = s3_storage
    filesystem, path = storage.arrow_filesystem(rank_files_on_s3(tmp_path / "saved", storage, bucket, zero_stage))
    fetched = fetch(filesystem, path, tmp_path / "fetched", lambda name: needed_to_resume(name, rank=0))
    names = {file.relative_to(fetched).as_posix() for file in fetched.rglob("*") if file.is_file()}
    saved = {file.relative_to(tmp_path / "saved").as_posix() for file in (tmp_path / "saved").rglob("*") if file.is_file()}
    assert names == saved and any("zero_pp_rank_0_" in name for name in names)  # rank 1's shards and the adapter stayed in the bucket
    assert any("lora_B" in name and bool(tensor.abs().sum() > 0) for name, tensor in expected.items())  # it learned something
    assert any(name.startswith("optimizer.") for name in expected)

    restored = lora_backend(tiny_text_lm, zero_stage, seed=1)  # other LoRA A matrices, B zero, no optimizer state
    fresh = training_state(restored)
    assert not any(name.startswith("optimizer.") for name in fresh)
    assert all(not torch.equal(fresh[name], expected[name]) for name in fresh if "lora_" in name)
    restored.load(fetched)
    state = training_state(restored)
    assert state.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), name
    assert restored.engine.global_steps == STEPS and restored.learning_rate == trained.learning_rate


class RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def zero2_checkpoint(process_group, tiny_text_lm, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zero2-checkpoint")
    train_and_save(tiny_text_lm, 2, folder)
    return folder


@pytest.mark.parametrize("crafted_file", ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"])
def test_a_crafted_checkpoint_file_is_refused_without_running_its_code(zero2_checkpoint, tiny_text_lm, tmp_path, crafted_file):
    """The model states are read first, the ZeRO optimizer shard after them: both go through the safe engine."""
    folder = shutil.copytree(zero2_checkpoint, tmp_path / "checkpoint")
    marker = tmp_path / "code-ran"
    torch.save(RunsCodeWhenUnpickled(marker), folder / CHECKPOINT_TAG / crafted_file)
    backend = lora_backend(tiny_text_lm, 2, seed=1)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        backend.load(folder)
    assert not marker.exists()
