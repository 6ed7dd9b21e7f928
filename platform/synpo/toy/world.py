"""The toy video world: scenes of coloured shapes that move, appear and change colour.

A :class:`Scene` is drawn from a seed and fully determines a video (see :mod:`synpo.toy.render`) and
its ground truth: a detailed caption of the whole video and one caption per clip of the paper's clip
split. Because every fact is known exactly, captions can be checked against the truth and facts can
be altered on purpose (a wrong colour, direction or an invented object) to build known-answer
preference pairs.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (150, 60, 200),
    "white": (245, 245, 245),
    "cyan": (40, 210, 220),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 10),
    "dark grey": (60, 60, 60),
    "light grey": (170, 170, 170),
    "dark blue": (20, 25, 80),
    "beige": (215, 200, 160),
    "dark green": (20, 70, 35),
}
PATTERNS = ("plain", "striped", "gradient")
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.09, "large": 0.17}  # radius as a fraction of the shorter frame side
DIRECTIONS = ("left", "right", "up", "down", "still")


@dataclass(frozen=True)
class Shape:
    """One object. Positions are fractions of the frame (0..1); times are seconds."""

    shape: str
    colour: str
    size: str
    direction: str
    start_xy: tuple[float, float]
    end_xy: tuple[float, float]
    appear_s: float
    change_s: float | None = None
    new_colour: str | None = None

    def name(self, colour: str | None = None) -> str:
        return f"{self.size} {colour or self.colour} {self.shape}"

    def colour_at(self, time_s: float) -> str:
        if self.change_s is not None and self.new_colour and time_s >= self.change_s:
            return self.new_colour
        return self.colour

    def position_at(self, time_s: float, duration_s: float) -> tuple[float, float]:
        span = max(duration_s - self.appear_s, 1e-6)
        progress = min(max((time_s - self.appear_s) / span, 0.0), 1.0)
        return (
            self.start_xy[0] + (self.end_xy[0] - self.start_xy[0]) * progress,
            self.start_xy[1] + (self.end_xy[1] - self.start_xy[1]) * progress,
        )


@dataclass(frozen=True)
class Scene:
    seed: int
    duration_s: float
    background: str
    pattern: str
    shapes: tuple[Shape, ...]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        shapes = tuple(
            Shape(**{**shape, "start_xy": tuple(shape["start_xy"]), "end_xy": tuple(shape["end_xy"])})
            for shape in data["shapes"]
        )
        return cls(**{**data, "shapes": shapes})


def path_for(direction: str, rng: random.Random) -> tuple[tuple[float, float], tuple[float, float]]:
    lane = rng.uniform(0.25, 0.75)
    if direction == "right":
        return (0.15, lane), (0.85, lane)
    if direction == "left":
        return (0.85, lane), (0.15, lane)
    if direction == "down":
        return (lane, 0.15), (lane, 0.85)
    if direction == "up":
        return (lane, 0.85), (lane, 0.15)
    point = (rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75))
    return point, point


def make_scene(seed: int, min_duration_s: int = 5, max_duration_s: int = 40) -> Scene:
    """A random scene, fully determined by ``seed``: 1–3 distinct shapes, some arriving late, some changing colour."""
    rng = random.Random(seed)
    duration_s = float(rng.randint(min_duration_s, max_duration_s))
    background = rng.choice(sorted(BACKGROUNDS))
    pattern = rng.choice(PATTERNS)
    kinds = rng.sample(SHAPES, k=rng.randint(1, 3))
    colours = rng.sample([name for name in COLOURS if name != "white" or background != "light grey"], k=len(kinds) * 2)
    shapes = []
    for position, kind in enumerate(kinds):
        direction = rng.choice(DIRECTIONS)
        start_xy, end_xy = path_for(direction, rng)
        appear_s = 0.0 if position == 0 or rng.random() < 0.4 else round(rng.uniform(0.2, 0.6) * duration_s, 1)
        change_s = new_colour = None
        if rng.random() < 0.5:
            change_s = round(rng.uniform(appear_s + 0.3 * (duration_s - appear_s), appear_s + 0.8 * (duration_s - appear_s)), 1)
            new_colour = colours[2 * position + 1]
        shapes.append(
            Shape(
                shape=kind,
                colour=colours[2 * position],
                size=rng.choice(sorted(SIZES)),
                direction=direction,
                start_xy=start_xy,
                end_xy=end_xy,
                appear_s=appear_s,
                change_s=change_s,
                new_colour=new_colour,
            )
        )
    return Scene(seed=seed, duration_s=duration_s, background=background, pattern=pattern, shapes=tuple(shapes))


def _where(xy: tuple[float, float]) -> str:
    horizontal = "left" if xy[0] < 0.4 else "right" if xy[0] > 0.6 else "center"
    vertical = "top" if xy[1] < 0.4 else "bottom" if xy[1] > 0.6 else "middle"
    if horizontal == "center" and vertical == "middle":
        return "the center"
    return f"the {vertical} {horizontal}".replace("middle center", "center")


def _motion(shape: Shape) -> str:
    if shape.direction == "still":
        return f"stays still near {_where(shape.start_xy)}"
    return f"moves {shape.direction}, from {_where(shape.start_xy)} to {_where(shape.end_xy)}"


def _background_phrase(scene: Scene) -> str:
    if scene.pattern == "plain":
        return f"a plain {scene.background} background"
    return f"a {scene.pattern} {scene.background} background"


def describe_scene(scene: Scene) -> str:
    """The ground-truth detailed caption of the whole video."""
    present = [shape for shape in scene.shapes if shape.appear_s == 0.0]
    late = sorted((shape for shape in scene.shapes if shape.appear_s > 0.0), key=lambda shape: shape.appear_s)
    names = " and ".join(f"a {shape.name()}" for shape in present)
    sentences = [f"The video shows {names} on {_background_phrase(scene)}."]
    sentences += [f"The {shape.shape} {_motion(shape)}." for shape in present]
    for shape in late:
        sentences.append(f"After {shape.appear_s:.0f} seconds, a {shape.name()} appears and {_motion(shape)}.")
    changes = sorted((shape for shape in scene.shapes if shape.change_s is not None), key=lambda shape: shape.change_s)
    for shape in changes:
        sentences.append(f"At about {shape.change_s:.0f} seconds, the {shape.shape} changes colour from {shape.colour} to {shape.new_colour}.")
    sentences.append(f"The video lasts {scene.duration_s:.0f} seconds.")
    return " ".join(sentences)


def describe_window(scene: Scene, start_s: float, end_s: float) -> str:
    """Ground-truth caption of the clip ``[start_s, end_s)``: what is visible and what happens in it."""
    visible = [shape for shape in scene.shapes if shape.appear_s < end_s]
    sentences = [f"On {_background_phrase(scene)}."]
    for shape in visible:
        begin = max(start_s, shape.appear_s)
        colour = shape.colour_at(begin)
        arrives = shape.appear_s > start_s
        verb = "appears" if arrives else "is visible"
        if shape.direction == "still":
            action = f"stays still near {_where(shape.start_xy)}"
        else:
            action = f"moves {shape.direction} near {_where(shape.position_at((begin + end_s) / 2, scene.duration_s))}"
        sentences.append(f"A {shape.name(colour)} {verb} and {action}.")
        if shape.change_s is not None and start_s <= shape.change_s < end_s:
            sentences.append(f"The {shape.shape} changes colour from {shape.colour} to {shape.new_colour}.")
    return " ".join(sentences)
