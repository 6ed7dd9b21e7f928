"""The HF engine on Qwen2.5-VL places the frames in time, as the family's own processor does.

``second_per_grid_ts = temporal_patch_size * duration / frames`` for the whole video, and for the CD
branch's sparse frames (fewer frames over the same span). The engine's teacher-forced log-probs
(video encoded once, features passed in) equal the stock processor + forward given the video's
metadata, and differ when the duration is not known (the model's default of 1 s per patch).
"""

from __future__ import annotations

import json

import pytest
import torch

from synpo.sampling.hf_engine import HFEngine
from synpo.sampling.request import SamplingParams
from synpo.toy.model import build_tiny_model
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.video.sampler import VideoSamplingConfig, sample_video

pytestmark = pytest.mark.slow
VIDEO = VideoSamplingConfig(num_frames=6, max_side=112)
INSTRUCTION = "Describe the video in detail."


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen2_5_vl_engine")
    (row,) = write_toy_videos(str(root / "videos"), 1, seed=12, spec=ToyVideoSpec(min_duration_s=9, max_duration_s=9), progress=False)
    assert json.loads((root / "videos" / f"{row['id']}.json").read_text())["duration_s"] == 9.0
    engine = HFEngine(build_tiny_model(root / "model", family="qwen2.5-vl", seed=2), device="cpu")
    return engine, sample_video(row["video"], row["video"], VIDEO)


def test_seconds_per_temporal_patch_for_the_whole_video_and_the_sparse_branch(setup):
    engine, sampled = setup
    whole = engine.encode([INSTRUCTION], sampled.frames, 9.0)
    sparse = engine.encode([INSTRUCTION], sampled.sparse_frames, 9.0)
    torch.testing.assert_close(whole["second_per_grid_ts"], torch.tensor([2 * 9.0 / 6]))  # 3 s
    torch.testing.assert_close(sparse["second_per_grid_ts"], torch.tensor([2 * 9.0 / 2]))  # 2 sparse frames: 9 s
    # unknown duration: what the stock processor assumes for frames without metadata (not 3 s)
    stock = engine.processor(text=[engine._chat_texts([INSTRUCTION], True)[0]], videos=[list(sampled.frames)], do_sample_frames=False, return_tensors="pt")
    unknown = engine.encode([INSTRUCTION], sampled.frames)["second_per_grid_ts"]
    torch.testing.assert_close(unknown, torch.as_tensor(stock["second_per_grid_ts"], dtype=unknown.dtype))
    assert float(unknown[0]) != 3.0


def test_engine_log_probs_equal_the_stock_processor_and_forward(setup):
    engine, sampled = setup
    tokens = engine.tokenizer("a large red circle moves left", add_special_tokens=False)["input_ids"]
    ours = torch.tensor(engine.continuation_logprobs(INSTRUCTION, sampled.frames, tokens, duration_s=9.0))

    text = engine._chat_texts([INSTRUCTION], True)[0]
    inputs = engine.processor(
        text=[text], videos=[list(sampled.frames)], video_metadata=[sampled.processor_metadata()], do_sample_frames=False, return_tensors="pt"
    )
    torch.testing.assert_close(inputs["second_per_grid_ts"].float(), torch.tensor([3.0]))  # the processor agrees on the value
    continuation = torch.tensor([tokens])
    ids = torch.cat([inputs["input_ids"], continuation], dim=1)
    with torch.no_grad():
        logits = engine.base_model(
            input_ids=ids, attention_mask=torch.ones_like(ids),
            mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(continuation)], dim=1),
            pixel_values_videos=inputs["pixel_values_videos"], video_grid_thw=inputs["video_grid_thw"],
            second_per_grid_ts=inputs["second_per_grid_ts"],
        ).logits[0, inputs["input_ids"].shape[1] - 1 : -1]  # fmt: skip
    stock = torch.log_softmax(logits.float(), dim=-1)[torch.arange(len(tokens)), continuation[0]]
    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-4)
    untimed = torch.tensor(engine.continuation_logprobs(INSTRUCTION, sampled.frames, tokens))
    assert (untimed - stock).abs().max() > 1e-3


def test_every_caption_mode_runs_with_frame_times(setup, monkeypatch):
    """The CD branch computes its own positions: with the sparse frames' spacing (9 s per patch here)."""
    engine, sampled = setup
    rope_index, seen = engine.base_model.model.get_rope_index, []

    def recording(*args, **kwargs):
        seen.append(kwargs.get("second_per_grid_ts"))
        return rope_index(*args, **kwargs)

    monkeypatch.setattr(engine.base_model.model, "get_rope_index", recording)
    params = SamplingParams(n=2, temperature=0.9, max_new_tokens=6, seed=0)
    for mode in ("plain", "contrastive", "retrospective", "both"):
        seen.clear()
        candidates = engine.caption(sampled.frames, INSTRUCTION, params, mode=mode, duration_s=9.0)
        assert len(candidates) == 2 and all(candidate.token_ids for candidate in candidates), mode
        if mode in ("contrastive", "both"):
            assert any(times is not None and torch.allclose(times.float(), torch.tensor([9.0])) for times in seen), (mode, seen)
