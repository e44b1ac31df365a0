"""The pictures a user looks at: image colours kept, scores on a fixed scale, titles and legends."""

from PIL import Image

from semclip.data.visualize import GAP, PICK, RELEVANT, RIGHT, WRONG, contact_sheet, draw_grid
from semclip.evaluation.chart import BASELINE, SELECTED, bar_chart
from semclip.models.selector import Selection, selection_picture

COLOURS = [(34, 160, 50), (240, 120, 180), (20, 60, 230), (250, 210, 20)]  # green, pink, ...


def quadrants(side: int = 64) -> Image.Image:
    """A 2x2 image, one solid colour a cell (row-major), as the cells a grid of 2 cuts; at the
    side the picture shows it (its width less the gaps) it is not resized, so no pixel blends."""
    image = Image.new("RGB", (side, side))
    half = side // 2
    for i, colour in enumerate(COLOURS):
        image.paste(
            colour, ((i % 2) * half, (i // 2) * half, (i % 2 + 1) * half, (i // 2 + 1) * half)
        )
    return image


def count(picture: Image.Image, colour) -> int:
    return sum(1 for p in picture.getdata() if p == colour)


def test_cells_keep_their_colours_under_scores_and_frames():
    width = 320
    picture = draw_grid(
        quadrants(width - 2 * GAP),
        2,
        shares=[0.05, 0.15, 0.3, 0.5],
        chosen=[3],
        relevant=[3],
        caption="What color is the star?",
        header="RIGHT: picked #3",
        width=width,
    )
    cell = (width - 2 * GAP) // 2
    for colour in COLOURS:  # a tint, a label or a frame over the cell would eat into these
        assert count(picture, colour) == cell * cell, colour
    assert count(picture, PICK) > 0 and count(picture, RELEVANT) > 0


def test_selection_picture_says_right_or_wrong():
    selection = Selection(indices=[2], crops=[], boxes=[], scores=[0.1, 0.2, 3.0, 0.3], grid=2)
    image = quadrants(360 - 2 * GAP)
    right = selection_picture(image, selection, "Which?", relevant=[2])
    wrong = selection_picture(image, selection, "Which?", relevant=[1])
    header = (0, 0, right.width, 20)
    assert count(right.crop(header), RIGHT) > 0 and count(right.crop(header), WRONG) == 0
    assert count(wrong.crop(header), WRONG) > 0 and count(wrong.crop(header), RIGHT) == 0
    cell = (right.width - 2 * GAP) // 2
    for colour in COLOURS:
        assert count(right, colour) == cell * cell, colour


def test_score_bars_use_a_fixed_scale():
    """The same share draws the same bar whatever the other cells score."""
    bar = (90, 90, 90)
    low = draw_grid(quadrants(), 2, shares=[0.5, 0.5, 0.0, 0.0])
    high = draw_grid(quadrants(), 2, shares=[0.5, 0.1, 0.2, 0.2])
    top_row = (0, 0, low.width // 2, low.height // 2)  # cell 0 and its bar
    assert count(low.crop(top_row), bar) == count(high.crop(top_row), bar)


def test_sheet_has_a_title_band_and_margins():
    tiles = [Image.new("RGB", (50, 40), (0, 0, 0)) for _ in range(3)]
    bare = contact_sheet(tiles, columns=3, margin=20)
    titled = contact_sheet(tiles, columns=3, title="Title", legend=[(PICK, "red: pick")], margin=20)
    assert titled.height > bare.height + 30
    band = titled.crop((0, 0, titled.width, titled.height - bare.height))
    assert count(band, (0, 0, 0)) > 0 and count(band, PICK) > 0  # text and the swatch
    assert count(titled, (0, 0, 0)) - count(band, (0, 0, 0)) == 3 * 50 * 40  # tiles intact
    row = [titled.getpixel((x, titled.height - 40)) for x in range(titled.width)]
    runs = "".join("t" if p == (0, 0, 0) else "." for p in row).split(".")
    assert [len(r) for r in runs if r] == [50, 50, 50]  # three tiles, apart


def test_accuracy_chart_has_a_legend_for_grey_and_blue():
    values = {"overview only": 0.1, "random crop": 0.25, "oracle": 1.0, "trained": 0.9}
    chart = bar_chart(values, "Accuracy", scorer_rows=["trained"])
    legend = chart.crop((0, 30, chart.width, 56))
    assert count(legend, BASELINE) > 0 and count(legend, SELECTED) > 0
    bars = chart.crop((0, 60, chart.width, chart.height))
    blue, grey = count(bars, SELECTED), count(bars, BASELINE)
    assert 0 < blue < grey  # one scorer row, three rows without a scorer


def test_chart_labels_are_never_cut():
    from PIL import ImageDraw

    from semclip.data.visualize import font

    name = "zero-shot (untrained CLIP) (k=1)"
    chart = bar_chart({"oracle (k=1)": 1.0, name: 0.5}, "Accuracy", scorer_rows=[name])
    row = next(y for y in range(60, chart.height) if chart.getpixel((chart.width - 1, y)) and
               any(chart.getpixel((x, y)) == SELECTED for x in range(chart.width)))  # fmt: skip
    bar_start = next(x for x in range(chart.width) if chart.getpixel((x, row)) == SELECTED)
    band = range(row, row + 22)
    ink = [x for x in range(bar_start) for y in band if chart.getpixel((x, y)) == (0, 0, 0)]
    width = ImageDraw.Draw(chart).textlength(name, font=font(14))
    assert max(ink) >= 10 + width - 4  # the whole name is drawn, not its first 28 characters
    assert max(ink) < bar_start  # and it ends before the bar starts


def test_answer_picture_gives_the_answer_and_a_legend():
    selection = Selection(indices=[2], crops=[], boxes=[], scores=[0.1, 0.2, 3.0, 0.3], grid=2)
    image = quadrants(360 - 2 * GAP)
    bare = selection_picture(image, selection, "Which?")
    shown = selection_picture(image, selection, "Which?", answer="B. green (p=0.90)", legend=True)
    extra = shown.height - bare.height
    assert extra >= 2 * 16  # a legend line per colour under the header
    top = shown.crop((0, 0, shown.width, 20 + extra))
    assert count(top, PICK) > 0 and count(top, (0, 0, 0)) > 0  # the red swatch, the answer
    cell = (shown.width - 2 * GAP) // 2
    for colour in COLOURS:  # the image's pixels are untouched
        assert count(shown, colour) == cell * cell, colour
