from semclip.data.grid import cell_boxes
from semclip.data.images import load_image
from semclip.data.synthetic import COLORS, SyntheticConfig, build_synthetic


def test_seeded_runs_identical():
    config = SyntheticConfig(num_questions=6, grid=3, image_size=96, seed=7)
    a, b = build_synthetic(config), build_synthetic(config)
    assert a.data.table.equals(b.data.table)
    other = build_synthetic(SyntheticConfig(num_questions=6, grid=3, image_size=96, seed=8))
    assert not a.data.table.equals(other.data.table)


def test_relevant_cell_is_where_the_target_is():
    for grid in (2, 3, 4):
        config = SyntheticConfig(num_questions=30, grid=grid, image_size=40 * grid, seed=1)
        for row in build_synthetic(config):
            image = load_image(row["image"])
            (cell,) = row["relevant_cells"]
            left, top, right, bottom = cell_boxes(image.width, image.height, grid)[cell]
            x0, y0, x1, y1 = row["target_box"]
            assert left <= x0 < x1 <= right and top <= y0 < y1 <= bottom
            # The object is really drawn there, in its colour, and nowhere outside the cell does
            # the question's shape appear (shapes are distinct per image).
            crop = image.crop((x0, y0, x1, y1))
            assert COLORS[row["target_color"]] in {c for _, c in crop.getcolors(1 << 16)}
            assert row["choices"][row["answer"]] == row["target_color"]
            assert row["target_shape"] in row["question"]


def test_target_cell_spread_over_the_grid():
    rows = build_synthetic(SyntheticConfig(num_questions=200, grid=2, seed=3))
    counts = [0] * 4
    for cells in rows["relevant_cells"]:
        counts[cells[0]] += 1
    assert min(counts) > 30  # ~50 each: no cell a scorer could guess without the question
