"""The frames' real times reach the model: Qwen2.5-VL's ``second_per_grid_ts`` from the sampled video.

A toy video of known length is sampled as training samples it; the collator hands the processor the
frames' place in the source (``SampledVideo.processor_metadata``), and the batch carries
``second_per_grid_ts = temporal_patch_size * duration / frames``. Our path (video encoded once, features
fed to both sequences) gives the same response log-probs as the stock processor + forward with that
value, and different ones without it. Qwen2-VL, which has no time positions, is unchanged.
"""

from __future__ import annotations

import json

import pytest
import torch

from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.training.collate import IGNORE_INDEX, PairCollator, PairExample
from synpo.training.logprobs import response_logps, token_logps
from synpo.training.model import load_base
from synpo.video.sampler import VideoSamplingConfig, sample_video

VIDEO = VideoSamplingConfig(num_frames=4, max_side=112)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy_video(tmp_path_factory):
    root = tmp_path_factory.mktemp("times")
    (row,) = write_toy_videos(str(root), 1, seed=11, spec=ToyVideoSpec(min_duration_s=6, max_duration_s=6), progress=False)
    duration = json.loads((root / f"{row['id']}.json").read_text())["duration_s"]
    return sample_video(row["video"], row["video"], VIDEO), duration


def example(sampled, with_metadata: bool = True) -> PairExample:
    return PairExample(
        pair_id="p0", prompt="Describe the video.", chosen="a red circle moves left", rejected="a blue square stays still",
        frames=sampled.frames, video_metadata=sampled.processor_metadata() if with_metadata else None,
    )  # fmt: skip


def stock_response_logps(model, batch) -> torch.Tensor:
    """The stock forward: pixels through the model's own forward, every argument the processor gave."""
    logits = model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, mm_token_type_ids=batch.mm_token_type_ids,
        pixel_values_videos=torch.cat([batch.videos["pixel_values_videos"]] * 2), video_grid_thw=batch.videos["video_grid_thw"].repeat(2, 1),
        second_per_grid_ts=batch.videos["second_per_grid_ts"].repeat(2), use_cache=False,
    ).logits  # fmt: skip
    predicts = batch.labels[:, 1:] != IGNORE_INDEX
    return token_logps(logits[:, :-1][predicts], batch.labels[:, 1:][predicts])


def test_qwen2_5_vl_gets_the_videos_seconds_per_temporal_patch(family_vlm, toy_video):
    sampled, duration = toy_video
    model_dir = family_vlm("qwen2.5-vl")
    model, processor = load_base(model_dir)
    model.eval()
    batch = PairCollator(processor, max_response_tokens=32)([example(sampled)])

    assert duration == 6.0 and batch.videos["video_grid_thw"].tolist() == [[2, 6, 8]]  # 4 frames -> 2 temporal patches
    torch.testing.assert_close(batch.videos["second_per_grid_ts"].float(), torch.tensor([2 * duration / VIDEO.num_frames]))  # 3 s, not 1 s or 1/12 s

    with torch.no_grad():
        ours = response_logps(model, batch)
        ours_flat = torch.cat([ours.chosen_logps[ours.chosen_mask], ours.rejected_logps[ours.rejected_mask]])
        torch.testing.assert_close(ours_flat, stock_response_logps(model, batch), rtol=1e-5, atol=1e-5)
        del batch.videos["second_per_grid_ts"]  # what the collator produced before: the model's default of 1 s per patch
        untimed = response_logps(model, batch)
    assert (ours.chosen_logps - untimed.chosen_logps).abs().max() > 1e-4


def test_qwen2_vl_batches_are_unchanged_by_the_metadata(tiny_vlm, toy_video):
    sampled, _ = toy_video
    _, processor = load_base(tiny_vlm)
    collate = PairCollator(processor, max_response_tokens=32)
    timed, plain = collate([example(sampled)]), collate([example(sampled, with_metadata=False)])
    assert set(timed.videos) == set(plain.videos) == {"pixel_values_videos", "video_grid_thw"}
    for name in ("input_ids", "attention_mask", "labels", "mm_token_type_ids"):
        assert torch.equal(getattr(timed, name), getattr(plain, name)), name
    for name in timed.videos:
        assert torch.equal(timed.videos[name], plain.videos[name]), name
