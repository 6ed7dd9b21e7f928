"""Contrastive decoding: the logit arithmetic, the sparse branch's cache and positions, and CD in generate."""

from __future__ import annotations

import math

import pytest
import torch

from synpo.sampling.contrastive import SparseBranch, contrast_logits
from synpo.sampling.hf_engine import HFEngine
from synpo.sampling.prompts import REFINE_TEMPLATE, refine_prompt
from synpo.sampling.request import CaptionRequest, ContrastiveSettings, SamplingParams
from synpo.testing.processor_inputs import stock_inputs
from synpo.video import VideoSamplingConfig, sample_video


def test_contrast_logits_on_hand_made_values():
    """a = 0.5, no cutoff: (1.5 * full - 0.5 * sparse).

    full   = [2.0, 1.0, 0.0], sparse = [1.0, 3.0, 0.0]
    result = [3.0 - 0.5, 1.5 - 1.5, 0 - 0] = [2.5, 0.0, 0.0]
    """
    full = torch.tensor([[2.0, 1.0, 0.0]])
    sparse = torch.tensor([[1.0, 3.0, 0.0]])
    assert torch.equal(contrast_logits(full, sparse, alpha=0.5, cutoff=0.0), torch.tensor([[2.5, 0.0, 0.0]]))


def test_plausibility_cutoff_is_a_threshold_on_full_probabilities():
    """b = 0.3: keep y with p_full(y) >= 0.3 * max p_full, i.e. full[y] >= max(full) + log(0.3) = 2 - 1.204 = 0.796.

    full = [2.0, 1.0, 0.0] keeps tokens 0 and 1 (1.0 >= 0.796), drops token 2 (0.0 < 0.796), even though
    the contrast alone would rank token 2 (0) level with token 1 (0). Probabilities check:
    p = softmax(full) = [0.665, 0.245, 0.090]; 0.3 * 0.665 = 0.200 -> 0.245 kept, 0.090 dropped.
    """
    full = torch.tensor([[2.0, 1.0, 0.0]])
    sparse = torch.tensor([[1.0, 3.0, 0.0]])
    result = contrast_logits(full, sparse, alpha=0.5, cutoff=0.3)
    assert result[0, :2].tolist() == [2.5, 0.0] and result[0, 2] == -math.inf
    probabilities = torch.softmax(full, dim=-1)[0]
    assert (probabilities >= 0.3 * probabilities.max()).tolist() == [True, True, False]


def test_alpha_zero_without_cutoff_returns_the_full_logits():
    full, sparse = torch.randn(4, 50), torch.randn(4, 50)
    assert torch.equal(contrast_logits(full, sparse, alpha=0.0, cutoff=0.0), full)


@pytest.fixture(scope="module")
def engine(tiny_vlm):
    return HFEngine(tiny_vlm, device="cpu")


@pytest.fixture(scope="module")
def frames(toy_video_dir):
    return sample_video(toy_video_dir / "toy-0007-00000.mp4", "v", VideoSamplingConfig(num_frames=12, max_side=160)).frames


def test_sparse_branch_cached_steps_match_an_uncached_forward(engine, frames):
    """Two prompts of different lengths (left padding): after each fed token, the branch's logits equal a
    fresh forward over prompt + tokens from the processor's own pixels, letting the model compute its own
    3-D positions (so the engine's shared video features and the branch's positions are both checked)."""
    instructions = ["Describe this video.", "Describe this video in detail, in order, with colours."]
    sparse = engine.sparse_frames(CaptionRequest("r", "p", frames=frames))
    with torch.inference_mode():
        inputs = engine.encode(instructions, sparse)
        branch = SparseBranch(engine.model, engine.base_model.model.get_rope_index, inputs, repeats=1)
        tokens = torch.tensor([[40, 41, 42, 43], [50, 51, 52, 53]])
        logits = [branch.next_logits(inputs["input_ids"])]
        for step in range(tokens.shape[1]):
            grown = torch.cat([inputs["input_ids"], tokens[:, : step + 1]], dim=1)
            logits.append(branch.next_logits(grown))
        for row, instruction in enumerate(instructions):
            for step in range(tokens.shape[1] + 1):
                reference = engine.model(**stock_inputs(engine.processor, instruction, sparse, None, tokens[row, :step].tolist())).logits[0, -1]
                torch.testing.assert_close(logits[step][row], reference, rtol=1e-4, atol=1e-4)


