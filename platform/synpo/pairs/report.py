"""``synpo pairs report``: one self-contained HTML page to read a pairs dataset by eye.

Per pair: a strip of frame thumbnails (JPEG data URIs, ``max_side`` 96 px), the chosen and rejected
captions side by side with their scores, and — when the pairs come from a pair-generation output
folder (or ``--audit`` names an audit table) — each side's C1/C2/C3, total and the judge's reasoning,
the other candidates, and the clip captions from ``videos/``. A select box re-orders the pairs by
margin or video id in the browser. No network: inline CSS and JS only. Every text is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from synpo.errors import BadArgument
from synpo.pairs.pairgen_output import audit_and_videos, locate_pairs, read_located_pairs
from synpo.storage import Storage, StorageError
from synpo.video.errors import VideoError
from synpo.video.sampler import VideoSamplingConfig, sample_video

THUMBNAIL_MAX_SIDE = 96
CRITERIA = ("c1", "c2", "c3")

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;color:#1d2330;background:#f5f6f8}
header h1{font-size:20px;margin:0 0 4px}header p{margin:2px 0;color:#555}
.controls{margin:12px 0;padding:8px 12px;background:#fff;border:1px solid #dde;border-radius:6px}
.pair{background:#fff;border:1px solid #dde;border-radius:8px;margin:14px 0;padding:12px 14px}
.pair h2{font-size:15px;margin:0 0 6px;display:flex;gap:14px;flex-wrap:wrap;align-items:baseline}
.meta{font-weight:normal;color:#667;font-size:12px}.prompt{color:#445;margin:4px 0 8px;font-style:italic}
.frames{display:flex;gap:4px;overflow-x:auto;margin-bottom:8px}.frames img{border-radius:3px;height:72px}
.note{background:#fff3cd;border:1px solid #e6c96b;padding:6px 10px;border-radius:4px;margin-bottom:8px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.side{border-radius:6px;padding:8px 10px}.side h3{margin:0 0 4px;font-size:13px;text-transform:uppercase}
.chosen{background:#eaf7ee;border:1px solid #9fd4ae}.rejected{background:#fcecec;border:1px solid #e3a5a5}
.caption{white-space:pre-wrap;margin:4px 0}.score{float:right;font-weight:bold}
table.criteria{border-collapse:collapse;margin:6px 0}table.criteria td,table.criteria th{border:1px solid #ccd;padding:2px 8px;text-align:center;background:#fff}
dl.reasoning{margin:4px 0;font-size:12px}dl.reasoning dt{font-weight:bold}dl.reasoning dd{margin:0 0 4px 12px;white-space:pre-wrap}
.failures{color:#a33;font-size:12px}details{margin-top:8px;font-size:13px}details li{margin:3px 0}
"""

JS = """
function sortPairs(how){
  const list=document.getElementById('pairs');const items=Array.from(list.children);
  const margin=el=>el.dataset.margin===''?null:parseFloat(el.dataset.margin);
  const order=(a,b)=>Number(a.dataset.index)-Number(b.dataset.index);
  items.sort((a,b)=>{
    if(how==='file')return order(a,b);
    if(how==='video')return a.dataset.video.localeCompare(b.dataset.video)||order(a,b);
    const ma=margin(a),mb=margin(b);
    if(ma===null||mb===null)return (ma===null)-(mb===null)||order(a,b);
    return how==='margin-desc'?mb-ma:ma-mb;});
  items.forEach(el=>list.appendChild(el));}
document.getElementById('sort').addEventListener('change',e=>sortPairs(e.target.value));
"""

SORT_CONTROL = """<div class="controls"><label for="sort">Sort pairs by </label><select id="sort">
<option value="file">file order</option><option value="margin-desc">margin, largest first</option>
<option value="margin-asc">margin, smallest first</option><option value="video">video id</option></select></div>"""


@dataclass(frozen=True)
class ReportSummary:
    out: str
    pairs: int
    unreadable_videos: int
    with_audit: bool


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def thumbnails(video: str, count: int, storage: Storage) -> list[str]:
    """``count`` frames spread over ``video`` as ``data:image/jpeg;base64,...`` URIs; VideoError/StorageError if unreadable."""
    frames = sample_video(storage.local_path_or_bytes(video), video, VideoSamplingConfig(num_frames=count, max_side=THUMBNAIL_MAX_SIDE)).frames  # [N, H, W, 3]
    uris = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=80)
        uris.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return uris


def frame_strip(video: str, count: int, storage: Storage, cache: dict[str, list[str] | str]) -> tuple[str, bool]:
    """The thumbnails' HTML (or a visible note saying why there are none) and whether the video was readable."""
    if count == 0:
        return "", True
    if video not in cache:
        try:
            cache[video] = thumbnails(video, count, storage)
        except (VideoError, StorageError) as error:
            cache[video] = f"{type(error).__name__}: {error}"
    found = cache[video]
    if isinstance(found, str):
        return f'<div class="note">Video could not be read, no thumbnails: {esc(found)}</div>', False
    return '<div class="frames">' + "".join(f'<img alt="frame" src="{uri}">' for uri in found) + "</div>", True


