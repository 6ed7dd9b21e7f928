"""The Hugging Face caption engine: ``transformers`` ``generate`` on CPU or GPU, the reference engine.

It serves every mode of :class:`~synpo.sampling.request.CaptionRequest`:

- one *pass* = one ``generate`` call: the instructions of the pass as one left-padded batch, each
  with the same video, ``num_return_sequences = samples_per_instruction``;
- contrastive decoding adds a :class:`~synpo.sampling.contrastive.ContrastiveLogitsProcessor`
  whose sparse branch has its own inputs and KV cache;
- retrospection is two passes, driven by :func:`synpo.sampling.passes.run_requests`.

Passes run one after another, except greedy single-sample passes over videos (evaluation captions,
clip captions and their refinements): those of different requests share ``generate`` calls, up to
``GREEDY_BATCH`` prompts each, every distinct video through the vision tower once. A model folder with a ``vision_config`` is
loaded as a VLM (``AutoProcessor`` + ``AutoModelForImageTextToText``); any other as a text LM
(``AutoTokenizer`` + ``AutoModelForCausalLM``, frames must be ``None``) — the tiny text model lets
the HF and vLLM engines be compared on the same weights. A LoRA adapter is applied with peft.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
)

from synpo.errors import BadArgument, ModelNotFound
from synpo.sampling.contrastive import ContrastiveLogitsProcessor, SparseBranch
from synpo.sampling.device import pick_device
from synpo.sampling.passes import PassSpec, run_requests
from synpo.sampling.prompts import chat_messages
from synpo.sampling.request import (
    Candidate,
    CaptionRequest,
    CaptionResult,
    ContrastiveSettings,
    Mode,
    SamplingParams,
)
from synpo.video.metadata import frame_metadata
from synpo.video.plan import sparse_positions
from synpo.vlm.positions import use_reference_positions
from synpo.vlm.videos import VideoPrompter, encode, features_of_rows, row_inputs, uses_3d_positions

DEFAULT_ADAPTER = "default"  # the name of the adapter given to the constructor
GREEDY_BATCH = 16  # prompts per generate when greedy single-sample passes of different videos share one


class TokenLogprobRecorder(LogitsProcessor):
    """Records each sampled token's log-probability under the raw model distribution.

    ``generate`` calls processors before sampling, so at step t+1 the token chosen at step t is the
    last column of ``input_ids``; only one step's ``[B, V]`` log-softmax is held at a time (never
    ``[B, T, V]``). Call :meth:`finish` with the final sequences for the last token.
    """

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None  # [B, V] log-probs of the step before
        self.steps: list[torch.Tensor] = []  # T x [B]

    def _record(self, tokens: torch.Tensor) -> None:
        self.steps.append(self.previous.gather(1, tokens[:, None].to(self.previous.device))[:, 0].cpu())

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.previous is not None:
            self._record(input_ids[:, -1])
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` log-probs of the generated tokens."""
        self._record(sequences[:, -1])
        self.previous = None
        return torch.stack(self.steps, dim=1)


