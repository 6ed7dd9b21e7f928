"""The offline judge (``judge.backend: rules``): the three criteria approximated by word statistics.

A cheap, deterministic stand-in for an LLM judge — no network, no model — for the embedded demo,
tests, and dry runs. It only sees words, so it cannot tell a paraphrase from a contradiction; use
an LLM judge for real pair data. Each criterion lands on the LLM's integer range:

- **C1 factuality (0-5)**: the candidate's *content words* (lower-cased, light suffix stemming,
  stopwords dropped: objects, colours, attributes, actions, directions, places) and *content-word
  pairs* within a clause (``red circle``, ``move left``: attribute and action bindings) are looked
  up in the clip captions. ``support`` = mean of the two shares found;
  ``C1 = round(5 * clamp(2 * support - 1, 0, 1))``: full support scores 5, half or less scores 0
  (a caption's function words and its paraphrases keep ``support`` well above 0 even when it is
  wrong, so the plain ``5 * support`` crowded every caption into 3-4).
- **C2 fidelity/fluency/objectivity (0-5)**: start at 5; -2 for image wording ("this image", "the
  picture", "photo"); -1 per subjective term ("beautiful", "I think", ...), at most -2; -1 or -2
  when 15% / 30% of the word trigrams are repeats; -2 under 8 words, -1 under 20 words when the
  prompt asks for detail; -1 when the prompt asks about time or order and the caption has no
  temporal word. Clamped to 0..5.
- **C3 self-consistency (0-3)**: mean Jaccard similarity of the candidate's content words and pairs
  to each other candidate's; ``C3 = round(3 * mean)`` (3 for a lone candidate).

Measured against the toy world's ground truth in :mod:`synpo.toy.judge_check` (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter

RULES_VERSION = "rules-1"

STOPWORDS = frozenset(
    """a an the and or but nor if then than so of in on at to from by with without for as into onto over under
    is are was were be been being am has have had having do does did it its it's this that these those there
    here which who whom whose what when where while why how all any both each few more most other some such
    no not only own same too very can will just should would could may might must shall also again once
    about between through during before after until out off further he she they them
    his her their we you your our i me my us one ones another around near along across toward towards
    video clip clips scene scenes shows show shown showing depicts depict display displays displayed see seen
    visible appears appear appearing there's while whilst throughout entire whole""".split()
)
TEMPORAL_WORDS = frozenset(
    """then after before while when first finally later next during until meanwhile eventually begins begin starts
    start ends end second seconds minute minutes afterwards subsequently once moment""".split()
)
SUBJECTIVE_TERMS = (
    "beautiful", "amazing", "stunning", "gorgeous", "lovely", "wonderful", "awesome", "breathtaking", "ugly", "boring",
    "interesting", "fascinating", "delightful", "pleasant", "cute", "nice", "fantastic", "terrible", "horrible",
    "perfect", "impressive", "magnificent", "charming", "captivating", "mesmerizing", "mesmerising",
    "i think", "i believe", "i feel", "in my opinion", "it seems to me", "i love", "i like",
)
_SUBJECTIVE = re.compile(r"\b(" + "|".join(re.escape(term) for term in SUBJECTIVE_TERMS) + r")\b", re.IGNORECASE)
_IMAGE_WORDING = re.compile(r"\b(?:this|the|that|an?)\s+(?:image|picture|photo|photograph|snapshot|still image)\b|\bphotograph\b", re.IGNORECASE)
_CLAUSES = re.compile(r"[.!?;:,\n]+")
_WORDS = re.compile(r"[a-z]+")
_ASKS_DETAIL = re.compile(r"\bdetail", re.IGNORECASE)
_ASKS_TIME = re.compile(r"\b(?:over time|order|sequence|temporal|happens|events?|timeline)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper: moves/moving/moved/move -> mov, circles -> circl, cities -> city."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def content_clauses(text: str) -> list[list[str]]:
    """Per clause (split at punctuation), the stems of its content words, in order."""
    clauses = []
    for clause in _CLAUSES.split(text.lower()):
        stems = [stem(word) for word in _WORDS.findall(clause) if word not in STOPWORDS and len(word) > 1]
        if stems:
            clauses.append(stems)
    return clauses


@functools.lru_cache(maxsize=4096)  # the clip captions are looked up once per candidate
def content_terms(text: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Content-word stems and adjacent content-word pairs within a clause."""
    clauses = content_clauses(text)
    words = frozenset(word for clause in clauses for word in clause)
    pairs = frozenset((clause[index], clause[index + 1]) for clause in clauses for index in range(len(clause) - 1))
    return words, pairs


def _round(value: float) -> int:
    return math.floor(value + 0.5)


def score_factuality(candidate: str, clip_captions: list[str]) -> tuple[int, str]:
    """C1 (0-5): how much of the candidate's content the clip captions back up."""
    words, pairs = content_terms(candidate)
    if not words:
        return 0, "the caption has no content words"
    reference_words, reference_pairs = content_terms("\n".join(clip_captions))
    word_share = len(words & reference_words) / len(words)
    pair_share = len(pairs & reference_pairs) / len(pairs) if pairs else word_share
    support = (word_share + pair_share) / 2
    missing = words - reference_words
    unsupported = sorted({word for word in _WORDS.findall(candidate.lower()) if stem(word) in missing})
    reasoning = (
        f"{word_share:.0%} of content words and {pair_share:.0%} of content-word pairs appear in the clip captions; "
        f"not found: {', '.join(unsupported[:8]) or 'none'}{' ...' if len(unsupported) > 8 else ''}"
    )
    return _round(5 * min(1.0, max(0.0, 2 * support - 1))), reasoning


def score_fidelity(prompt: str, candidate: str) -> tuple[int, str]:
    """C2 (0-5): video wording, objectivity, no repetition, and fit to the prompt."""
    words = _WORDS.findall(candidate.lower())
    score, notes = 5, []
    if _IMAGE_WORDING.search(candidate):
        score -= 2
        notes.append(f"image wording ({_IMAGE_WORDING.search(candidate).group(0)!r})")
    subjective = sorted({match.lower() for match in _SUBJECTIVE.findall(candidate)})
    if subjective:
        score -= min(2, len(subjective))
        notes.append(f"subjective terms ({', '.join(subjective)})")
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    repeated_share = sum(count - 1 for count in Counter(trigrams).values()) / len(trigrams) if trigrams else 0.0
    if repeated_share >= 0.15:
        score -= 2 if repeated_share >= 0.30 else 1
        notes.append(f"{repeated_share:.0%} of word trigrams are repeats")
    if len(words) < 8:
        score -= 2
        notes.append(f"too short ({len(words)} words)")
    elif len(words) < 20 and _ASKS_DETAIL.search(prompt):
        score -= 1
        notes.append(f"short for a detailed description ({len(words)} words)")
    if _ASKS_TIME.search(prompt) and not TEMPORAL_WORDS.intersection(words):
        score -= 1
        notes.append("the prompt asks what happens over time, the caption has no temporal word")
    score = max(0, min(5, score))
    return score, "; ".join(notes) if notes else "no problems found"


def _jaccard(first: set, second: set) -> float:
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def score_consistency(candidates: list[str]) -> tuple[list[int], str]:
    """C3 (0-3) for every candidate: mean Jaccard similarity of content words and pairs to the others."""
    terms = [words | pairs for words, pairs in map(content_terms, candidates)]
    if len(candidates) < 2:
        return [3] * len(candidates), "a single caption has nothing to disagree with"
    means = [
        sum(_jaccard(terms[index], terms[other]) for other in range(len(terms)) if other != index) / (len(terms) - 1)
        for index in range(len(terms))
    ]
    scores = [_round(3 * mean) for mean in means]
    reasoning = "mean similarity to the other captions: " + ", ".join(
        f"caption {number} {mean:.2f}" for number, mean in enumerate(means, 1)
    )
    return scores, reasoning
