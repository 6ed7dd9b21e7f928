"""``synpo judge score``: judge existing candidates (again) with any judge and select their pairs.

    synpo judge candidates --pairs-output runs/generated --out runs/candidates.jsonl   # from a pair job's audit
    synpo judge score --input runs/candidates.jsonl --out runs/scores.jsonl [--config jobs/configs/judge.yaml] [key=value ...]

Input: one JSON object per line (what ``synpo judge candidates`` writes), ``{"id": ..., "prompt": ..., "candidates": [...], "clip_captions": [...]}``
(a local path, ``file://`` or ``s3://`` URI). Output: one line per video, in input order, with every
candidate's three scores, the judge's reasoning, each failed call's reason and the selected pair
(:meth:`synpo.judging.VideoJudgement.to_dict`). The config (:class:`synpo.judging.JudgeConfig`) names
the backend (``openai`` or ``rules``), endpoint, model, API-key variable, bounds, retries and weights.

Answers are cached under ``--cache`` (default: beside ``--out``, ``<out stem>.judge-cache``), so a
rerun, or an interrupted run started again, pays only for calls not yet answered. The cache is
written every ``--flush-every`` answers and every ``--flush-every-s`` seconds while the run goes on,
and on SIGTERM or Ctrl-C; a SIGKILL loses at most that much. ``--out`` is checked before any call
is made. More than ``max_failed_fraction`` failed calls (after retries) stop the run with exit 2,
a message naming the endpoint and the first error, and no output file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import pydantic
from tqdm import tqdm

from synpo.config.loader import load_config
from synpo.errors import UserError
from synpo.jsonl import jsonl_objects
from synpo.judging import Judge, JudgeConfig, JudgeInput, JudgementCache, VideoJudgement
from synpo.judging.failures import check_failure_rate
from synpo.storage import ObjectNotFound, Storage, join_uri


class JudgeInputError(UserError, ValueError):
    """A candidates file that cannot be judged; names the file and the line."""


def read_judge_inputs(text: str, source: str) -> list[JudgeInput]:
    """Parse the JSONL rows of ``source``; the first bad row raises :class:`JudgeInputError` naming its line."""
    videos: list[JudgeInput] = []
    first_line_of: dict[str, int] = {}
    for number, row in jsonl_objects(text, source, JudgeInputError):
        if "id" not in row:
            raise JudgeInputError(f"{source}: line {number}: expected an object with id, prompt, candidates, clip_captions")
        fields = {key: value for key, value in row.items() if key != "id"}
        try:
            video = JudgeInput(video_id=str(row["id"]), **fields)
        except pydantic.ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
            raise JudgeInputError(f"{source}: line {number} (id {row['id']!r}): {problems}") from None
        if video.video_id in first_line_of:
            raise JudgeInputError(f"{source}: line {number}: id {video.video_id!r} already used on line {first_line_of[video.video_id]}")
        first_line_of[video.video_id] = number
        videos.append(video)
    if not videos:
        raise JudgeInputError(f"{source} holds no rows")
    return videos


def default_cache_uri(out: str) -> str:
    """``runs/x/scores.jsonl`` -> ``runs/x/scores.judge-cache``."""
    head, _, name = out.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}/{stem}.judge-cache" if head else f"{stem}.judge-cache"


def first_failure(verdict: VideoJudgement) -> str | None:
    return next((reason for candidate in verdict.candidates for reason in candidate.failures.values()), None)


async def judge_file(config: JudgeConfig, videos: list[JudgeInput], cache: JudgementCache, progress: bool = True) -> list[VideoJudgement]:
    """Judge ``videos`` with a progress bar. Too many failed calls stop the run (:class:`JudgeUnavailable`);
    SIGTERM cancels it; either way the cache is flushed with every answer received."""
    calls = failed_calls = 0
    first_error: str | None = None

    def count(verdict: VideoJudgement) -> None:
        nonlocal calls, failed_calls, first_error
        bar.update()
        calls, failed_calls = calls + verdict.calls, failed_calls + verdict.failed_calls
        first_error = first_error or first_failure(verdict)
        check_failure_rate(config, calls, failed_calls, first_error, final=False)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    try:
        with tqdm(total=len(videos), desc="judging", unit="video", disable=not progress) as bar:
            async with Judge(config, cache) as judge:
                verdicts = await judge.judge_videos(videos, on_done=count)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    check_failure_rate(config, calls, failed_calls, first_error, final=True)
    return verdicts


def _score(args: argparse.Namespace) -> int:
    config = load_config(JudgeConfig, args.config, args.overrides)
    storage = Storage()
    storage.check_writable(args.out, "--out", folder=False)
    videos = read_judge_inputs(storage.read_text(args.input), args.input)
    cache_uri = None if config.backend == "rules" else (args.cache or default_cache_uri(args.out))
    if cache_uri is not None:
        storage.check_writable(cache_uri, "--cache", folder=True)
    cache = JudgementCache(cache_uri, storage, flush_every_answers=args.flush_every, flush_every_s=args.flush_every_s)
    try:
        verdicts = asyncio.run(judge_file(config, videos, cache, progress=not args.no_progress))
    except asyncio.CancelledError:  # SIGTERM (judge_file's handler cancelled the run)
        print(f"synpo judge: terminated; {len(cache)} answers are kept in {cache_uri}: rerun to continue", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"synpo judge: interrupted; {len(cache)} answers are kept in {cache_uri}: rerun to continue", file=sys.stderr)
        return 130
    storage.write_text(args.out, "".join(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n" for verdict in verdicts))
    kept = sum(verdict.pair.kept for verdict in verdicts)
    unpaired = sum(verdict.pair.chosen_index is None for verdict in verdicts)
    print(
        f"judged {len(verdicts)} videos with {config.backend} judge {verdicts[0].judge_model!r} (prompts {verdicts[0].prompt_version}): "
        f"{kept} pairs kept, {len(verdicts) - kept - unpaired} below the margin, {unpaired} without a pair; "
        f"{sum(verdict.calls for verdict in verdicts)} calls, {sum(verdict.cache_hits for verdict in verdicts)} cache hits, "
        f"{sum(verdict.failed_calls for verdict in verdicts)} failed; "
        f"{sum(verdict.prompt_tokens for verdict in verdicts)} prompt + {sum(verdict.completion_tokens for verdict in verdicts)} completion tokens, "
        f"~${sum(verdict.cost_usd for verdict in verdicts):.4f}; wrote {args.out}"
    )
    return 0


def _candidates(args: argparse.Namespace) -> int:
    """A pair-generation output's candidates (``audit/``) and clip captions (``videos/``) as ``judge score`` input."""
    from synpo.pairs.pairgen_output import read_audit, read_videos

    storage = Storage()
    storage.check_writable(args.out, "--out", folder=False)
    root = args.pairs_output.rstrip("/")
    try:
        audit, videos = read_audit(join_uri(root, "audit"), storage), read_videos(join_uri(root, "videos"), storage)
    except ObjectNotFound as error:
        raise JudgeInputError(f"--pairs-output = {args.pairs_output!r}: not a pair-generation output with audit/ and videos/ ({error})") from None
    rows = [
        {"id": video_id, "prompt": videos[video_id]["prompt"], "candidates": [row["text"] for row in rows], "clip_captions": videos[video_id]["clip_captions"]}
        for video_id, rows in audit.items()
        if video_id in videos and videos[video_id]["clip_captions"]
    ]
    storage.write_text(args.out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"wrote {len(rows)} videos' candidates ({sum(len(row['candidates']) for row in rows)} captions) to {args.out}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    judge = commands.add_parser("judge", help="LLM (or rules) judging of candidate captions")
    sub = judge.add_subparsers(dest="judge_command", required=True, metavar="WHAT")
    score = sub.add_parser("score", help="score candidates on the three criteria and select preference pairs")
    score.add_argument("--input", required=True, help="JSONL of videos: id, prompt, candidates, clip_captions (path or URI)")
    score.add_argument("--out", required=True, help="output JSONL, one judgement per video (path or URI)")
    score.add_argument("--config", default=None, help="judge YAML config (e.g. jobs/configs/judge.yaml); default: the rules judge")
    score.add_argument("--cache", default=None, help="judge cache folder or URI (default: <out stem>.judge-cache beside --out)")
    score.add_argument("--flush-every", type=int, default=20, help="write the cache every N new answers (default 20)")
    score.add_argument("--flush-every-s", type=float, default=5.0, help="... and every S seconds (default 5)")
    score.add_argument("--no-progress", action="store_true", help="no progress bar")
    score.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. max_concurrency=32 weights.c1=1.5)")
    score.set_defaults(handler=_score)
    candidates = sub.add_parser("candidates", help="write a pair-generation output's candidates as `judge score` input (to judge them again)")
    candidates.add_argument("--pairs-output", required=True, help="the pair job's output folder or URI (it has audit/ and videos/)")
    candidates.add_argument("--out", required=True, help="output JSONL: id, prompt, candidates, clip_captions per video")
    candidates.set_defaults(handler=_candidates)
