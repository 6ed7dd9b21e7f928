import json
import os
import subprocess
import sys
from pathlib import Path

from synpo.cli.main import main


def test_toy_videos_to_s3(s3_storage, monkeypatch):
    storage, bucket = s3_storage
    monkeypatch.setenv("AWS_ENDPOINT_URL", storage.config.resolved().endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert main(["toy", "videos", "--out", f"s3://{bucket}/toy", "--count", "2", "--seed", "1"]) == 0
    listed = storage.list(f"s3://{bucket}/toy")
    assert [uri.rsplit("/", 1)[1] for uri in listed] == [
        "manifest.jsonl", "toy-0001-00000.json", "toy-0001-00000.mp4", "toy-0001-00001.json", "toy-0001-00001.mp4"
    ]
    rows = [json.loads(line) for line in storage.read_text(f"s3://{bucket}/toy/manifest.jsonl").splitlines()]
    assert rows[1]["video"] == f"s3://{bucket}/toy/toy-0001-00001.mp4"


def test_config_show_prints_defaults_and_help(capsys):
    assert main(["config", "show", "caption", "sampling.top_k=5"]) == 0
    out = capsys.readouterr().out
    assert "# keep the k most likely tokens (0 = off) (default: 32)\n  top_k: 5" in out


def test_config_errors_exit_2_with_the_field_named(capsys):
    assert main(["config", "show", "caption", "video.num_frames=0"]) == 2
    assert "video.num_frames = 0: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_caption_reports_a_bad_video_clearly(tmp_path, tiny_vlm, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    assert main(["caption", "--model", str(tiny_vlm), "--video", str(bad)]) == 2
    assert f"{bad}: not a readable video container" in capsys.readouterr().err


def test_caption_reports_a_missing_model(tmp_path, toy_video_dir, capsys):
    video = toy_video_dir / "toy-0007-00000.mp4"
    assert main(["caption", "--model", str(tmp_path / "nomodel"), "--video", str(video)]) == 2
    assert f"engine.model = {str(tmp_path / 'nomodel')!r}: no model folder there" in capsys.readouterr().err


def test_console_script_captions_a_video(tiny_vlm, toy_video_dir):
    script = Path(sys.executable).parent / "synpo"
    result = subprocess.run(
        [str(script), "caption", "--model", str(tiny_vlm), "--video", str(toy_video_dir / "toy-0007-00002.mp4"),
         "sampling.max_new_tokens=8"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # one caption line from the tiny model


def test_toy_pairs_command_writes_valid_pairs(toy_video_dir, tmp_path, capsys):
    from synpo.pairs import read_pairs

    out = tmp_path / "pairs.jsonl"
    assert main(["toy", "pairs", "--videos", str(toy_video_dir), "--out", str(out)]) == 0
    rows = read_pairs(str(out))
    assert len(rows) == 3 and rows[0]["video"].endswith("toy-0007-00000.mp4")


def test_config_show_takes_a_file_and_overrides_after_it(capsys):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for name in ("train.yaml", "train_local.yaml"):
        assert main(["config", "show", "train", "--config", str(repo / "jobs/configs" / name), "pairs=s3://b/p/", "objective=dpo"]) == 0
        out = capsys.readouterr().out
        assert "objective: dpo" in out and "pairs: s3://b/p/" in out


def test_config_show_lays_a_model_preset_over_the_file(capsys):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    preset = str(repo / "jobs/configs/models/qwen3-vl-8b.yaml")
    assert main(["config", "show", "pairs", "--config", str(repo / "jobs/configs/pairs.yaml"), "--preset", preset, "engine.vllm.max_model_len=4096"]) == 0
    out = capsys.readouterr().out
    assert "model: /mnt/models/Qwen3-VL-8B-Instruct" in out and "max_model_len: 4096" in out and "model: qwen-plus" in out
    assert main(["config", "show", "serve", "--preset", preset]) == 2  # a preset has no serve section
    assert "has no 'serve' section" in capsys.readouterr().err


def test_caption_json_with_cd_and_retrospection(tiny_vlm, toy_video_dir, capsys):
    import json

    video = str(toy_video_dir / "toy-0007-00000.mp4")
    argv = ["caption", "--model", str(tiny_vlm), "--video", video, "--mode", "both", "--n", "3", "--temperature", "0.9",
            "--seed", "4", "--max-new-tokens", "6", "--cd-alpha", "0.5", "--cd-cutoff", "0.1", "--top-k", "20", "--top-p", "0.9",
            "--json", "video.num_frames=9", "video.max_side=128"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "both" and result["frames_seen"] == {"full": 9, "sparse": 3}
    assert len(result["candidates"]) == 3
    for candidate in result["candidates"]:
        assert candidate["first_pass"] is not None and len(candidate["logprobs"]) == len(candidate["token_ids"])
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == result  # seeded: the same candidates again


def test_caption_refuses_cd_on_vllm_before_loading_anything(toy_video_dir, capsys):
    video = str(toy_video_dir / "toy-0007-00000.mp4")
    assert main(["caption", "--engine", "vllm", "--mode", "contrastive", "--model", "/nowhere", "--video", video]) == 2
    assert "use engine=hf" in capsys.readouterr().err
