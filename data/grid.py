"""Grid cropping: split an image into n x n cells that tile it exactly.

Cell ``i`` spans ``[floor(i * W / n), floor((i + 1) * W / n))`` along each axis, so every pixel is
in exactly one cell and cell sizes differ by at most one pixel. Cells are numbered row-major:
``index = row * n + col``.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

MIN_GRID = 1
MAX_GRID = 8

#: ``(left, top, right, bottom)`` in pixels, right/bottom exclusive (Pillow's crop convention).
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Cell:
    """One grid cell: its crop, its box in the source image and its place in the grid."""

    image: Image.Image
    box: Box
    row: int
    col: int
    index: int


def check_grid(n: int) -> None:
    """Raise ``ValueError`` unless ``n`` is an allowed grid size."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_GRID <= n <= MAX_GRID:
        raise ValueError(f"grid n must be an integer in {MIN_GRID}..{MAX_GRID}, got {n!r}")


def _edges(length: int, n: int) -> list[int]:
    return [i * length // n for i in range(n + 1)]


def cell_boxes(width: int, height: int, n: int) -> list[Box]:
    """Boxes of the n x n grid over a ``width`` x ``height`` image, row-major."""
    check_grid(n)
    if width < n or height < n:
        raise ValueError(
            f"image of {width}x{height} px is too small for a {n}x{n} grid "
            f"(each side needs at least {n} px)"
        )
    xs, ys = _edges(width, n), _edges(height, n)
    return [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(n) for c in range(n)]


def crop_grid(image: Image.Image, n: int) -> list[Cell]:
    """Crop ``image`` into its n x n cells, row-major, each with its box."""
    boxes = cell_boxes(image.width, image.height, n)
    return [
        Cell(image=image.crop(box), box=box, row=i // n, col=i % n, index=i)
        for i, box in enumerate(boxes)
    ]


def cell_of_point(x: float, y: float, width: int, height: int, n: int) -> int:
    """Index of the cell that holds pixel ``(x, y)``."""
    check_grid(n)
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"point ({x}, {y}) lies outside a {width}x{height} image")
    col = next(c for c, e in enumerate(_edges(width, n)[1:]) if x < e)
    row = next(r for r, e in enumerate(_edges(height, n)[1:]) if y < e)
    return row * n + col