class HFEngine:
    """A local model folder that captions videos (or, for text LMs, answers prompts)."""

    def __init__(self, model_dir: str | Path, device: str = "auto", adapter: str | Path | None = None) -> None:
        model_path = Path(model_dir)
        if not (model_path / "config.json").is_file():
            raise ModelNotFound(f"{str(model_dir)!r} is not a model folder (no config.json); build one with `synpo toy model`")
        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.is_vlm = "vision_config" in json.loads((model_path / "config.json").read_text())
        if self.is_vlm:
            self.processor = AutoProcessor.from_pretrained(model_path)
            self.tokenizer = self.processor.tokenizer
            self.base_model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)
            use_reference_positions(self.base_model)  # Qwen2-VL / Qwen2.5-VL: the positions they were trained with, as vLLM's
        else:
            self.processor = None
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.base_model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
        self.prompter = VideoPrompter(self.processor, token_types=uses_3d_positions(self.base_model.model)) if self.is_vlm else None
        self.tokenizer.padding_side = "left"  # generation continues on the right
        self.model = self.base_model.to(self.device).eval()
        if adapter is not None:
            self.add_adapter(DEFAULT_ADAPTER, adapter)
        defaults = self.base_model.generation_config
        eos = defaults.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [self.tokenizer.eos_token_id])
        self.pad_id = defaults.pad_token_id if defaults.pad_token_id is not None else self.tokenizer.pad_token_id

    # --- adapters -------------------------------------------------------------------------------

    def add_adapter(self, name: str, adapter: str | Path) -> None:
        """Load the LoRA adapter folder ``adapter`` of this base as ``name``, beside any loaded before; the
        constructor's adapter is ``"default"``. :meth:`using` picks the one generation runs with."""
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ModelNotFound(f"{str(adapter)!r} is not a LoRA adapter folder (no adapter_config.json)")
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(adapter), adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.base_model, str(adapter), adapter_name=name).to(self.device)
        self.model.eval()

    def remove_adapter(self, name: str) -> None:
        self.model.delete_adapter(name)

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[None]:
        """Generate with adapter ``adapter`` (``None``: the base model, adapters off) inside the block."""
        from peft import PeftModel

        if not isinstance(self.model, PeftModel):
            if adapter is not None:
                raise BadArgument(f"adapter {adapter!r}: this engine has no adapters loaded")
            yield
        elif adapter is None:
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(adapter)
            yield

    # --- inputs ---------------------------------------------------------------------------------

    def _chat_texts(self, instructions: list[str], with_video: bool) -> list[str]:
        """The chat-templated prompts; a VLM's processor holds its template (LLaVA checkpoints' tokenizers may have
        a text-only one, or none), as the training collator renders them."""
        renderer = self.processor if self.processor is not None else self.tokenizer
        return [renderer.apply_chat_template(chat_messages(text, with_video), tokenize=False, add_generation_prompt=True) for text in instructions]

    def _video_inputs(
        self, texts: list[str], videos: list[np.ndarray], video_of_text: list[int], durations: list[float | None] | None = None
    ) -> dict:
        """Inputs for ``texts``, text i showing ``videos[video_of_text[i]]``: each distinct video is preprocessed
        and run through the vision tower ONCE, its features reaching every row that shows it through
        ``mm_encoder_outputs``; each placeholder is expanded the family's own way (:mod:`synpo.vlm.videos`).
        ``durations[v]``: how long video v's frames span (:func:`~synpo.video.metadata.frame_metadata`; None: the
        processor's default); with it the processor knows the frames' times (Qwen2.5-VL's ``second_per_grid_ts``,
        Qwen3-VL's timestamps)."""
        if self.prompter is None:
            raise BadArgument("this model is a text LM; it takes no video frames")
        durations = durations or [None] * len(videos)
        metadata = [frame_metadata(len(frames), duration) for frames, duration in zip(videos, durations, strict=True)]
        processed = self.prompter.process(videos, metadata).to(self.device)
        prompts = [self.prompter.expand(text, processed.placeholders[index]) for text, index in zip(texts, video_of_text, strict=True)]
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        features = encode(self.base_model.model, processed.tensors)
        return {
            **inputs,
            **self.prompter.token_types(inputs["input_ids"]),
            **row_inputs(processed.tensors, video_of_text),
            "mm_encoder_outputs": {"video": features_of_rows(features, video_of_text)},
        }

    def encode(self, instructions: list[str], frames: np.ndarray | None, duration_s: float | None = None) -> dict:
        """Model inputs for a batch of instructions that share one video (``frames`` ``[N, H, W, 3]``).

        The video is preprocessed and run through the vision tower ONCE (the refinement pass has one
        prompt per candidate, all on the same video). The result goes to ``generate`` or the model's
        forward as keywords. ``duration_s``: how long the frames span (see :meth:`_video_inputs`).
        """
        texts = self._chat_texts(instructions, frames is not None)
        if frames is None:
            return self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)
        return self._video_inputs(texts, [frames], [0] * len(texts), [duration_s])

    @staticmethod
    def sparse_frames(request: CaptionRequest) -> np.ndarray:
        """The CD branch's frames: the request's own subset, or ``ceil(N / 3)`` uniform ones."""
        if request.sparse_frames is not None:
            return request.sparse_frames
        return request.frames[sparse_positions(len(request.frames))]

    def generation_config(self, params: SamplingParams, samples: int) -> GenerationConfig:
        sampling = {} if params.greedy else {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=not params.greedy,
            num_return_sequences=samples,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            **sampling,
        )

    # --- one pass -------------------------------------------------------------------------------

    @torch.inference_mode()
    def run_pass(
        self,
        request: CaptionRequest,
        instructions: list[str],
        samples_per_instruction: int,
        params: SamplingParams,
        contrastive: ContrastiveSettings | None,
    ) -> list[Candidate]:
        inputs = self.encode(instructions, request.frames, request.duration_s)
        processors: list[LogitsProcessor] = []
        recorder = TokenLogprobRecorder() if params.logprobs else None
        if recorder is not None:
            processors.append(recorder)  # first: it must see the raw full-branch scores
        if contrastive is not None:
            sparse_inputs = self.encode(instructions, self.sparse_frames(request), request.duration_s)  # fewer frames, same span
            inner = self.base_model.model
            rope_index = inner.get_rope_index if uses_3d_positions(inner) else None  # Qwen's M-RoPE, or LLaVA's 1-D positions
            branch = SparseBranch(self.model, rope_index, sparse_inputs, samples_per_instruction)
            processors.append(ContrastiveLogitsProcessor(branch, contrastive.alpha, contrastive.cutoff))
        if params.seed is not None:
            torch.manual_seed(params.seed)
        sequences = self.model.generate(
            **inputs, generation_config=self.generation_config(params, samples_per_instruction), logits_processor=processors
        )
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :]  # [B * samples, T]
        logprobs = recorder.finish(sequences).tolist() if recorder is not None else None
        prompt_tokens = inputs["attention_mask"].sum(dim=1).repeat_interleave(samples_per_instruction).tolist()  # [B * samples]
        return [
            self._candidate(row, None if logprobs is None else logprobs[index], prompt_tokens[index]) for index, row in enumerate(new_tokens.tolist())
        ]

    def _candidate(self, row: list[int], logprobs: list[float] | None, prompt_tokens: int) -> Candidate:
        ended = next((position for position, token in enumerate(row) if token in self.eos_ids), None)
        token_ids = row if ended is None else row[:ended]
        return Candidate(
            text=self.tokenizer.decode(token_ids, skip_special_tokens=True).strip(),
            token_ids=token_ids,
            finish_reason="length" if ended is None else "stop",
            logprobs=None if logprobs is None else logprobs[: len(token_ids)],
            prompt_tokens=prompt_tokens,
        )

    # --- requests -------------------------------------------------------------------------------

    @staticmethod
    def _shares_a_batch(spec: PassSpec) -> bool:
        """Greedy, single-sample, no CD, with a video: passes of different videos that can run in one ``generate``."""
        return spec.params.greedy and spec.contrastive is None and spec.request.frames is not None and spec.samples_per_instruction == 1

    @torch.inference_mode()
    def _greedy_videos(self, items: list[tuple[str, np.ndarray, float | None]], params: SamplingParams) -> list[Candidate]:
        """One greedy candidate per ``(instruction, frames, duration_s)``, all in one ``generate``."""
        videos: list[np.ndarray] = []
        durations: list[float | None] = []
        video_of_text = []
        for _, frames, duration_s in items:
            known = next((index for index, video in enumerate(videos) if video is frames), None)
            if known is None:
                videos.append(frames)
                durations.append(duration_s)
                known = len(videos) - 1
            video_of_text.append(known)
        inputs = self._video_inputs(self._chat_texts([instruction for instruction, _, _ in items], True), videos, video_of_text, durations)
        recorder = TokenLogprobRecorder() if params.logprobs else None
        sequences = self.model.generate(
            **inputs, generation_config=self.generation_config(params, 1), logits_processor=[recorder] if recorder else []
        )
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :]
        logprobs = recorder.finish(sequences).tolist() if recorder is not None else None
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()  # [B]: each prompt without its padding
        return [
            self._candidate(row, None if logprobs is None else logprobs[index], prompt_tokens[index]) for index, row in enumerate(new_tokens.tolist())
        ]

    def run_passes(self, specs: list[PassSpec]) -> list[list[Candidate]]:
        """Candidates per spec. Greedy single-sample passes of videos (eval captions, clip captions and their
        refinements) run ``GREEDY_BATCH`` prompts per ``generate``, across requests; every other pass runs alone."""
        results: list[list[Candidate] | None] = [None] * len(specs)
        groups: dict[str, list[int]] = {}
        for index, spec in enumerate(specs):
            if self._shares_a_batch(spec):
                groups.setdefault(spec.params.model_dump_json(exclude={"seed"}), []).append(index)
            else:
                results[index] = self.run_pass(spec.request, spec.instructions, spec.samples_per_instruction, spec.params, spec.contrastive)
        for members in groups.values():
            items = [
                (instruction, specs[index].request.frames, specs[index].request.duration_s) for index in members for instruction in specs[index].instructions
            ]
            params = specs[members[0]].params
            candidates = [
                candidate for start in range(0, len(items), GREEDY_BATCH) for candidate in self._greedy_videos(items[start : start + GREEDY_BATCH], params)
            ]
            for index in members:
                count = len(specs[index].instructions)
                results[index], candidates = candidates[:count], candidates[count:]
        return results

    def generate(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        """Serve ``requests`` pass by pass (:func:`~synpo.sampling.passes.run_requests`), in request order."""
        results = run_requests(self.run_passes, requests) if requests else []
        for request, result in zip(requests, results, strict=True):
            if request.uses_contrast:
                result.frames_seen["sparse"] = len(self.sparse_frames(request))
        return results

    @torch.inference_mode()
    def continuation_logprobs(self, instruction: str, frames: np.ndarray | None, token_ids: list[int], duration_s: float | None = None) -> list[float]:
        """Teacher-forced ``log p(token_ids[t] | prompt, token_ids[:t])`` under this engine's model (adapter included).

        The prompt is built exactly as for generation (chat template, video preprocessing), and the
        distribution is the model's raw one (no temperature or top-k), as in the engines' sampled-token
        log-probs: so a candidate's ``logprobs`` from any engine can be checked against this.
        """
        if self.prompter is not None and self.prompter.video_token_id in token_ids:
            raise BadArgument("the continuation holds the video placeholder token; the model would take it for video input")
        inputs = dict(self.encode([instruction], frames, duration_s))
        prompt_length = inputs["input_ids"].shape[1]
        continuation = torch.tensor([token_ids], device=self.device)  # [1, T]
        inputs["input_ids"] = torch.cat([inputs["input_ids"], continuation], dim=1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(continuation)], dim=1)
        if "mm_token_type_ids" in inputs:
            inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(continuation)], dim=1)
        logits = self.model(**inputs).logits[0, prompt_length - 1 : -1].float()  # [T, V]: each predicts the next token
        steps = torch.log_softmax(logits, dim=-1)
        return steps[torch.arange(len(token_ids), device=self.device), continuation[0]].tolist()

    def caption(
        self, frames: np.ndarray | None, prompt: str, params: SamplingParams, mode: Mode = "plain", duration_s: float | None = None
    ) -> list[Candidate]:
        """Shorthand for one request: the candidates for ``frames`` (spanning ``duration_s``) and ``prompt``."""
        request = CaptionRequest(request_id="caption", prompt=prompt, frames=frames, params=params, mode=mode, duration_s=duration_s)
        return self.generate([request])[0].candidates
