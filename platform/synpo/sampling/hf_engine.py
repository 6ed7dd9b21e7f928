"""The minimal Hugging Face caption path: load a local VLM folder and caption sampled frames.

This is the reference engine: ``transformers`` ``generate`` on CPU or GPU. Contrastive decoding and
self-retrospective refinement build on it (see the engines issue).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydantic
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from synpo.config.base import StrictModel


class GenerationSettings(StrictModel):
    """Decoding settings for one caption request (paper defaults for candidates: T=0.9, top_p=0.95, top_k=32)."""

    max_new_tokens: int = pydantic.Field(default=128, ge=1, le=4096, description="most tokens generated per caption")
    do_sample: bool = pydantic.Field(default=False, description="sample (True) or decode greedily (False)")
    temperature: float = pydantic.Field(default=0.9, gt=0, le=5, description="sampling temperature")
    top_p: float = pydantic.Field(default=0.95, gt=0, le=1, description="nucleus sampling mass")
    top_k: int = pydantic.Field(default=32, ge=0, description="keep the k most likely tokens (0 = off)")
    num_return_sequences: int = pydantic.Field(default=1, ge=1, le=64, description="captions returned per request")
    seed: int | None = pydantic.Field(default=None, description="random seed for sampling (None = nondeterministic)")


@dataclass
class Caption:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (end of sequence) or "length" (hit max_new_tokens)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class HFCaptioner:
    """A local VLM folder (``AutoModelForImageTextToText`` + ``AutoProcessor``) that captions frames."""

    def __init__(self, model_dir: str | Path, device: str = "auto", adapter: str | Path | None = None) -> None:
        model_path = Path(model_dir)
        if not (model_path / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir!r} is not a model folder (no config.json); build one with `synpo toy model`")
        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        if adapter is not None:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise FileNotFoundError(f"{str(adapter)!r} is not a LoRA adapter folder (no adapter_config.json)")
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter)).to(self.device).eval()
        self.eos_ids = set(self.model.generation_config.eos_token_id or [])

    def prompt_text(self, prompt: str) -> str:
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def caption(self, frames: np.ndarray, prompt: str, settings: GenerationSettings) -> list[Caption]:
        """Caption one video given as ``[N, H, W, 3]`` uint8 frames; returns ``num_return_sequences`` captions."""
        inputs = self.processor(
            text=[self.prompt_text(prompt)], videos=[list(frames)], return_tensors="pt", do_sample_frames=False
        ).to(self.device)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        sampling = {"temperature": settings.temperature, "top_p": settings.top_p, "top_k": settings.top_k} if settings.do_sample else {}
        output = self.model.generate(
            **inputs,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            num_return_sequences=settings.num_return_sequences,
            **sampling,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]  # (n, T_new)
        captions = []
        for row in new_tokens.tolist():
            ended = next((position for position, token in enumerate(row) if token in self.eos_ids), None)
            token_ids = row if ended is None else row[:ended]
            text = self.processor.tokenizer.decode(token_ids, skip_special_tokens=True).strip()
            captions.append(Caption(text=text, token_ids=token_ids, finish_reason="length" if ended is None else "stop"))
        return captions
