"""Pictures of grids: the cells drawn over the image, optionally tinted by score, with a caption."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from semclip.data.grid import cell_boxes


def draw_grid(
    image: Image.Image,
    n: int,
    scores: Sequence[float] | None = None,
    chosen: Sequence[int] = (),
    caption: str | None = None,
    width: int = 320,
) -> Image.Image:
    """Draw the n x n grid on ``image``; tint cells by ``scores``; outline ``chosen`` cells.

    The picture is resized to ``width`` pixels wide; the caption (e.g. the question) is printed
    underneath.
    """
    scale = width / image.width
    canvas = image.convert("RGB").resize((width, max(1, round(image.height * scale))))
    boxes = [
        tuple(round(v * scale) for v in box) for box in cell_boxes(image.width, image.height, n)
    ]
    if scores is not None:
        if len(scores) != n * n:
            raise ValueError(f"got {len(scores)} scores for a {n}x{n} grid")
        lo, hi = min(scores), max(scores)
        overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        tint = ImageDraw.Draw(overlay)
        for box, score in zip(boxes, scores):
            level = (score - lo) / (hi - lo) if hi > lo else 0.5
            tint.rectangle(box, fill=(255, 140, 0, int(110 * level)))  # best cell: strongest
        canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for index, box in enumerate(boxes):
        draw.rectangle(box, outline=(40, 40, 40), width=1)
        label = f"{index}" if scores is None else f"{index}: {scores[index]:.2f}"
        draw.text((box[0] + 3, box[1] + 2), label, fill=(0, 0, 0), font=font)
    for index in chosen:
        draw.rectangle(boxes[index], outline=(220, 0, 0), width=3)
    if not caption:
        return canvas
    lines = textwrap.wrap(caption, width=max(20, width // 7))
    framed = Image.new("RGB", (width, canvas.height + 14 * len(lines) + 8), (255, 255, 255))
    framed.paste(canvas, (0, 0))
    text = ImageDraw.Draw(framed)
    for i, line in enumerate(lines):
        text.text((4, canvas.height + 4 + 14 * i), line, fill=(0, 0, 0), font=font)
    return framed


def contact_sheet(pictures: Sequence[Image.Image], columns: int = 4) -> Image.Image:
    """Tile pictures left to right, top to bottom, on a white sheet."""
    if not pictures:
        raise ValueError("no pictures to tile")
    cell_w = max(p.width for p in pictures)
    cell_h = max(p.height for p in pictures)
    rows = (len(pictures) + columns - 1) // columns
    sheet = Image.new("RGB", (cell_w * min(columns, len(pictures)), cell_h * rows), "white")
    for i, picture in enumerate(pictures):
        sheet.paste(picture, ((i % columns) * cell_w, (i // columns) * cell_h))
    return sheet
