"""A seeded synthetic dataset in the ScienceQA schema, learnable by a question-reading scorer.

Each image is an n x n grid; up to one small object per cell, every object a distinct shape in a
random colour. The question asks for the colour of one named shape, so only a scorer that reads
the question can tell which cell matters (the target is drawn uniformly among the objects: a scorer
that ignores the question is at chance). Objects are small relative to the image, so the detail is
often legible in the cell crop but not in the downscaled overview: that is what the simulated
evaluator of the labeling stage models.

Options (all off by default, which draws today's set byte for byte) make the overview honestly
insufficient for a real VLM: ``palette`` restricts the colours, ``distinct_colors`` gives the
objects of an image different ones, ``choices_from_image`` takes the wrong options from the other
objects' colours (the overview shows all of them) and ``sort_choices`` lists the options
alphabetically instead of shuffled.

Extra columns record the ground truth: ``relevant_cells`` (row-major indices), ``grid_n``,
``target_shape``, ``target_color`` and ``target_box`` (the object's box in pixels).
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

import datasets
from PIL import Image, ImageDraw

from semclip.data.grid import cell_boxes, check_grid

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "hexagon", "bar")
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
    "cyan": (20, 190, 200),
    "pink": (240, 120, 180),
}

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "question": datasets.Value("string"),
        "choices": datasets.List(datasets.Value("string")),
        "answer": datasets.Value("int64"),
        "hint": datasets.Value("string"),
        "subject": datasets.Value("string"),
        "grade": datasets.Value("string"),
        "relevant_cells": datasets.List(datasets.Value("int64")),
        "grid_n": datasets.Value("int64"),
        "target_shape": datasets.Value("string"),
        "target_color": datasets.Value("string"),
        "target_box": datasets.List(datasets.Value("int64")),
    }
)


@dataclass
class SyntheticConfig:
    """How the synthetic set is drawn."""

    num_questions: int = 200
    """Rows in the split."""
    grid: int = 2
    """Grid n the objects are laid out on (the relevant cell is reported for this n)."""
    image_size: int = 128
    """Side of the square images, in pixels."""
    min_object: float = 0.45
    """Smallest object side, as a fraction of the cell side."""
    max_object: float = 0.85
    """Largest object side, as a fraction of the cell side."""
    num_choices: int = 4
    """Options per question (colours)."""
    palette: tuple[str, ...] | None = None
    """Colours the objects and options are drawn from (names of ``COLORS``; ``None``: all)."""
    distinct_colors: bool = False
    """Give the objects of one image different colours (needs a palette as large as the
    number of objects)."""
    choices_from_image: bool = False
    """Draw the wrong options from the colours of the image's other objects first (then at
    random): the overview shows every option's colour, so only the asked shape tells them apart."""
    sort_choices: bool = False
    """List the options alphabetically instead of in random order."""
    seed: int = 0
    """Seed; the same config always gives the same bytes."""

    def validate(self) -> None:
        check_grid(self.grid)
        if self.image_size < 8 * self.grid:
            raise ValueError(f"image_size must be at least 8 * grid = {8 * self.grid}")
        if not 0 < self.min_object <= self.max_object <= 0.9:
            raise ValueError("need 0 < min_object <= max_object <= 0.9")
        unknown = sorted(set(self.palette or ()) - set(COLORS))
        if unknown or (self.palette is not None and len(set(self.palette)) < 2):
            raise ValueError(f"palette needs 2 or more distinct names of {sorted(COLORS)}")
        colors = self.colors()
        if not 2 <= self.num_choices <= len(colors):
            raise ValueError(f"num_choices must be in 2..{len(colors)} (the palette's size)")
        if self.num_questions < 0:
            raise ValueError("num_questions must be >= 0")
        if self.distinct_colors and _num_objects(self.grid) > len(colors):
            raise ValueError(
                f"distinct_colors needs at most {len(colors)} objects (the palette's size), "
                f"but grid {self.grid} holds {_num_objects(self.grid)}"
            )

    def colors(self) -> list[str]:
        """The palette, sorted (all of ``COLORS`` unless ``palette`` is set)."""
        return sorted(set(self.palette or COLORS))


