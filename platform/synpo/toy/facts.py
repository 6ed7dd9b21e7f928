"""Facts of the toy world, read from a scene and from a caption, and a caption's fact accuracy.

A caption of a toy video states facts about the video, each with a kind:

    shape         ("shape", circle)                       a circle is in the video
    colour        ("colour", circle, red)                 its colour when it is first seen
    size          ("size", circle, large)
    motion        ("motion", circle, left)                a direction, or "still"
    appearance    ("appearance", circle, 6)               when it appears, in whole seconds (0: from the start)
    colour_change ("colour_change", circle, red, blue)    it turns from red to blue
    change_time   ("change_time", circle, 9)              when, in whole seconds
    background    ("background", striped dark grey)       pattern and colour
    duration      ("duration", 18)                        how long the video lasts, in whole seconds

(Shapes are distinct within a scene, so the shape names the object.) :func:`scene_facts` reads the
facts from a :class:`~synpo.toy.world.Scene`; :func:`caption_facts` reads them from text written in
the toy world's grammar (:func:`~synpo.toy.world.describe_scene`), sentence by sentence and strictly:
a sentence it cannot read states nothing and is counted in ``unread_sentences``, so a caption is
never credited with a fact it did not state plainly. Objects are read with any words for size,
colour and shape, so an invented object ("a large pink star") is read as false facts.

:func:`fact_accuracy` compares a caption's facts with the truth. Per kind: the true stated facts
(``correct``), the false ones (hallucinations) and the true facts not stated (``missed``); fact
precision = correct / stated, fact recall = correct / true.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from synpo.toy.world import BACKGROUNDS, DIRECTIONS, PATTERNS, Scene

Fact = tuple[str, ...]
KINDS = ("shape", "colour", "size", "motion", "appearance", "colour_change", "change_time", "background", "duration")

# An object's size, colour and shape are read as any word, so "a large pink star" is read, and its
# facts (no star, nothing pink in this world) count as hallucinations rather than going unread.
_WORD = "[a-z]+"
_COLOUR, _SHAPE, _SIZE = _WORD, _WORD, _WORD
_BACKGROUND = "|".join(sorted(BACKGROUNDS, key=len, reverse=True))
_PATTERN = "|".join(PATTERNS)
_DIRECTION = "|".join(direction for direction in DIRECTIONS if direction != "still")
_OBJECT = rf"an? (?P<size>{_SIZE}) (?P<colour>{_COLOUR}) (?P<shape>{_SHAPE})"
_PLACE = r"the [a-z ]+?"  # "the top left", "the center": where, not a fact of its own
_MOTION = rf"(?:moves (?P<direction>{_DIRECTION}), from {_PLACE} to {_PLACE}|stays still near {_PLACE})"

OPENING = re.compile(rf"The video shows (?P<objects>.+) on an? (?P<pattern>{_PATTERN}) (?P<background>{_BACKGROUND}) background")
OBJECT = re.compile(rf"^{_OBJECT}$")
MOVES = re.compile(rf"^The (?P<shape>{_SHAPE}) {_MOTION}$")
ARRIVES = re.compile(rf"^After (?P<time>\d+) seconds?, {_OBJECT} appears and {_MOTION}$")
CHANGES = re.compile(rf"^At about (?P<time>\d+) seconds?, the (?P<shape>{_SHAPE}) changes colour from (?P<old>{_COLOUR}) to (?P<new>{_COLOUR})$")
LASTS = re.compile(r"^The video lasts (?P<time>\d+) seconds?$")


def scene_facts(scene: Scene) -> set[Fact]:
    """Every fact of ``scene`` (times in whole seconds, rounded as the ground-truth caption rounds them)."""
    facts: set[Fact] = {("background", f"{scene.pattern} {scene.background}"), ("duration", f"{scene.duration_s:.0f}")}
    for shape in scene.shapes:
        name = shape.shape
        facts |= {("shape", name), ("colour", name, shape.colour), ("size", name, shape.size), ("motion", name, shape.direction)}
        facts.add(("appearance", name, f"{shape.appear_s:.0f}"))
        if shape.change_s is not None and shape.new_colour:
            facts |= {("colour_change", name, shape.colour, shape.new_colour), ("change_time", name, f"{shape.change_s:.0f}")}
    return facts


def _object_facts(match: re.Match, appears: str) -> set[Fact]:
    name = match["shape"]
    return {("shape", name), ("colour", name, match["colour"]), ("size", name, match["size"]), ("appearance", name, appears)}


def _motion_fact(match: re.Match) -> Fact:
    return ("motion", match["shape"], match["direction"] or "still")


def _opening_facts(match: re.Match) -> set[Fact] | None:
    """Facts of "The video shows A and B on a ... background", or None if an object phrase is unreadable."""
    facts: set[Fact] = {("background", f"{match['pattern']} {match['background']}")}
    for phrase in match["objects"].split(" and "):
        found = OBJECT.match(phrase.strip())
        if found is None:
            return None
        facts |= _object_facts(found, "0")
    return facts


@dataclass
class CaptionFacts:
    facts: set[Fact] = field(default_factory=set)
    unread_sentences: list[str] = field(default_factory=list)


def caption_facts(text: str) -> CaptionFacts:
    """The facts ``text`` states plainly in the toy world's grammar; other sentences are listed as unread."""
    result = CaptionFacts()
    for sentence in (part.strip() for part in re.split(r"(?<=\.)\s+", text.strip())):
        body = sentence.removesuffix(".").strip()
        if not body:
            continue
        facts: set[Fact] | None = None
        if (match := OPENING.fullmatch(body)) is not None:
            facts = _opening_facts(match)
        elif (match := MOVES.match(body)) is not None:
            facts = {_motion_fact(match)}
        elif (match := ARRIVES.match(body)) is not None:
            facts = _object_facts(match, match["time"]) | {_motion_fact(match)}
        elif (match := CHANGES.match(body)) is not None:
            facts = {("colour_change", match["shape"], match["old"], match["new"]), ("change_time", match["shape"], match["time"])}
        elif (match := LASTS.match(body)) is not None:
            facts = {("duration", match["time"])}
        if facts is None:
            result.unread_sentences.append(sentence)
        else:
            result.facts |= facts
    return result


@dataclass(frozen=True)
class FactScore:
    """One caption against the truth, per fact kind."""

    correct: Counter
    hallucinated: Counter
    missed: Counter
    unread_sentences: int

    def precision(self, kind: str | None = None) -> float | None:
        correct, stated = self._count(self.correct, kind), self._count(self.correct, kind) + self._count(self.hallucinated, kind)
        return correct / stated if stated else None

    def recall(self, kind: str | None = None) -> float | None:
        correct, true = self._count(self.correct, kind), self._count(self.correct, kind) + self._count(self.missed, kind)
        return correct / true if true else None

    @staticmethod
    def _count(counter: Counter, kind: str | None) -> int:
        return sum(counter.values()) if kind is None else counter[kind]


def fact_accuracy(caption: str, truth: set[Fact]) -> FactScore:
    """Which of ``caption``'s facts are true, which are hallucinated, which true facts it misses."""
    read = caption_facts(caption)
    return FactScore(
        correct=Counter(fact[0] for fact in read.facts & truth),
        hallucinated=Counter(fact[0] for fact in read.facts - truth),
        missed=Counter(fact[0] for fact in truth - read.facts),
        unread_sentences=len(read.unread_sentences),
    )