def audit_block(candidate: dict[str, Any] | None, audited: bool) -> str:
    if not audited:
        return ""
    if candidate is None:
        return '<p class="note">No audit row for this candidate.</p>'
    head = "".join(f"<th>{name.upper()}</th>" for name in CRITERIA) + "<th>total</th>"
    cells = "".join(f"<td>{number(candidate[name])}</td>" for name in CRITERIA) + f"<td>{number(candidate['total'])}</td>"
    reasoning = "".join(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in candidate["reasoning"].items())
    failures = "; ".join(f"{name}: {why}" for name, why in candidate["judge_failures"].items())
    return (
        f'<table class="criteria"><tr>{head}</tr><tr>{cells}</tr></table>'
        + (f'<dl class="reasoning">{reasoning}</dl>' if reasoning else "")
        + (f'<p class="failures">judge failures: {esc(failures)}</p>' if failures else "")
    )


def side(role: str, caption: str, score: float | None, candidate: dict[str, Any] | None, audited: bool) -> str:
    return (
        f'<div class="side {role}"><h3>{role}<span class="score">score {number(score)}</span></h3>'
        f'<p class="caption">{esc(caption)}</p>{audit_block(candidate, audited)}</div>'
    )


def extras(candidates: list[dict[str, Any]], record: dict[str, Any] | None) -> str:
    others = [candidate for candidate in candidates if candidate["role"] not in ("chosen", "rejected")]
    parts = []
    if others:
        items = "".join(f"<li><b>total {number(c['total'])}</b> — {esc(c['text'])}</li>" for c in others)
        parts.append(f"<details><summary>Other candidates ({len(others)})</summary><ul>{items}</ul></details>")
    if record is not None and record["clip_captions"]:
        items = "".join(f"<li>{esc(caption)}</li>" for caption in record["clip_captions"])
        parts.append(f"<details><summary>Clip captions ({len(record['clip_captions'])})</summary><ol>{items}</ol></details>")
    return "".join(parts)


def margin_of(row: dict[str, Any], record: dict[str, Any] | None) -> float | None:
    """The video record's margin, else chosen_score - rejected_score, else None."""
    if record is not None and record["margin"] is not None:
        return record["margin"]
    if row["chosen_score"] is None or row["rejected_score"] is None:
        return None
    return row["chosen_score"] - row["rejected_score"]


def pair_section(index: int, row: dict[str, Any], strip: str, candidates: list[dict[str, Any]] | None, record: dict[str, Any] | None) -> str:
    """One pair's ``<section>``; ``candidates`` is None when there is no audit at all."""
    by_role = {candidate["role"]: candidate for candidate in candidates or []}
    margin = margin_of(row, record)
    video_id = row["video_id"] or row["video"]
    meta = " · ".join(esc(part) for part in (row["video"], row["generator"], row["judge"]) if part)
    return (
        f'<section class="pair" data-index="{index}" data-margin="{"" if margin is None else margin}" data-video="{esc(video_id)}">'
        f'<h2><span>{esc(row["pair_id"])}</span><span class="meta">video {esc(video_id)}</span>'
        f'<span class="meta">margin {number(margin)}</span></h2><div class="meta">{meta}</div>'
        f'<p class="prompt">{esc(row["prompt"])}</p>{strip}<div class="sides">'
        + side("chosen", row["chosen"], row["chosen_score"], by_role.get("chosen"), candidates is not None)
        + side("rejected", row["rejected"], row["rejected_score"], by_role.get("rejected"), candidates is not None)
        + f"</div>{extras(candidates or [], record)}</section>"
    )


def page(title: str, subtitle: str, sections: list[str]) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{CSS}</style></head>'
        f"<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>{SORT_CONTROL}"
        f'<div id="pairs">{"".join(sections)}</div><script>{JS}</script></body></html>\n'
    )


def build_report(
    pairs: str, out: str, limit: int | None = None, thumbnail_count: int = 6, audit: str | None = None, storage: Storage | None = None
) -> ReportSummary:
    """Write the HTML report for the pairs at ``pairs`` (a pairs file/folder or a pair-generation output) to ``out``."""
    storage = storage or Storage()
    if thumbnail_count < 0 or (limit is not None and limit < 1):
        raise BadArgument(f"--thumbnails must be >= 0 and --limit >= 1, got {thumbnail_count} and {limit}")
    source = locate_pairs(pairs, storage)
    rows = read_located_pairs(source, storage)
    total = len(rows)
    rows = rows[:limit] if limit else rows
    audit_rows, video_records = audit_and_videos(source, audit, storage)
    cache: dict[str, list[str] | str] = {}
    sections, unreadable = [], 0
    for index, row in enumerate(rows):
        strip, readable = frame_strip(row["video"], thumbnail_count, storage, cache)
        unreadable += not readable
        candidates = None if audit_rows is None else audit_rows.get(row["video_id"] or "", [])
        record = None if video_records is None else video_records.get(row["video_id"] or "")
        sections.append(pair_section(index, row, strip, candidates, record))
    shown = f"{len(rows)} of {total} pairs" if len(rows) < total else f"{total} pairs"
    if not total and video_records:
        statuses = Counter(record["status"] for record in video_records.values())
        shown += " (videos: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) + ")"
    audit_note = "with judge audit" if audit_rows is not None else "no audit table (captions and scores only)"
    created = datetime.now(UTC).isoformat(timespec="seconds")
    storage.write_text(out, page(f"Preference pairs: {pairs}", f"{shown}, {audit_note}; written {created}", sections))
    return ReportSummary(out=out, pairs=len(rows), unreadable_videos=unreadable, with_audit=audit_rows is not None)
