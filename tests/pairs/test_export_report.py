"""``synpo pairs export`` and ``synpo pairs report`` on a hand-built pair-generation output with real toy videos."""

import html
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpo.cli.main import main
from synpo.pairgen.write_stage import AUDIT, VIDEOS
from synpo.pairs import read_pairs, write_pairs
from synpo.pairs.export import common_folder, export_pairs, llamafactory_dataset_info, rewrite_video_root
from synpo.pairs.pairgen_output import read_any_pairs
from synpo.pairs.report import build_report
from synpo.pairs.schema import to_table
from synpo.storage import Storage

NASTY = 'A <script>alert("x")</script> circle & a square move left.'
JPEG = "data:image/jpeg;base64,"


def _write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _pairgen_rows(toy_video_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Three paired videos: pairs rows, audit rows (3 candidates each) and video records."""
    manifest = [json.loads(line) for line in (toy_video_dir / "manifest.jsonl").read_text().splitlines()]
    pairs, audit, videos = [], [], []
    for index, entry in enumerate(manifest):
        chosen = NASTY if index == 0 else f"{entry['caption']} (chosen {index})"
        rejected = f"A green triangle jumps up. (rejected {index})"
        texts = {"chosen": chosen, "rejected": rejected, "": f"An unused candidate {index}."}
        scores = {"chosen": (5, 4, 5, 14.0 - index), "rejected": (2, 3, 1, 6.0), "": (3, 3, 3, 9.0)}
        margin = [8.0, 0.5, 3.25][index]
        pairs.append(
            {
                "pair_id": entry["id"],
                "video_id": entry["id"],
                "video": entry["video"],
                "prompt": entry["prompt"],
                "chosen": chosen,
                "rejected": rejected,
                "chosen_score": scores["chosen"][3],
                "rejected_score": scores["rejected"][3],
                "source": "pipeline",
                "generator": "tiny-vlm",
                "judge": "rules:toy@v1",
            }
        )
        for candidate, role in enumerate(("", "chosen", "rejected")):
            c1, c2, c3, total = scores[role]
            audit.append(
                {
                    "video_id": entry["id"],
                    "video": entry["video"],
                    "candidate": candidate,
                    "role": role,
                    "text": texts[role],
                    "first_pass": texts[role],
                    "finish_reason": "stop",
                    "generated_tokens": 20,
                    "c1": c1,
                    "c2": c2,
                    "c3": c3,
                    "total": total,
                    "reasoning": json.dumps({"c1": f"objects {role or 'other'} {index} <b>ok</b>", "c2": "actions fine"}),
                    "judge_failures": json.dumps({"c3": "timeout"} if role == "rejected" else {}),
                    "judge": "rules:toy@v1",
                }
            )
        clips = [f"clip {clip} of {entry['id']} & more" for clip in range(2)]
        videos.append({"video_id": entry["id"], "video": entry["video"], "prompt": entry["prompt"], "status": "paired", "clip_captions": json.dumps(clips), "margin": margin})
    return pairs, audit, videos


@pytest.fixture
def pairgen_output(tmp_path, toy_video_dir) -> Path:
    """``<tmp>/run``: pairs in two parts, audit and videos tables, as the pair-generation job lays them out."""
    pairs, audit, videos = _pairgen_rows(toy_video_dir)
    output = tmp_path / "run"
    _write_parquet(to_table(pairs[:2]), output / "pairs" / "part-a.parquet")
    _write_parquet(to_table(pairs[2:]), output / "pairs" / "part-b.parquet")
    _write_parquet(pa.Table.from_pylist(audit, schema=AUDIT), output / "audit" / "part-a.parquet")
    _write_parquet(pa.Table.from_pylist(videos, schema=VIDEOS), output / "videos" / "part-a.parquet")
    return output


def test_llamafactory_export_round_trips_through_the_reader(tmp_path, pairgen_output):
    out = tmp_path / "export" / "synpo_pairs.json"
    assert export_pairs(str(pairgen_output), str(out), "llamafactory") == 3
    records = json.loads(out.read_text())
    assert records[0]["conversations"] == [{"from": "human", "value": "<video>" + read_pairs(str(pairgen_output / "pairs"))[0]["prompt"]}]
    assert set(records[0]) == {"conversations", "chosen", "rejected", "videos"} and records[0]["chosen"]["from"] == "gpt"
    original = read_pairs(str(pairgen_output / "pairs"))
    back = read_pairs(str(out))
    fields = ("prompt", "chosen", "rejected", "video")
    assert [{name: row[name] for name in fields} for row in back] == [{name: row[name] for name in fields} for row in original]
    entry = llamafactory_dataset_info("synpo_pairs", "synpo_pairs.json")["synpo_pairs"]
    assert entry["formatting"] == "sharegpt" and entry["ranking"] is True
    assert entry["columns"] == {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "videos": "videos"}


def test_trl_export_is_conversational_jsonl_with_videos(tmp_path, pairgen_output):
    out = tmp_path / "pairs.jsonl"
    export_pairs(str(pairgen_output), str(out), "trl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    original = read_pairs(str(pairgen_output / "pairs"))
    assert len(lines) == 3
    for line, row in zip(lines, original, strict=True):
        assert set(line) == {"prompt", "chosen", "rejected", "videos"}
        assert line["prompt"] == [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": row["prompt"]}]}]
        assert line["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": row["chosen"]}]}]
        assert line["rejected"] == [{"role": "assistant", "content": [{"type": "text", "text": row["rejected"]}]}]
        assert line["videos"] == [row["video"]]


def test_video_root_rewrites_the_common_folder_or_a_given_prefix(tmp_path, pairgen_output, toy_video_dir):
    rows = [{"pair_id": "a", "video": "s3://bucket/videos/x/1.mp4"}, {"pair_id": "b", "video": "s3://bucket/videos/y/2.mp4"}]
    assert common_folder([row["video"] for row in rows]) == "s3://bucket/videos/"
    assert [row["video"] for row in rewrite_video_root(rows, "/data/videos")] == ["/data/videos/x/1.mp4", "/data/videos/y/2.mp4"]
    moved = rewrite_video_root(rows, "/data/", video_prefix="s3://bucket")
    assert [row["video"] for row in moved] == ["/data/videos/x/1.mp4", "/data/videos/y/2.mp4"]
    with pytest.raises(ValueError, match="pair 'a': video 's3://bucket/videos/x/1.mp4' is not under --video-prefix"):
        rewrite_video_root(rows, "/data", video_prefix="s3://other/")
    out = tmp_path / "moved.jsonl"
    export_pairs(str(pairgen_output), str(out), "trl", video_root="/data/videos/")
    videos = [json.loads(line)["videos"][0] for line in out.read_text().splitlines()]
    assert videos == [f"/data/videos/toy-0007-{index:05d}.mp4" for index in range(3)]


def test_report_of_a_pairgen_output_shows_audit_thumbnails_and_sort(tmp_path, pairgen_output):
    out = tmp_path / "report.html"
    summary = build_report(str(pairgen_output), str(out), thumbnail_count=3)
    page = out.read_text()
    assert (summary.pairs, summary.unreadable_videos, summary.with_audit) == (3, 0, True)
    for row in read_pairs(str(pairgen_output / "pairs")):
        assert html.escape(row["chosen"]) in page and html.escape(row["rejected"]) in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; circle &amp; a square" in page
    assert page.count(JPEG) == 3 * 3
    assert "<td>14</td>" in page and "objects chosen 0 &lt;b&gt;ok&lt;/b&gt;" in page and "judge failures: c3: timeout" in page
    assert "Other candidates (1)" in page and "An unused candidate 2." in page
    assert "clip 1 of toy-0007-00002 &amp; more" in page
    assert page.count('class="pair"') == 3 and 'data-margin="0.5"' in page and 'data-margin="8.0"' in page
    assert '<select id="sort">' in page and 'value="margin-desc"' in page and 'value="video"' in page and "sortPairs" in page
    assert "http://" not in page and "https://" not in page


def test_report_takes_audit_separately_and_notes_missing_videos(tmp_path, pairgen_output, toy_video_dir):
    with_audit = tmp_path / "audit.html"
    build_report(str(pairgen_output / "pairs"), str(with_audit), thumbnail_count=0, audit=str(pairgen_output / "audit"))
    assert "<td>14</td>" in with_audit.read_text() and with_audit.read_text().count(JPEG) == 0
    real = read_pairs(str(pairgen_output / "pairs"))[1]
    rows = [{**real, "pair_id": "real"}, {**real, "pair_id": "gone", "video": str(tmp_path / "gone.mp4"), "chosen_score": 7.5}]
    plain = tmp_path / "plain.jsonl"
    write_pairs(rows, str(plain))
    out = tmp_path / "plain.html"
    summary = build_report(str(plain), str(out), thumbnail_count=2)
    page = out.read_text()
    assert (summary.pairs, summary.unreadable_videos, summary.with_audit) == (2, 1, False)
    assert page.count(JPEG) == 2 and page.count("Video could not be read") == 1 and "gone.mp4: no such file" in page
    assert 'class="criteria"' not in page and "score 7.5" in page and "no audit table" in page


def test_cli_export_and_report(tmp_path, pairgen_output, capsys):
    out = tmp_path / "lf" / "pairs.json"
    assert main(["pairs", "export", "--pairs", str(pairgen_output), "--out", str(out), "--format", "llamafactory"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 pairs in llamafactory format" in printed and '"ranking": true' in printed and '"videos": "videos"' in printed
    report = tmp_path / "report.html"
    assert main(["pairs", "report", "--pairs", str(pairgen_output), "--out", str(report), "--limit", "2", "--thumbnails", "1"]) == 0
    assert f"wrote {report}: 2 pairs with judge audit" in capsys.readouterr().out
    assert report.read_text().count(JPEG) == 2 and "2 of 3 pairs" in report.read_text()
    assert main(["pairs", "export", "--pairs", str(pairgen_output), "--out", str(tmp_path / "x.txt"), "--format", "trl"]) == 2
    assert "a trl export is a .jsonl file" in capsys.readouterr().err


def test_export_from_and_to_s3(s3_storage, pairgen_output):
    storage, bucket = s3_storage
    for path in sorted(pairgen_output.rglob("*.parquet")):
        storage.write_bytes(f"s3://{bucket}/run-1/{path.relative_to(pairgen_output).as_posix()}", path.read_bytes())
    out = f"s3://{bucket}/exports/pairs.json"
    assert export_pairs(f"s3://{bucket}/run-1", out, "llamafactory", video_root="s3://media/videos", storage=storage) == 3
    back = read_pairs(out, storage)
    assert [row["video"] for row in back] == [f"s3://media/videos/toy-0007-{index:05d}.mp4" for index in range(3)]
    assert back[0]["chosen"] == NASTY
    assert pq.read_table(io.BytesIO(storage.read_bytes(f"s3://{bucket}/run-1/audit/part-a.parquet"))).num_rows == 9


@pytest.fixture
def unpaired_output(tmp_path, toy_video_dir) -> Path:
    """A pair-generation output whose every video was filtered by margin: audit, videos and summary.json, no ``pairs/``."""
    _, audit, videos = _pairgen_rows(toy_video_dir)
    output = tmp_path / "unpaired"
    _write_parquet(pa.Table.from_pylist(audit, schema=AUDIT), output / "audit" / "part-a.parquet")
    filtered = [{**video, "status": "filtered"} for video in videos[:2]] + [{**videos[2], "status": "failed"}]
    _write_parquet(pa.Table.from_pylist(filtered, schema=VIDEOS), output / "videos" / "part-a.parquet")
    (output / "summary.json").write_text(json.dumps({"paired": 0, "totals": {"filtered": 2, "failed": 1}}))
    return output


@pytest.mark.parametrize("given", ["output", "output/pairs"])
def test_an_output_with_no_pairs_is_0_pairs_everywhere_not_its_audit_rows(tmp_path, unpaired_output, given, capsys):
    uri = str(unpaired_output if given == "output" else unpaired_output / "pairs")
    assert read_any_pairs(uri, Storage()) == []
    assert main(["pairs", "report", "--pairs", uri, "--out", str(tmp_path / "report.html")]) == 0
    assert "0 pairs with judge audit" in capsys.readouterr().out
    assert "0 pairs (videos: 1 failed, 2 filtered)" in (tmp_path / "report.html").read_text()
    assert main(["pairs", "export", "--pairs", uri, "--out", str(tmp_path / "pairs.jsonl"), "--format", "trl"]) == 0
    assert "wrote 0 pairs" in capsys.readouterr().out and (tmp_path / "pairs.jsonl").read_text() == ""


def test_a_folder_of_pair_parts_named_pairs_is_still_read_as_pairs(tmp_path, pairgen_output):
    (pairgen_output / "summary.json").write_text("{}")
    assert [row["pair_id"] for row in read_any_pairs(str(pairgen_output / "pairs"), Storage())] == [
        row["pair_id"] for row in read_pairs(str(pairgen_output / "pairs"))
    ]
    assert len(read_any_pairs(str(pairgen_output), Storage())) == 3


def test_a_pair_jobs_candidates_are_written_as_judge_input_and_judged_again(tmp_path, pairgen_output, capsys):
    candidates = tmp_path / "candidates.jsonl"
    assert main(["judge", "candidates", "--pairs-output", str(pairgen_output), "--out", str(candidates)]) == 0
    assert "wrote 3 videos' candidates (9 captions)" in capsys.readouterr().out
    rows = [json.loads(line) for line in candidates.read_text().splitlines()]
    first = rows[0]
    assert set(first) == {"id", "prompt", "candidates", "clip_captions"}
    assert first["candidates"] == ["An unused candidate 0.", NASTY, "A green triangle jumps up. (rejected 0)"]  # candidate order
    assert first["clip_captions"] == [f"clip {clip} of {first['id']} & more" for clip in range(2)]
    scores = tmp_path / "scores.jsonl"
    config = str(Path(__file__).resolve().parents[2] / "jobs/configs/judge_rules.yaml")
    assert main(["judge", "score", "--input", str(candidates), "--out", str(scores), "--config", config, "--no-progress"]) == 0
    assert [json.loads(line)["video_id"] for line in scores.read_text().splitlines()] == [row["id"] for row in rows]
    assert main(["judge", "candidates", "--pairs-output", str(tmp_path / "nothing"), "--out", str(tmp_path / "c.jsonl")]) == 2
    assert "not a pair-generation output with audit/ and videos/" in capsys.readouterr().err
