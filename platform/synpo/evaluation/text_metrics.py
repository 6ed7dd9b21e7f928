"""Reference-based caption metrics with ``pycocoevalcap``: CIDEr, METEOR, BLEU-4, ROUGE-L.

The toolkit behind the MSR-VTT / VATEX numbers papers report (SynPO's included). Captions and
references are tokenized by its PTB tokenizer (Stanford CoreNLP) and METEOR runs METEOR 1.5: both
are Java programs, so a Java runtime must be on ``PATH`` (the cluster image installs one).

    scores = caption_metrics({"v1": "a red circle moves left"}, {"v1": ["A red circle moves to the left."]})
    scores.corpus["CIDEr"], scores.per_video["v1"]["BLEU-4"]

Corpus scores are the toolkit's (BLEU-4 over the corpus with one brevity penalty, CIDEr with
document frequencies from these references); per-video scores are each video's own. CIDEr's IDF
comes from the eval set's references, so CIDEr is comparable only between runs on the same set.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from synpo.errors import UserError

METRICS = ("CIDEr", "METEOR", "BLEU-4", "ROUGE-L")


class MetricError(UserError):
    """The metrics cannot be computed: no Java runtime, a video without references, no captions."""


@dataclass(frozen=True)
class CaptionScores:
    corpus: dict[str, float]  # metric -> corpus score
    per_video: dict[str, dict[str, float]]  # video id -> metric -> score


def _check_inputs(captions: dict[str, str], references: dict[str, list[str]]) -> None:
    if not captions:
        raise MetricError("no captions to score")
    unreferenced = sorted(video for video in captions if not [text for text in references.get(video, []) if text.strip()])
    if unreferenced:
        raise MetricError(f"{len(unreferenced)} video(s) have no reference caption, e.g. {unreferenced[:3]}")
    if shutil.which("java") is None:
        raise MetricError("METEOR and the PTB tokenizer need a Java runtime on PATH (e.g. apt-get install default-jre-headless)")


def caption_metrics(captions: dict[str, str], references: dict[str, list[str]], meteor: bool = True) -> CaptionScores:
    """Score ``captions`` (video id -> caption) against ``references`` (video id -> one or more captions)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _check_inputs(captions, references)
    videos = sorted(captions)
    tokenizer = PTBTokenizer()
    hypotheses = tokenizer.tokenize({video: [{"caption": captions[video]}] for video in videos})
    truths = tokenizer.tokenize({video: [{"caption": text} for text in references[video] if text.strip()] for video in videos})
    corpus: dict[str, float] = {}
    per_video: dict[str, dict[str, float]] = {video: {} for video in videos}

    def record(name: str, corpus_score: float, video_scores) -> None:
        corpus[name] = float(corpus_score)
        for video, score in zip(videos, video_scores, strict=True):
            per_video[video][name] = float(score)

    bleu, bleu_per_video = Bleu(4).compute_score(truths, hypotheses, verbose=0)
    record("BLEU-4", bleu[3], bleu_per_video[3])
    record("ROUGE-L", *Rouge().compute_score(truths, hypotheses))
    record("CIDEr", *Cider().compute_score(truths, hypotheses))
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        record("METEOR", *Meteor().compute_score(truths, hypotheses))  # its java process ends with the scorer (__del__)
    return CaptionScores(corpus=corpus, per_video=per_video)
