"""Pictures of grids: each cell shown apart, its pixels untouched, with an optional score bar under
it and coloured frames around the picked and the relevant cells; pictures tiled on a sheet with a
title and a legend."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from semclip.data.grid import cell_boxes

PICK = (220, 0, 0)  # the selector's pick
RELEVANT = (0, 90, 220)  # the cell(s) the question is about (ground truth)
RIGHT = (0, 120, 60)
WRONG = (200, 0, 0)
BAR = (90, 90, 90)
INK = (0, 0, 0)
FRAME = 3  # width of a frame, drawn in the gap around a cell, never over it
GAP = 2 * (2 * FRAME + 3)  # between cells: room for a relevant frame inside a pick frame
STRIP = 18  # under each cell: its index and score bar


def font(size: int = 12) -> ImageFont.ImageFont:
    """Pillow's own font at ``size`` pixels (the bitmap one where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def draw_grid(
    image: Image.Image,
    n: int,
    shares: Sequence[float] | None = None,
    chosen: Sequence[int] = (),
    relevant: Sequence[int] = (),
    caption: str | None = None,
    header: str | None = None,
    header_color: tuple[int, int, int] = INK,
    width: int = 320,
    legend: Sequence[tuple[tuple[int, int, int], str]] = (),
) -> Image.Image:
    """The n x n cells of ``image`` set apart by gaps, each cell's pixels as in the resized image.

    Under each cell: its row-major index and, with ``shares`` (0..1, e.g. a softmax over the
    cells), a bar on a fixed 0-100 % scale and the share in %. ``chosen`` cells get a red frame
    (the pick), ``relevant`` cells a blue one inside it; both lie in the gap, over no pixel of the
    image. ``header`` (coloured) goes above, then ``legend`` (a swatch and its meaning per entry,
    one per line), and ``caption`` (e.g. the question) below. The picture is ``width`` pixels
    wide: the image is resized to that less the gaps, then cut.
    """
    if shares is not None and len(shares) != n * n:
        raise ValueError(f"got {len(shares)} scores for a {n}x{n} grid")
    inner = max(n, width - n * GAP)
    scale = inner / image.width
    canvas = image.convert("RGB").resize((inner, max(1, round(image.height * scale))))
    boxes = [
        tuple(round(v * scale) for v in box) for box in cell_boxes(image.width, image.height, n)
    ]
    small, bold = font(11), font(13)
    head_h = (20 if header else 0) + 16 * len(legend)
    lines = textwrap.wrap(caption or "", width=max(20, width // 7))
    grid_h = canvas.height + n * (GAP + STRIP)
    out = Image.new(
        "RGB", (inner + n * GAP, head_h + grid_h + 14 * len(lines) + 4), (255, 255, 255)
    )
    draw = ImageDraw.Draw(out)
    if header:
        draw.text((GAP // 2, 3), header, fill=header_color, font=bold)
    for i, (color, meaning) in enumerate(legend):
        top = (20 if header else 0) + 16 * i + 2
        draw.rectangle((GAP // 2, top + 1, GAP // 2 + 10, top + 11), outline=color, width=FRAME)
        draw.text((GAP // 2 + 16, top), meaning, fill=INK, font=small)
    row_of = sorted({box[1] for box in boxes})
    col_of = sorted({box[0] for box in boxes})
    for index, box in enumerate(boxes):
        r, c = row_of.index(box[1]), col_of.index(box[0])
        x = box[0] + c * GAP + GAP // 2
        y = head_h + box[1] + r * (GAP + STRIP) + GAP // 2
        w, h = box[2] - box[0], box[3] - box[1]
        out.paste(canvas.crop(box), (x, y))
        if index in relevant:
            draw.rectangle((x - FRAME, y - FRAME, x + w + FRAME - 1, y + h + FRAME - 1),
                           outline=RELEVANT, width=FRAME)  # fmt: skip
        if index in chosen:
            pad = 2 * FRAME + 1
            draw.rectangle((x - pad, y - pad, x + w + pad - 1, y + h + pad - 1),
                           outline=PICK, width=FRAME)  # fmt: skip
        label_y = y + h + 2 * FRAME + 3  # below the pick frame
        draw.text((x, label_y), f"#{index}", fill=INK, font=small)
        if shares is None:
            continue
        share = min(1.0, max(0.0, float(shares[index])))
        number = f"{100 * share:.0f}%"
        bar_x0, bar_x1 = x + 24, x + w - 34
        if bar_x1 - bar_x0 >= 20:  # wide enough for a bar: outline = 100 %, fill = the share
            draw.rectangle((bar_x0, label_y + 2, bar_x1, label_y + 11), outline=BAR)
            fill_x = bar_x0 + round((bar_x1 - bar_x0) * share)
            if fill_x > bar_x0:
                draw.rectangle((bar_x0, label_y + 2, fill_x, label_y + 11), fill=BAR)
        draw.text((x + w - 30, label_y), number, fill=INK, font=small)
    for i, line in enumerate(lines):
        draw.text((GAP // 2, head_h + grid_h + 2 + 14 * i), line, fill=INK, font=small)
    return out


def contact_sheet(
    pictures: Sequence[Image.Image],
    columns: int = 4,
    title: str | None = None,
    legend: Sequence[tuple[tuple[int, int, int] | None, str]] = (),
    margin: int = 28,
) -> Image.Image:
    """Tile pictures left to right, top to bottom, each in a thin grey frame, ``margin`` pixels
    apart, on a white sheet.

    ``title`` is printed on a band above; ``legend`` lines under it, each after a colour swatch
    (or none, for ``None``).
    """
    if not pictures:
        raise ValueError("no pictures to tile")
    cell_w = max(p.width for p in pictures) + margin
    cell_h = max(p.height for p in pictures) + margin
    rows = (len(pictures) + columns - 1) // columns
    band = (28 if title else 0) + 16 * len(legend) + (8 if title or legend else 0)
    sheet_w = cell_w * min(columns, len(pictures)) + margin
    sheet = Image.new("RGB", (sheet_w, band + cell_h * rows + margin), "white")
    draw = ImageDraw.Draw(sheet)
    y = 8
    if title:
        draw.text((margin, y), title, fill=INK, font=font(16))
        y += 28
    for color, text in legend:
        x = margin
        if color is not None:
            draw.rectangle((x, y + 2, x + 18, y + 11), outline=color, width=FRAME)
            x += 26
        draw.text((x, y), text, fill=INK, font=font(12))
        y += 16
    if band:
        draw.line((0, band - 2, sheet_w, band - 2), fill=(200, 200, 200))
    for i, picture in enumerate(pictures):
        sheet.paste(
            picture, (margin + (i % columns) * cell_w, band + margin + (i // columns) * cell_h)
        )
    return sheet
