"""The Hugging Face engine: n candidates, seeds, log-probs, retrospection's two passes, LoRA, text LMs."""

from __future__ import annotations

import pytest
import torch

from synpo.sampling.hf_engine import HFEngine
from synpo.sampling.passes import run_request
from synpo.sampling.prompts import REFINE_TEMPLATE
from synpo.sampling.request import Candidate, CaptionRequest, SamplingParams
from synpo.testing.processor_inputs import stock_inputs
from synpo.video import VideoSamplingConfig, sample_video

PROMPT = "Describe this video."


@pytest.fixture(scope="module")
def engine(tiny_vlm):
    return HFEngine(tiny_vlm, device="cpu")


@pytest.fixture(scope="module")
def frames(toy_video_dir):
    return sample_video(toy_video_dir / "toy-0007-00001.mp4", "v", VideoSamplingConfig(num_frames=8, max_side=160)).frames


def test_n_candidates_per_request_and_seeds_reproduce(engine, frames):
    params = SamplingParams(n=5, seed=1, max_new_tokens=10)
    first, again = (engine.caption(frames, PROMPT, params) for _ in range(2))
    other = engine.caption(frames, PROMPT, params.model_copy(update={"seed": 2}))
    assert len(first) == 5 and all(isinstance(candidate, Candidate) for candidate in first)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.token_ids for c in first] != [c.token_ids for c in other]
    assert len({tuple(c.token_ids) for c in first}) > 1  # n distinct samples, not one repeated


def test_logprobs_are_the_models_own_token_probabilities(engine, frames):
    """Each recorded log-prob equals log softmax of a teacher-forced forward pass (from the processor's own
    pixels, so the engine's encode-the-video-once path is checked too)."""
    candidate = engine.caption(frames, PROMPT, SamplingParams(n=1, seed=4, max_new_tokens=8, logprobs=True))[0]
    assert len(candidate.logprobs) == len(candidate.token_ids) == 8
    with torch.no_grad():
        logits = engine.model(**stock_inputs(engine.processor, PROMPT, frames, None, candidate.token_ids)).logits[0, -9:-1]
    expected = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(candidate.token_ids)[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(candidate.logprobs), expected, rtol=1e-4, atol=1e-4)
    # The engine's own teacher forcing (what tests/vllm_cpu checks vLLM's samples against) agrees.
    torch.testing.assert_close(torch.tensor(engine.continuation_logprobs(PROMPT, frames, candidate.token_ids)), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="video placeholder token"):
        engine.continuation_logprobs(PROMPT, frames, [*candidate.token_ids, engine.processor.video_token_id])


def test_retrospection_refines_each_first_pass_text(engine, frames):
    params = SamplingParams(n=3, seed=9, max_new_tokens=8)
    plain = engine.generate([CaptionRequest("p", PROMPT, frames=frames, params=params)])[0]
    seen: list[list[str]] = []

    def recording_pass(request, instructions, samples, pass_params, contrastive):
        seen.append(instructions)
        return engine.run_pass(request, instructions, samples, pass_params, contrastive)

    request = CaptionRequest("r", PROMPT, frames=frames, params=params, mode="retrospective")
    refined = run_request(recording_pass, request)
    first_pass = [c.text for c in plain.candidates]
    assert [c.first_pass for c in refined.candidates] == first_pass  # the first pass is the seeded plain pass
    assert seen[0] == [PROMPT] and len(seen[1]) == 3
    for instruction, previous in zip(seen[1], first_pass, strict=True):
        assert instruction == REFINE_TEMPLATE.replace("{prompt}", PROMPT).replace("{previous}", previous)
    assert engine.generate([request])[0].to_dict() == refined.to_dict()  # deterministic end to end