def _num_objects(grid: int) -> int:
    return min(grid * grid, len(SHAPES))


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill
) -> None:
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    r = (right - left) / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, top), (right, bottom), (left, bottom)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, top), (right, cy), (cx, bottom), (left, cy)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle((cx - w, top, cx + w, bottom), fill=fill)
        draw.rectangle((left, cy - w, right, cy + w), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, round(r / 2.5)))
    elif shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    elif shape == "hexagon":
        points = [
            (cx + r * math.cos(k * math.pi / 3), cy + r * math.sin(k * math.pi / 3))
            for k in range(6)
        ]
        draw.polygon(points, fill=fill)
    elif shape == "bar":
        draw.rectangle((left, cy - r / 4, right, cy + r / 4), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def make_example(config: SyntheticConfig, index: int, split: str = "train") -> dict:
    """Draw row ``index`` of ``split`` (deterministic in config.seed, split and index)."""
    rng = random.Random(f"semclip-synthetic/{config.seed}/{split}/{index}")
    n, size = config.grid, config.image_size
    shade = rng.randint(200, 245)
    image = Image.new("RGB", (size, size), (shade, shade, shade))
    draw = ImageDraw.Draw(image)
    boxes = cell_boxes(size, size, n)
    palette = config.colors()
    num_objects = _num_objects(n)
    cells = sorted(rng.sample(range(n * n), num_objects))
    shapes = rng.sample(SHAPES, num_objects)
    objects = []
    for cell, shape in zip(cells, shapes):
        left, top, right, bottom = boxes[cell]
        side = min(right - left, bottom - top)
        obj = max(4, round(side * rng.uniform(config.min_object, config.max_object)))
        x = left + rng.randint(1, max(1, right - left - obj - 1))
        y = top + rng.randint(1, max(1, bottom - top - obj - 1))
        used = {c for *_, c, _ in objects} if config.distinct_colors else set()
        color = rng.choice([c for c in palette if c not in used])
        obj_box = (x, y, x + obj, y + obj)
        _draw_shape(draw, shape, obj_box, COLORS[color])
        objects.append((cell, shape, color, obj_box))
    cell, shape, color, obj_box = rng.choice(objects)
    k = config.num_choices - 1
    if config.choices_from_image:
        shown = sorted({c for *_, c, _ in objects} - {color})
        wrong = rng.sample(shown, min(k, len(shown)))
        rest = [c for c in palette if c != color and c not in shown]
        wrong += rng.sample(rest, k - len(wrong))
    else:
        wrong = rng.sample([c for c in palette if c != color], k)
    choices = [color, *wrong]
    if config.sort_choices:
        choices.sort()
    else:
        rng.shuffle(choices)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {
        "image": {"bytes": buffer.getvalue(), "path": None},
        "question": f"What color is the {shape}?",
        "choices": choices,
        "answer": choices.index(color),
        "hint": "",
        "subject": "synthetic",
        "grade": "",
        "relevant_cells": [cell],
        "grid_n": n,
        "target_shape": shape,
        "target_color": color,
        "target_box": list(obj_box),
    }


def build_synthetic(config: SyntheticConfig, split: str = "train") -> datasets.Dataset:
    """One split of the synthetic set as a ``datasets.Dataset`` in the ScienceQA schema."""
    config.validate()
    rows = [make_example(config, i, split) for i in range(config.num_questions)]
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)


def save_synthetic(
    out_dir: str, config: SyntheticConfig, splits: dict[str, int] | None = None
) -> datasets.DatasetDict:
    """Build the given splits (name -> rows) and ``save_to_disk`` them as a ``DatasetDict``."""
    splits = splits or {"train": config.num_questions}
    dd = datasets.DatasetDict(
        {
            name: build_synthetic(
                SyntheticConfig(**{**config.__dict__, "num_questions": rows}), name
            )
            for name, rows in splits.items()
        }
    )
    dd.save_to_disk(out_dir)
    return dd
