import json

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from synpo.sampling.hf_engine import HFEngine
from synpo.sampling.request import SamplingParams
from synpo.toy.model import build_tiny_model
from synpo.video import VideoSamplingConfig, sample_video


def test_tiny_vlm_loads_offline_and_captions_a_video(tiny_vlm, toy_video_dir):
    processor = AutoProcessor.from_pretrained(tiny_vlm)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    assert model.config.text_config.hidden_size // model.config.text_config.num_attention_heads == 64
    assert model.config.video_token_id == processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    sampled = sample_video(toy_video_dir / "toy-0007-00000.mp4", "v", VideoSamplingConfig(num_frames=16))
    captioner = HFEngine(tiny_vlm, device="cpu")
    settings = SamplingParams(n=4, seed=3, max_new_tokens=12)
    first = captioner.caption(sampled.frames, "Describe this video.", settings)
    again = captioner.caption(sampled.frames, "Describe this video.", settings)
    assert len(first) == 4 and all(caption.token_ids for caption in first)
    assert [caption.token_ids for caption in first] == [caption.token_ids for caption in again]  # seeded
    assert all(caption.finish_reason in ("stop", "length") for caption in first)


def test_video_tokens_reach_the_model(tiny_vlm, toy_video_dir):
    processor = AutoProcessor.from_pretrained(tiny_vlm)
    frames = sample_video(toy_video_dir / "toy-0007-00001.mp4", "v", VideoSamplingConfig(num_frames=8)).frames
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe."}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], videos=[list(frames)], return_tensors="pt", do_sample_frames=False)
    video_tokens = int((inputs["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")).sum())
    grid = inputs["video_grid_thw"][0]
    assert video_tokens == int(grid.prod()) // 4 > 0  # 2x2 spatial merge
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    black = processor(text=[text], videos=[list(np.zeros_like(frames))], return_tensors="pt", do_sample_frames=False)
    with torch.no_grad():
        logits_video = model(**inputs).logits[0, -1]
        logits_black = model(**black).logits[0, -1]
    assert not torch.allclose(logits_video, logits_black)  # the pixels change the prediction


def test_tiny_text_model_loads_with_auto_classes(tiny_text_lm):
    tokenizer = AutoTokenizer.from_pretrained(tiny_text_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_text_lm)
    assert model.config.head_dim == 64
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Describe a red circle."}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > ids["input_ids"].shape[1]


def test_build_is_deterministic_and_cached(tmp_path, tiny_text_lm):
    first = build_tiny_model(tmp_path / "a", kind="text", seed=0)
    weights = (first / "model.safetensors").read_bytes()
    assert weights == (tiny_text_lm / "model.safetensors").read_bytes()  # same seed, same weights
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    build_tiny_model(tmp_path / "a", kind="text", seed=0)
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert json.loads((first / "synpo_toy_model.json").read_text())["kind"] == "text"