def test_an_adapter_changes_the_captions(engine, tiny_vlm, frames, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = HFEngine(tiny_vlm, device="cpu").base_model
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(tmp_path / "adapter")
    with_adapter = HFEngine(tiny_vlm, device="cpu", adapter=tmp_path / "adapter")
    params = SamplingParams(n=1, temperature=0, max_new_tokens=10)
    assert with_adapter.caption(frames, PROMPT, params)[0].token_ids != engine.caption(frames, PROMPT, params)[0].token_ids
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter folder"):
        HFEngine(tiny_vlm, device="cpu", adapter=tmp_path)


def test_text_model_answers_prompts_and_refuses_video_modes(tiny_text_lm, frames):
    engine = HFEngine(tiny_text_lm, device="cpu")
    result = engine.generate([CaptionRequest("t", "Describe a red circle.", params=SamplingParams(n=2, seed=0, max_new_tokens=6), mode="retrospective")])[0]
    assert len(result.candidates) == 2 and all(c.first_pass is not None for c in result.candidates)
    with pytest.raises(ValueError, match="contrastive decoding needs video frames"):
        engine.generate([CaptionRequest("t", "x", mode="contrastive")])
    with pytest.raises(ValueError, match="text LM; it takes no video"):
        engine.caption(frames, "x", SamplingParams(n=1, temperature=0, max_new_tokens=2))


def test_bad_requests_and_params_are_refused_with_the_reason(engine):
    with pytest.raises(ValueError, match="identical captions"):
        SamplingParams(n=4, temperature=0)
    with pytest.raises(ValueError, match=r"frames must be \[N, H, W, 3\]"):
        engine.generate([CaptionRequest("bad", PROMPT, frames=torch.zeros(4, 8, 8).numpy())])
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        HFEngine("/nonexistent/model", device="cpu")


def test_greedy_passes_of_several_videos_share_generate_calls_and_equal_one_at_a_time(warm_vlm, toy_video_dir):
    """Three videos (one at another resolution, so prompts differ in length and get padded), greedy: the first
    passes run in ONE generate, the one refinement in another, and every caption and log-prob equals
    what the request gets alone."""
    engine = HFEngine(warm_vlm, device="cpu")
    paths = sorted(toy_video_dir.glob("*.mp4"))
    videos = [sample_video(path, str(path), VideoSamplingConfig(num_frames=8, max_side=112 if index == 1 else 160)).frames for index, path in enumerate(paths)]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=16, logprobs=True)
    requests = [
        CaptionRequest(f"v{index}", PROMPT, frames=frames, params=params, mode="retrospective" if index == 2 else "plain")
        for index, frames in enumerate(videos)
    ]
    calls = []
    real_generate = engine.model.generate

    def counting_generate(**inputs):
        calls.append(inputs["input_ids"].shape[0])
        return real_generate(**inputs)

    engine.model.generate = counting_generate
    together = engine.generate(requests)
    assert calls == [3, 1]  # the three first passes, then video 2's refinement
    alone = [engine.generate([request])[0] for request in requests]
    for batched, single in zip(together, alone, strict=True):
        assert [c.token_ids for c in batched.candidates] == [c.token_ids for c in single.candidates], batched.request_id
        assert [c.first_pass for c in batched.candidates] == [c.first_pass for c in single.candidates]
        for a, b in zip(batched.candidates, single.candidates, strict=True):
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-4, atol=1e-4)
    assert together[1].candidates[0].text and together[2].candidates[0].first_pass


def random_adapter(tiny_vlm, folder, seed: int):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = HFEngine(tiny_vlm, device="cpu").base_model
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(folder)
    return folder


def test_several_adapters_on_one_base_caption_as_their_own_engines_would(engine, tiny_vlm, frames, tmp_path):
    first, second = random_adapter(tiny_vlm, tmp_path / "a", 1), random_adapter(tiny_vlm, tmp_path / "b", 2)
    params = SamplingParams(n=1, temperature=0, max_new_tokens=10)
    alone = {name: HFEngine(tiny_vlm, device="cpu", adapter=folder).caption(frames, PROMPT, params)[0].token_ids for name, folder in (("a", first), ("b", second))}
    base = engine.caption(frames, PROMPT, params)[0].token_ids
    assert len({tuple(alone["a"]), tuple(alone["b"]), tuple(base)}) == 3  # three different models

    shared = HFEngine(tiny_vlm, device="cpu", adapter=first)  # "a" as the default adapter
    shared.add_adapter("b", second)
    for adapter, expected in (("b", alone["b"]), ("default", alone["a"]), (None, base), ("b", alone["b"])):
        with shared.using(adapter):
            assert shared.caption(frames, PROMPT, params)[0].token_ids == expected, adapter
    shared.remove_adapter("b")
    with pytest.raises(ValueError):
        with shared.using("b"):
            pass
