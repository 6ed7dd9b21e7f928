"""The tiny video VLM of each family: the same text sizes and tokenizer, each family's own architecture and processor.

Every family is built from its stock Hugging Face classes with small sizes, so what the platform does
with a tiny build (placeholder expansion, frame times, positions, features) is what it does with the
real checkpoint. The Qwen families see frames at up to ``MAX_PIXELS`` each; the LLaVA families at
56 x 56 (their towers take one square size): 16 patches per frame, pooled to 4 video tokens.
"""

from __future__ import annotations

import torch
from transformers import (
    LlavaNextImageProcessor,
    LlavaNextVideoConfig,
    LlavaNextVideoForConditionalGeneration,
    LlavaNextVideoProcessor,
    LlavaNextVideoVideoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from synpo.toy.tokenizer import IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START

HEAD_DIM = 64  # the CPU build of vLLM rejects smaller attention heads
VISION_DEPTH = 2
VISION_EMBED = 64
MAX_PIXELS = 112 * 140  # per frame, after the processor's resize; keeps the tiny VLM fast on CPU
MIN_PIXELS = 56 * 56
LLAVA_SIDE = 56  # the LLaVA towers' square input: (56 / 14)^2 = 16 patches, pooled 2 x 2 to 4 per frame
MROPE_SECTION = [8, 12, 12]  # temporal / height / width shares of the 32 rotary frequencies of 64-wide heads
# Qwen3-VL interleaves them (t h w t h w ...): height and width take every third frequency, so each gets at most 10 of
# 32; its real checkpoints' [24, 20, 20] of 64, halved
QWEN3_MROPE_SECTION = [12, 10, 10]


def _qwen_vision(family: str, hidden_size: int) -> dict:
    """The Qwen vision tower's config: the same patching and merge for every generation, each in its own field names."""
    common = {"depth": VISION_DEPTH, "spatial_merge_size": 2, "temporal_patch_size": 2}
    if family == "qwen2.5-vl":  # SwiGLU MLPs (gate/up/down_proj: the names the LM's projections have too), window attention
        return {**common, "patch_size": 14, "hidden_size": VISION_EMBED, "intermediate_size": 2 * VISION_EMBED, "num_heads": VISION_EMBED // HEAD_DIM,
                "out_hidden_size": hidden_size, "window_size": 112, "fullatt_block_indexes": [VISION_DEPTH - 1]}  # fmt: skip
    if family == "qwen3-vl":  # 16-pixel patches, learned position grid, deepstack features from the first block
        return {**common, "patch_size": 16, "hidden_size": VISION_EMBED, "intermediate_size": 2 * VISION_EMBED, "num_heads": VISION_EMBED // HEAD_DIM,
                "out_hidden_size": hidden_size, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}  # fmt: skip
    return {**common, "patch_size": 14, "embed_dim": VISION_EMBED, "hidden_size": hidden_size, "num_heads": VISION_EMBED // HEAD_DIM, "mlp_ratio": 2}


def _qwen(family: str, text: dict, ids: dict[str, int], tokenizer):
    classes = {
        "qwen2-vl": (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor, Qwen2VLVideoProcessor),
        "qwen2.5-vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLVideoProcessor),
        "qwen3-vl": (Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor, Qwen3VLVideoProcessor),
    }
    config_class, model_class, processor_class, video_processor_class = classes[family]
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": MROPE_SECTION}
    if family == "qwen3-vl":
        text, rope = {**text, "head_dim": HEAD_DIM}, {**rope, "mrope_section": QWEN3_MROPE_SECTION, "mrope_interleaved": True}
    vision = _qwen_vision(family, text["hidden_size"])
    config = config_class(
        text_config={**text, "rope_parameters": rope},
        vision_config=vision,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=False,
    )
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    patch = {"patch_size": vision["patch_size"]}
    processor = processor_class(
        image_processor=Qwen2VLImageProcessor(size=size, **patch),
        video_processor=video_processor_class(size=size, cap_pixels_per_frame=True, **patch),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    return model_class(config), processor


def _llava(family: str, text: dict, ids: dict[str, int], tokenizer):
    vision = {"hidden_size": VISION_EMBED, "intermediate_size": 2 * VISION_EMBED, "num_hidden_layers": VISION_DEPTH,
              "num_attention_heads": VISION_EMBED // HEAD_DIM, "image_size": LLAVA_SIDE, "patch_size": 14}  # fmt: skip
    tokens = {"image_token_index": ids[IMAGE_PAD], "video_token_index": ids[VIDEO_PAD]}
    text = {**text, "model_type": "qwen2", "head_dim": HEAD_DIM}
    square = {"height": LLAVA_SIDE, "width": LLAVA_SIDE}
    placeholders = {"image_token": IMAGE_PAD, "video_token": VIDEO_PAD, "chat_template": tokenizer.chat_template}
    if family == "llava-onevision":  # SigLIP tower (no CLS token), Qwen2 language model
        config = LlavaOnevisionConfig(text_config=text, vision_config={**vision, "model_type": "siglip_vision_model"}, **tokens,
                                      vision_feature_layer=-1, vision_feature_select_strategy="full", tie_word_embeddings=False)  # fmt: skip
        processor = LlavaOnevisionProcessor(
            image_processor=LlavaOnevisionImageProcessor(size=square),
            video_processor=LlavaOnevisionVideoProcessor(size=square),
            tokenizer=tokenizer, num_image_tokens=(LLAVA_SIDE // 14) ** 2, vision_feature_select_strategy="full", **placeholders,
        )  # fmt: skip
        return LlavaOnevisionForConditionalGeneration(config), processor
    # llava-next-video: CLIP tower (its CLS token dropped), average-pooled video features
    config = LlavaNextVideoConfig(text_config=text, vision_config={**vision, "model_type": "clip_vision_model"}, **tokens,
                                  vision_feature_layer=-1, vision_feature_select_strategy="default", tie_word_embeddings=False)  # fmt: skip
    processor = LlavaNextVideoProcessor(
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": LLAVA_SIDE}, crop_size=square),
        video_processor=LlavaNextVideoVideoProcessor(size={"shortest_edge": LLAVA_SIDE}, crop_size=square),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default", **placeholders,
    )  # fmt: skip
    return LlavaNextVideoForConditionalGeneration(config), processor


def build_family(family: str, text: dict, ids: dict[str, int], tokenizer) -> tuple[torch.nn.Module, object]:
    """``(model, processor)`` of ``family`` with the text model ``text`` (a Qwen2 config's fields) and the toy tokenizer."""
    if family.startswith("llava"):
        return _llava(family, text, ids, tokenizer)
    return _qwen(family, text, ids, tokenizer)
