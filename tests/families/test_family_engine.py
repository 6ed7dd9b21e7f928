"""Every video VLM family captions through the HF engine the way its own processor and forward would.

One tiny build per family (``synpo toy model --family``). For each:

- the engine's prompt + shared-feature path (each video preprocessed and encoded once, placeholders
  expanded by the family's processor, frame times from the duration) gives the log-probs of the
  stock processor + forward given the same frames' metadata: exactly for Qwen2-VL, within float
  tolerance elsewhere; Qwen2.5-VL's seconds per patch and Qwen3-VL's timestamps included;
- the CD sparse branch, stepped with its own cache and positions (3-D M-RoPE for Qwen, 1-D for LLaVA),
  equals an uncached stock forward after every token, over a left-padded batch;
- every caption mode runs, and CD with alpha 0 decodes token for token as plain decoding.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from family_support import FAMILIES_UNDER_TEST, INSTRUCTION

from synpo.sampling.contrastive import SparseBranch
from synpo.sampling.hf_engine import HFEngine
from synpo.sampling.request import CaptionRequest, ContrastiveSettings, SamplingParams
from synpo.testing.processor_inputs import stock_inputs
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.video.metadata import frame_metadata
from synpo.video.sampler import VideoSamplingConfig, sample_video
from synpo.vlm.videos import uses_3d_positions

pytestmark = pytest.mark.slow
DURATION_S = 9.0
VIDEO = VideoSamplingConfig(num_frames=6, max_side=112)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> np.ndarray:
    root = tmp_path_factory.mktemp("family_engine_videos")
    (row,) = write_toy_videos(str(root), 1, seed=12, spec=ToyVideoSpec(min_duration_s=9, max_duration_s=9), progress=False)
    return sample_video(row["video"], row["video"], VIDEO).frames


@pytest.fixture(scope="module", params=FAMILIES_UNDER_TEST)
def engine(request, family_vlm) -> HFEngine:
    return HFEngine(family_vlm(request.param), device="cpu")


def words(engine: HFEngine, text: str) -> list[int]:
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_engine_log_probs_equal_the_stock_processor_and_forward(engine, frames):
    tokens = words(engine, "a large red circle moves left")
    ours = torch.tensor(engine.continuation_logprobs(INSTRUCTION, frames, tokens, duration_s=DURATION_S))
    inputs = stock_inputs(engine.processor, INSTRUCTION, frames, frame_metadata(len(frames), DURATION_S), tokens)
    with torch.no_grad():
        logits = engine.base_model(**inputs).logits[0, -len(tokens) - 1 : -1].float()
    stock = torch.log_softmax(logits, -1)[torch.arange(len(tokens)), torch.tensor(tokens)]
    exact = engine.base_model.config.model_type == "qwen2_vl"
    torch.testing.assert_close(ours, stock, rtol=0.0 if exact else 1e-5, atol=0.0 if exact else 1e-5)


def test_frame_times_reach_the_prompt_or_the_positions(engine, frames):
    """Qwen2.5-VL: 2 frames per temporal patch over 9 s / 6 frames -> 3 s per patch; Qwen3-VL: one timestamp per
    patch, each the mean of its two frames' times (frames at 0, 1.8, ..., 9 s); the others have no times."""
    inputs = engine.encode([INSTRUCTION], frames, DURATION_S)
    prompt = engine.tokenizer.decode(inputs["input_ids"][0])
    model_type = engine.base_model.config.model_type
    if model_type == "qwen2_5_vl":
        torch.testing.assert_close(inputs["second_per_grid_ts"].float(), torch.tensor([3.0]))
    elif model_type == "qwen3_vl":
        assert re.findall(r"<([\d.]+) seconds>", prompt) == ["0.9", "4.5", "8.1"]
    else:
        assert "second_per_grid_ts" not in inputs and "seconds>" not in prompt


def test_without_a_duration_the_engine_assumes_what_the_stock_processor_assumes(engine, frames):
    """Frames of unknown span: the family's own default (Qwen2.5-VL / Qwen3-VL: 24 fps), never a made-up span."""
    tokens = words(engine, "a red circle")
    ours = torch.tensor(engine.continuation_logprobs(INSTRUCTION, frames, tokens))
    inputs = stock_inputs(engine.processor, INSTRUCTION, frames, None, tokens)
    with torch.no_grad():
        logits = engine.base_model(**inputs).logits[0, -len(tokens) - 1 : -1].float()
    stock = torch.log_softmax(logits, -1)[torch.arange(len(tokens)), torch.tensor(tokens)]
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_sparse_branch_cached_steps_match_an_uncached_forward(engine, frames):
    """Two prompts of different lengths (left padding): after each fed token the branch's logits equal a fresh
    stock forward over prompt + tokens, the model computing its own positions."""
    instructions = ["Describe this video.", "Describe this video in detail, in order, with colours."]
    sparse = engine.sparse_frames(CaptionRequest("r", "p", frames=frames))
    inner = engine.base_model.model
    with torch.inference_mode():
        inputs = engine.encode(instructions, sparse, DURATION_S)
        branch = SparseBranch(engine.model, inner.get_rope_index if uses_3d_positions(inner) else None, inputs, repeats=1)
        tokens = torch.tensor([words(engine, "a red circle")[:3], words(engine, "the blue square")[:3]])
        logits = [branch.next_logits(inputs["input_ids"])]
        for step in range(tokens.shape[1]):
            logits.append(branch.next_logits(torch.cat([inputs["input_ids"], tokens[:, : step + 1]], dim=1)))
        metadata = frame_metadata(len(sparse), DURATION_S)
        for row, instruction in enumerate(instructions):
            for step in range(tokens.shape[1] + 1):
                reference = engine.model(**stock_inputs(engine.processor, instruction, sparse, metadata, tokens[row, :step].tolist())).logits[0, -1]
                torch.testing.assert_close(logits[step][row], reference, rtol=1e-4, atol=1e-4)


def test_every_caption_mode_runs_and_cd_with_alpha_zero_is_plain_decoding(engine, frames):
    params = SamplingParams(n=2, temperature=0.9, seed=3, max_new_tokens=8, logprobs=True)
    requests = [
        CaptionRequest(mode, INSTRUCTION, frames=frames, params=params, mode=mode, duration_s=DURATION_S)
        for mode in ("plain", "contrastive", "retrospective", "both")
    ]
    results = engine.generate(requests)
    assert all(len(result.candidates) == 2 and all(c.token_ids for c in result.candidates) for result in results)
    assert results[1].frames_seen == {"full": 6, "sparse": 2}
    off = ContrastiveSettings(alpha=0.0, cutoff=0.0)
    for mode, plain in (("contrastive", results[0]), ("both", results[2])):
        (cd,) = engine.generate([CaptionRequest("c", INSTRUCTION, frames=frames, params=params, mode=mode, contrastive=off, duration_s=DURATION_S)])
        assert [c.token_ids for c in cd.candidates] == [c.token_ids for c in plain.candidates], mode
