"""Every video VLM family trains correctly: the batch the collator makes scores as the stock forward does, and
a SynPO and a DPO step train the language model's adapters only, DPO's reference staying the base model.

One tiny build per family. The saved adapter holds no vision tensor (Qwen2.5-VL's vision MLPs and the
LLaVA towers' attention share the language model's projection names), and after the step the
"adapters off" pass, fed the features the trainer shares with it, equals the base model's log-probs.
"""

from __future__ import annotations

import pytest
import torch
from family_support import FAMILIES_UNDER_TEST
from safetensors.torch import load_file

from synpo.storage import Storage
from synpo.testing.processor_inputs import stock_inputs
from synpo.toy.pairs import toy_pairs
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.training.batches import InMemoryBatches
from synpo.training.collate import IGNORE_INDEX, PairCollator
from synpo.training.config import (
    DeepSpeedSettings,
    DiagnosticsSettings,
    LoraSettings,
    OptimSettings,
    ScalingSettings,
    TrainConfig,
)
from synpo.training.data import PairDataset
from synpo.training.logprobs import encode_videos, reference_sequence_logps, response_logps
from synpo.training.model import is_vision_name, load_base
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.trainer import LoopHooks
from synpo.video.sampler import VideoSamplingConfig

pytestmark = pytest.mark.slow
VIDEO = VideoSamplingConfig(num_frames=4, max_side=112)
RESPONSE_TOKENS = 48


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """Three pairs on three toy videos of different lengths, each with its frames' real times."""
    root = tmp_path_factory.mktemp("family_training_videos")
    write_toy_videos(str(root), 3, seed=5, spec=ToyVideoSpec(max_duration_s=12), progress=False)
    dataset = PairDataset(toy_pairs(str(root), seed=1), VIDEO, Storage())
    return [dataset[index] for index in range(len(dataset))]


def summed(logps, mask) -> torch.Tensor:
    return torch.where(mask, logps, 0.0).sum(-1)


@pytest.mark.parametrize("family", FAMILIES_UNDER_TEST)
def test_collated_batch_scores_as_the_stock_processor_and_forward(family, family_vlm, examples):
    model, processor = load_base(family_vlm(family))
    model.eval()
    batch = PairCollator(processor, max_response_tokens=RESPONSE_TOKENS)(examples)
    with torch.no_grad():
        once = response_logps(model, batch)
        twice = response_logps(model, batch, encode_video_once=False)
        for side, logps, mask in (("chosen", once.chosen_logps, once.chosen_mask), ("rejected", once.rejected_logps, once.rejected_mask)):
            for index, example in enumerate(examples):
                row = index if side == "chosen" else index + len(examples)
                response = batch.labels[row][batch.labels[row] != IGNORE_INDEX].tolist()
                inputs = stock_inputs(processor, example.prompt, example.frames, example.video_metadata, response)
                logits = model(**inputs).logits[0, -len(response) - 1 : -1].float()
                stock = torch.log_softmax(logits, -1)[torch.arange(len(response)), torch.tensor(response)].sum()
                torch.testing.assert_close(summed(logps, mask)[index], stock, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(once.chosen_logps, twice.chosen_logps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("objective", ["synpo", "dpo"])
@pytest.mark.parametrize("family", FAMILIES_UNDER_TEST)
def test_a_step_trains_language_adapters_only_and_the_reference_stays_the_base(family, objective, family_vlm, examples, tmp_path):
    model_dir = family_vlm(family)
    config = TrainConfig(
        pairs="in-memory", model=str(model_dir), objective=objective, seed=0,
        scaling=ScalingSettings(num_workers=1), deepspeed=DeepSpeedSettings(enabled=False),
        lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        optim=OptimSettings(learning_rate=5e-2, warmup_ratio=0.0, effective_batch_size=3, micro_batch_size=3, epochs=2, max_steps=2),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=0), video=VIDEO, max_response_tokens=RESPONSE_TOKENS,
    )  # fmt: skip
    policy = load_policy(config, model_dir)
    collate = PairCollator(policy.processor, max_response_tokens=RESPONSE_TOKENS)
    history = []
    build_trainer(config, policy, InMemoryBatches(examples, collate, config), hooks=LoopHooks(log=lambda row, step: history.append(row))).fit()
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(row["loss"])) for row in history)

    policy.model.save_pretrained(tmp_path / "adapter")
    tensors = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert tensors and not [name for name in tensors if is_vision_name(name)]
    assert any(tensor.abs().sum() > 0 for name, tensor in tensors.items() if "lora_B" in name)  # the steps moved the adapters

    batch = collate(examples)
    policy.model.eval()
    with torch.no_grad():
        features = encode_videos(policy.model, batch)  # what the trainer hands the reference pass
        reference = reference_sequence_logps(policy.model, batch, video_features=features)
        adapted = response_logps(policy.model, batch, video_features=features)
        base = response_logps(load_base(model_dir)[0].eval(), batch)
    torch.testing.assert_close(reference[0], summed(base.chosen_logps, base.chosen_mask), rtol=0.0, atol=2e-3)
    torch.testing.assert_close(reference[1], summed(base.rejected_logps, base.rejected_mask), rtol=0.0, atol=2e-3)
    assert not torch.allclose(summed(adapted.chosen_logps, adapted.chosen_mask), reference[0], atol=1e-3)  # the policy did move


@pytest.mark.parametrize("family", FAMILIES_UNDER_TEST)
def test_the_first_pairs_of_a_batch_score_as_in_the_batch(family, family_vlm, examples):
    """PairBatch.first_pairs (the gradient-split diagnostic's one pair): its rows and its video, in the family's layout."""
    model, processor = load_base(family_vlm(family))
    batch = PairCollator(processor, max_response_tokens=RESPONSE_TOKENS)(examples)
    first = batch.first_pairs(1)
    assert first.pair_ids == batch.pair_ids[:1] and first.input_ids.shape[0] == 2
    with torch.no_grad():
        whole, alone = response_logps(model.eval(), batch), response_logps(model, first)
    torch.testing.assert_close(summed(alone.chosen_logps, alone.chosen_mask), summed(whole.chosen_logps, whole.chosen_mask)[:1], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(summed(alone.rejected_logps, alone.rejected_mask), summed(whole.rejected_logps, whole.rejected_mask)[:1], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES_UNDER_TEST)
def test_the_memory_estimate_runs_each_familys_own_decoder_layer(family, family_vlm, examples):
    """The start-up estimate measures the family's decoder layer on the meta device (Qwen3-VL's, LLaVA's Qwen2 ...);
    its probe sequence is at least as long as the family's real batches."""
    from synpo.training.memory import estimate, meta_model, probe_sequence_tokens

    model_dir = family_vlm(family)
    config = TrainConfig(pairs="unused", lora=LoraSettings(rank=4, alpha=8), video=VIDEO, max_response_tokens=48,
                         scaling=ScalingSettings(num_workers=1), deepspeed=DeepSpeedSettings(enabled=False))  # fmt: skip
    _, processor = load_base(model_dir)
    collate = PairCollator(processor, config.max_response_tokens)
    tokens = probe_sequence_tokens(collate, config, is_video=True)
    assert tokens >= max(collate([example]).input_ids.shape[1] for example in examples[:4])
    model = meta_model(model_dir, config)
    memory = estimate(model, config, tokens)
    hidden = model.config.get_text_config().hidden_size
    assert memory.trainable > 0 and memory.activation_bytes_per_token_layer > 10 * 4 * hidden  # far beyond the fp32 layer input