def test_sparse_branch_receives_a_third_of_the_frames(engine, frames):
    request = CaptionRequest("r", "Describe.", frames=frames, mode="contrastive", params=SamplingParams(n=2, max_new_tokens=4, seed=0))
    assert len(engine.sparse_frames(request)) == 4  # ceil(12 / 3)
    full_grid = engine.encode(["x"], frames)["video_grid_thw"][0].tolist()
    sparse_grid = engine.encode(["x"], engine.sparse_frames(request))["video_grid_thw"][0].tolist()
    assert full_grid[0] == 6 and sparse_grid[0] == 2 and full_grid[1:] == sparse_grid[1:]  # temporal patches of 2 frames
    assert engine.generate([request])[0].frames_seen == {"full": 12, "sparse": 4}


@pytest.mark.parametrize("mode", ["contrastive", "both"])
@pytest.mark.parametrize("temperature", [0.9, 0.0])
def test_cd_with_alpha_zero_equals_plain_decoding_token_for_token(engine, frames, mode, temperature):
    params = SamplingParams(n=3 if temperature else 1, temperature=temperature, seed=11, max_new_tokens=16, logprobs=True)
    plain_mode = "plain" if mode == "contrastive" else "retrospective"
    plain = engine.generate([CaptionRequest("p", "Describe this video.", frames=frames, params=params, mode=plain_mode)])[0]
    contrastive = ContrastiveSettings(alpha=0.0, cutoff=0.0)
    cd = engine.generate([CaptionRequest("c", "Describe this video.", frames=frames, params=params, mode=mode, contrastive=contrastive)])[0]
    assert [c.token_ids for c in cd.candidates] == [c.token_ids for c in plain.candidates]
    assert [c.logprobs for c in cd.candidates] == [c.logprobs for c in plain.candidates]


def test_cd_changes_the_output_and_keeps_only_plausible_tokens(engine, frames):
    params = SamplingParams(n=4, temperature=0.9, seed=5, max_new_tokens=16, logprobs=True)
    plain = engine.caption(frames, "Describe this video.", params)
    cd = engine.generate(
        [CaptionRequest("c", "Describe this video.", frames=frames, params=params, mode="contrastive", contrastive=ContrastiveSettings(alpha=1.0, cutoff=0.05))]
    )[0]
    assert [c.token_ids for c in cd.candidates] != [c.token_ids for c in plain]
    # every CD token passed the cutoff: p_full >= 0.05 * max p_full >= 0.05 / V, so log p_full >= log(0.05 / V)
    vocab = engine.base_model.config.text_config.vocab_size
    assert min(lp for c in cd.candidates for lp in c.logprobs) >= math.log(0.05 / vocab)


def test_greedy_cd_in_a_padded_batch_equals_each_row_alone(warm_vlm, frames):
    """Rows of different prompt lengths that finish at different steps decode as if alone (the warm-started
    model writes captions that end, so rows stop at different steps)."""
    engine = HFEngine(warm_vlm, device="cpu")
    instructions = [
        "Describe this video.",
        "Describe the video clip in detail. Do not state anything you are not sure about.",
        refine_prompt(REFINE_TEMPLATE, "Describe this video.", "A red circle moves left."),
        refine_prompt(REFINE_TEMPLATE, "Describe this video.", "The video shows a small green square and a large blue triangle."),
    ]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=80)
    request = CaptionRequest("b", "unused", frames=frames, params=params, mode="contrastive")
    contrastive = ContrastiveSettings(alpha=0.5, cutoff=0.1)
    together = engine.run_pass(request, instructions, 1, params, contrastive)
    alone = [engine.run_pass(request, [text], 1, params, contrastive)[0] for text in instructions]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    assert all(c.finish_reason == "stop" for c in together)
    assert len({len(c.token_ids) for c in together}) > 1  # rows finished at different steps
