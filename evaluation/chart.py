"""The accuracy bar chart of an evaluation (stored labels or the VLM in the loop)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from semclip.data.visualize import font as ui_font

BASELINE = (160, 160, 160)
SELECTED = (70, 130, 180)


def bar_chart(
    values: dict[str, float],
    title: str,
    scorer_rows: Sequence[str] = (),
    width: int = 720,
) -> Image.Image:
    """A horizontal bar chart of accuracies (0..1, drawn in %), with a title, an x axis from 0 to
    100 %, and a legend: blue bars are ``scorer_rows`` (a scorer picks the cell), grey bars the
    rows without a scorer."""
    font, small = ui_font(14), ui_font(12)
    bar_h, gap, right = 22, 8, 70
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    longest = max((measure.textlength(name, font=font) for name in values), default=0)
    left = max(120, 20 + int(longest) + 10)  # every row's whole name, never cut
    width = max(width, left + 400 + right)
    top = 64
    plot_h = len(values) * (bar_h + gap)
    height = top + plot_h + 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), title, fill="black", font=ui_font(16))
    legend = [(BASELINE, "no scorer (baselines and bounds)"), (SELECTED, "a scorer picks the cell")]
    x = 10
    for color, text in legend:
        draw.rectangle((x, 38, x + 14, 50), fill=color)
        draw.text((x + 20, 37), text, fill="black", font=small)
        x += 40 + int(draw.textlength(text, font=small))
    span = width - left - right
    for tick in range(0, 101, 25):
        tx = left + span * tick // 100
        draw.line((tx, top - 4, tx, top + plot_h), fill=(225, 225, 225))
        draw.text((tx - 8, top + plot_h + 4), f"{tick}", fill="black", font=small)
    draw.line((left, top + plot_h, left + span, top + plot_h), fill="black")
    draw.text(
        (left + span // 2 - 110, top + plot_h + 22),
        "accuracy (% of questions answered right)",
        fill="black",
        font=small,
    )
    for i, (name, value) in enumerate(values.items()):
        y = top + i * (bar_h + gap)
        color = SELECTED if name in scorer_rows else BASELINE
        draw.rectangle((left, y, left + round(span * value), y + bar_h), fill=color)
        draw.text((10, y + 4), name, fill="black", font=font)
        draw.text((left + round(span * value) + 6, y + 4), f"{100 * value:.1f}%", fill="black",
                  font=font)  # fmt: skip
    return image
