import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from semclip.data.grid import cell_boxes, cell_of_point, crop_grid


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    n=st.integers(1, 8),
)
def test_cells_tile_the_image_exactly(width, height, n):
    if width < n or height < n:
        with pytest.raises(ValueError, match="too small"):
            cell_boxes(width, height, n)
        return
    boxes = cell_boxes(width, height, n)
    assert len(boxes) == n * n
    # Separable grid: check each axis covers [0, size) exactly once, in order, no empty cells.
    for r in range(n):
        row = boxes[r * n : (r + 1) * n]
        assert row[0][0] == 0 and row[-1][2] == width
        assert all(a[2] == b[0] for a, b in zip(row, row[1:]))
        assert len({(b[1], b[3]) for b in row}) == 1
    cols = [boxes[r * n] for r in range(n)]
    assert cols[0][1] == 0 and cols[-1][3] == height
    assert all(a[3] == b[1] for a, b in zip(cols, cols[1:]))
    widths = {b[2] - b[0] for b in boxes}
    heights = {b[3] - b[1] for b in boxes}
    assert min(widths) >= 1 and max(widths) - min(widths) <= 1
    assert min(heights) >= 1 and max(heights) - min(heights) <= 1
    assert sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) == width * height


def test_every_pixel_in_exactly_one_cell_small_exhaustive():
    for width, height, n in [(7, 5, 3), (10, 10, 4), (8, 9, 8), (3, 3, 3)]:
        counts = [[0] * width for _ in range(height)]
        for left, top, right, bottom in cell_boxes(width, height, n):
            for y in range(top, bottom):
                for x in range(left, right):
                    counts[y][x] += 1
        assert all(c == 1 for row in counts for c in row)


def test_crop_grid_pixels_round_trip():
    image = Image.effect_noise((37, 23), 64).convert("RGB")
    cells = crop_grid(image, 3)
    rebuilt = Image.new("RGB", image.size)
    for cell in cells:
        assert cell.image.size == (cell.box[2] - cell.box[0], cell.box[3] - cell.box[1])
        assert cell.index == cell.row * 3 + cell.col
        rebuilt.paste(cell.image, cell.box[:2])
    assert rebuilt.tobytes() == image.tobytes()


def test_cell_of_point_agrees_with_boxes():
    boxes = cell_boxes(50, 31, 4)
    for index, (left, top, right, bottom) in enumerate(boxes):
        assert cell_of_point(left, top, 50, 31, 4) == index
        assert cell_of_point(right - 1, bottom - 1, 50, 31, 4) == index


@pytest.mark.parametrize("n", [0, 9, -1, 2.0, True])
def test_bad_grid_is_a_clear_error(n):
    with pytest.raises(ValueError, match="grid n must be"):
        cell_boxes(100, 100, n)
