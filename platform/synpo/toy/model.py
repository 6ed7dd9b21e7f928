"""Build tiny Hugging Face models offline: a video VLM of each family (Qwen2-VL by default) and a Qwen2 text LM.

``build_tiny_model(out, kind="vlm")`` writes a complete folder — config, safetensors weights,
tokenizer, processor (image + video processors, chat template), generation config — that loads with
``AutoProcessor`` / ``AutoModelForImageTextToText`` (``AutoModelForCausalLM`` for ``kind="text"``)
under ``HF_HUB_OFFLINE=1``. Weights are random but deterministic from the seed. Attention head_dim
is 64 because the CPU build of vLLM rejects smaller heads.

A build never leaves a half-built model where a job would pick it up: under a file lock beside the
folder (``.<name>.lock``) it writes everything into a temporary sibling (``.<name>.partial-*``),
writes the recipe marker ``synpo_toy_model.json`` last, and only then renames the sibling into
place. A second builder of the same folder waits on the lock, then finds the finished model and
reuses it, as does any later build with the same recipe. Jobs ask for ``toy://tiny-vlm`` (see
:mod:`synpo.models`), which builds here into the model cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from synpo.errors import BadArgument, ModelNotFound
from synpo.models import fill_into_place, folder_lock
from synpo.toy.families import DEFAULT_FAMILY, FAMILIES
from synpo.toy.family_models import HEAD_DIM, build_family
from synpo.toy.tokenizer import (
    IM_END,
    IMAGE_PAD,
    PAD_TOKEN,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    train_tokenizer,
)

ModelKind = Literal["vlm", "text"]
RECIPE_FILE = "synpo_toy_model.json"
RECIPE_VERSION = 3  # 2: the warm start also teaches retrospective refinement; 3: Qwen3-VL M-RoPE sections that fit its interleaving

HIDDEN_SIZE = 128
TEXT_LAYERS = 2


def _text_settings(vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> dict:
    return {
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": 2 * HIDDEN_SIZE,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": HIDDEN_SIZE // HEAD_DIM,
        "num_key_value_heads": 1,
        "max_position_embeddings": 4096,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "tie_word_embeddings": False,
    }


def _recipe(kind: ModelKind, seed: int, warm_start_steps: int, family: str = DEFAULT_FAMILY) -> dict:
    recipe = {
        "kind": kind,
        "seed": seed,
        "version": RECIPE_VERSION,
        "hidden_size": HIDDEN_SIZE,
        "layers": TEXT_LAYERS,
        "warm_start_steps": warm_start_steps,
    }
    return recipe if family == DEFAULT_FAMILY else {**recipe, "family": family}  # Qwen2-VL recipes of earlier builds stay valid


def toy_recipe(path: str | Path) -> dict | None:
    """The recipe of the finished toy model at ``path``, or None (no folder, a half-built one, or another model)."""
    recipe_path = Path(path) / RECIPE_FILE
    return json.loads(recipe_path.read_text()) if recipe_path.is_file() else None


def is_built(out: str | Path, kind: ModelKind, seed: int, warm_start_steps: int = 0, family: str = DEFAULT_FAMILY) -> bool:
    return toy_recipe(out) == _recipe(kind, seed, warm_start_steps, family)


def build_tiny_model(
    out: str | Path, kind: ModelKind = "vlm", seed: int = 0, force: bool = False, warm_start_steps: int = 0, family: str = DEFAULT_FAMILY
) -> Path:
    """Build the tiny model folder at ``out`` (reused if already built with this recipe); returns its path.

    ``warm_start_steps > 0`` (VLM only) then fine-tunes it on toy-world captions
    (:func:`synpo.toy.warmstart.warm_start`) so it writes caption-like text instead of token soup.
    ``family`` picks the video VLM's architecture (:data:`~synpo.toy.families.FAMILIES`,
    :mod:`synpo.toy.family_models`); the tokenizer and text sizes are the same for every family.
    A finished toy model of another recipe is replaced; a folder that holds no finished toy model
    (an interrupted build, or another model) is refused unless ``force``.
    """
    out = Path(out)
    if warm_start_steps and kind != "vlm":
        raise BadArgument(f"warm start is for the video model; kind={kind!r} takes warm_start_steps=0, got {warm_start_steps}")
    if family not in FAMILIES:
        raise BadArgument(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    if family != DEFAULT_FAMILY and kind != "vlm":
        raise BadArgument(f"family={family!r} is a video VLM; kind={kind!r} builds the text model (family {DEFAULT_FAMILY})")
    recipe_wanted = _recipe(kind, seed, warm_start_steps, family)
    if not force and toy_recipe(out) == recipe_wanted:
        return out  # the marker is only ever in a finished folder, so no lock is needed to reuse it
    out.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        recipe = toy_recipe(out)
        if not force and recipe == recipe_wanted:
            return out
        if not force and recipe is None and out.exists() and any(out.iterdir()):  # an empty folder is fine to build into
            raise ModelNotFound(
                f"{str(out)!r} holds no finished toy model (an interrupted build, or another model): "
                "delete it, or rebuild it with `synpo toy model --force`"
            )
        fill_into_place(out, lambda folder: _write_model(folder, kind, seed, warm_start_steps, family))
    return out


def _write_model(out: Path, kind: ModelKind, seed: int, warm_start_steps: int, family: str = DEFAULT_FAMILY) -> None:
    """Write the whole model folder into the (new, empty) folder ``out``, the recipe marker last."""
    tokenizer = train_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (IM_END, PAD_TOKEN, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)}
    text = _text_settings(len(tokenizer), bos_id=ids[PAD_TOKEN], eos_id=ids[IM_END], pad_id=ids[PAD_TOKEN])
    torch.manual_seed(seed)
    if kind == "vlm":
        model, processor = build_family(family, text, ids, tokenizer)
        processor.save_pretrained(out)
    else:
        config = Qwen2Config(**text, head_dim=HEAD_DIM, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
        model = Qwen2ForCausalLM(config)
        tokenizer.save_pretrained(out)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=[ids[IM_END], ids[PAD_TOKEN]],
        pad_token_id=ids[PAD_TOKEN],
        do_sample=False,
        max_new_tokens=64,
    )
    model.save_pretrained(out)
    if warm_start_steps:
        from synpo.toy.warmstart import warm_start

        warm_start(out, steps=warm_start_steps, seed=seed)
    (out / RECIPE_FILE).write_text(json.dumps(_recipe(kind, seed, warm_start_steps, family), indent=1))
