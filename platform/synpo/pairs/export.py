"""``synpo pairs export``: preference pairs in the formats other trainers read.

**llamafactory** — LLaMA-Factory's ShareGPT-style preference data with a video (checked against
``data/README.md`` of hiyouga/LLaMA-Factory: "Preference Dataset" and "Multimodal Video Dataset" of
the sharegpt format). One JSON list; per pair::

    {"conversations": [{"from": "human", "value": "<video>Describe the video."}],
     "chosen": {"from": "gpt", "value": "A red circle ..."},
     "rejected": {"from": "gpt", "value": "A blue circle ..."},
     "videos": ["/data/videos/a.mp4"]}

The number of ``<video>`` tags must equal the number of videos, so a prompt that already holds the
tag is refused. LLaMA-Factory reads local paths (relative ones against its ``media_dir``); copy the
videos next to it and point ``--video-root`` at the copy. The file needs a ``dataset_info.json``
entry (:func:`llamafactory_dataset_info`: ``formatting: sharegpt``, ``ranking: true``, ``columns``
messages/chosen/rejected/videos). :func:`synpo.pairs.io.parse_llamafactory` reads this format back.

**trl** — JSONL in TRL's conversational preference format (checked against TRL's
``docs/source/dataset_formats.md`` "Preference" and "Vision datasets", and ``dpo_trainer.md``
"Training Vision Language Models"). One line per pair::

    {"prompt": [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe the video."}]}],
     "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "A red circle ..."}]}],
     "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "A blue circle ..."}]}],
     "videos": ["/data/videos/a.mp4"]}

What TRL documents: content as a list of typed parts and an ``images`` column holding the image data
(``{"type": "image"}`` parts, e.g. ``HuggingFaceH4/rlaif-v_formatted``). Its DPO docs describe no
``videos`` column, so this file uses the same shape with a ``{"type": "video"}`` part and the
videos' URIs; decode them (into ``images`` frames, or for a processor that takes videos) before
handing the dataset to ``DPOTrainer``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from synpo.errors import BadArgument
from synpo.pairs.io import VIDEO_TAG
from synpo.pairs.pairgen_output import read_any_pairs
from synpo.storage import Storage

FORMATS = ("llamafactory", "trl")
OUTPUT_SUFFIX = {"llamafactory": ".json", "trl": ".jsonl"}


def common_folder(uris: list[str]) -> str:
    """The deepest folder (ending in ``/``) that holds every URI: ``s3://b/videos/a/1.mp4`` + ``s3://b/videos/b/2.mp4`` -> ``s3://b/videos/``."""
    prefix = os.path.commonprefix(uris)
    return prefix[: prefix.rfind("/") + 1]


def rewrite_video_root(rows: list[dict[str, Any]], video_root: str, video_prefix: str | None = None) -> list[dict[str, Any]]:
    """Rows with each video's ``video_prefix`` (default: the videos' common folder) replaced by ``video_root``.

    ``s3://bucket/videos/a/1.mp4`` with prefix ``s3://bucket/videos/`` and root ``/data/videos`` ->
    ``/data/videos/a/1.mp4``. A video outside the prefix is an error naming the pair.
    """
    old = (video_prefix or common_folder([row["video"] for row in rows])).rstrip("/") + "/"
    new = video_root.rstrip("/") + "/"
    rewritten = []
    for row in rows:
        if not row["video"].startswith(old):
            raise BadArgument(f"pair {row['pair_id']!r}: video {row['video']!r} is not under --video-prefix {old!r}")
        rewritten.append({**row, "video": new + row["video"][len(old) :]})
    return rewritten


def _prompt_without_tag(row: dict[str, Any]) -> str:
    if VIDEO_TAG in row["prompt"]:
        raise BadArgument(f"pair {row['pair_id']!r}: the prompt already contains {VIDEO_TAG!r}; exporters add it themselves")
    return row["prompt"]


def to_llamafactory(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Schema rows -> LLaMA-Factory ShareGPT preference records (one video each)."""
    return [
        {
            "conversations": [{"from": "human", "value": VIDEO_TAG + _prompt_without_tag(row)}],
            "chosen": {"from": "gpt", "value": row["chosen"]},
            "rejected": {"from": "gpt", "value": row["rejected"]},
            "videos": [row["video"]],
        }
        for row in rows
    ]


def llamafactory_dataset_info(name: str, file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry LLaMA-Factory needs for a file written by :func:`to_llamafactory`."""
    columns = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "videos": "videos"}
    return {name: {"file_name": file_name, "formatting": "sharegpt", "ranking": True, "columns": columns}}


def to_trl(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Schema rows -> TRL conversational preference examples with a ``videos`` column."""
    return [
        {
            "prompt": [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": _prompt_without_tag(row)}]}],
            "chosen": [{"role": "assistant", "content": [{"type": "text", "text": row["chosen"]}]}],
            "rejected": [{"role": "assistant", "content": [{"type": "text", "text": row["rejected"]}]}],
            "videos": [row["video"]],
        }
        for row in rows
    ]


def render(rows: list[dict[str, Any]], export_format: str) -> str:
    """The exported file's text: a JSON list (llamafactory) or JSON lines (trl)."""
    if export_format == "llamafactory":
        return json.dumps(to_llamafactory(rows), ensure_ascii=False, indent=2) + "\n"
    if export_format == "trl":
        return "".join(json.dumps(example, ensure_ascii=False) + "\n" for example in to_trl(rows))
    raise BadArgument(f"unknown export format {export_format!r}; choose one of {', '.join(FORMATS)}")


def export_pairs(
    pairs: str,
    out: str,
    export_format: str,
    video_root: str | None = None,
    video_prefix: str | None = None,
    storage: Storage | None = None,
) -> int:
    """Read the pairs at ``pairs`` (file, folder of parts, or a pair-generation output), write ``out``; returns the count."""
    storage = storage or Storage()
    if export_format not in FORMATS:
        raise BadArgument(f"unknown export format {export_format!r}; choose one of {', '.join(FORMATS)}")
    if not out.lower().endswith(OUTPUT_SUFFIX[export_format]):
        raise BadArgument(f"--out {out!r}: a {export_format} export is a {OUTPUT_SUFFIX[export_format]} file")
    if video_prefix is not None and video_root is None:
        raise BadArgument("--video-prefix only makes sense with --video-root")
    rows = read_any_pairs(pairs, storage)
    if video_root is not None:
        rows = rewrite_video_root(rows, video_root, video_prefix)
    storage.write_text(out, render(rows, export_format))
    return len(rows)
