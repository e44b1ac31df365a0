import io

import numpy as np
import pytest
from PIL import Image

from semclip.data.images import (
    ALPHA_MODES,
    CLIP_MEAN_RGB,
    DEFAULT_ALPHA,
    ImageError,
    load_image,
    pad_to_square,
    to_rgb,
)


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def palette_with_transparency() -> Image.Image:
    image = Image.new("P", (3, 3), 0)  # index 0 (stored colour (9, 8, 7)) is transparent
    image.putpalette([9, 8, 7, 0, 255, 0] + [0] * 762)
    image.putpixel((2, 2), 1)
    image.info["transparency"] = 0
    return image


def test_rgba_alpha_dropped_by_default():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # transparent red
    image.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(encode(image))
    assert DEFAULT_ALPHA == "drop" and out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 255)
    assert out.getpixel((3, 3)) == (255, 0, 0)  # the stored colour, as convert("RGB") keeps it


def test_rgba_composited_on_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    image.putpixel((1, 0), (0, 0, 0, 128))  # half black on white: 255 * 127 / 255 = 127
    out = load_image(encode(image), alpha="white")
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 0, 0)
    assert out.getpixel((3, 3)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (127, 127, 127)


def test_la_alpha_dropped_by_default():
    image = Image.new("LA", (3, 3), (90, 0))
    image.putpixel((1, 1), (10, 255))
    out = load_image(encode(image))
    assert out.getpixel((1, 1)) == (10, 10, 10) and out.getpixel((0, 0)) == (90, 90, 90)


def test_la_composited_on_white():
    image = Image.new("LA", (3, 3), (0, 0))
    image.putpixel((1, 1), (0, 255))
    out = load_image(encode(image), alpha="white")
    assert out.getpixel((1, 1)) == (0, 0, 0) and out.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_dropped_by_default():
    out = load_image(encode(palette_with_transparency()))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (9, 8, 7)  # the palette colour under the transparent index
    assert out.getpixel((2, 2)) == (0, 255, 0)


def test_palette_with_transparency_on_white():
    out = load_image(encode(palette_with_transparency()), alpha="white")
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((2, 2)) == (0, 255, 0)


@pytest.mark.parametrize("alpha", ALPHA_MODES)
def test_every_alpha_mode_equals_pillow(alpha):
    """``drop`` is exactly Pillow's ``convert("RGB")``; ``white`` its composite on white."""
    image = Image.effect_noise((8, 8), 60).convert("RGB")
    rgba = image.copy()
    rgba.putalpha(Image.effect_noise((8, 8), 90))
    out = to_rgb(rgba, alpha=alpha)
    if alpha == "drop":
        expected = rgba.convert("RGB")
    else:
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        expected = Image.alpha_composite(white, rgba).convert("RGB")
    assert out.tobytes() == expected.tobytes()


def test_unknown_alpha_is_an_error():
    with pytest.raises(ValueError, match="alpha must be one of"):
        load_image(encode(Image.new("RGB", (2, 2))), alpha="black")


def test_cmyk():
    image = Image.new("CMYK", (3, 3), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(encode(image, "JPEG", quality=100))
    r, g, b = out.getpixel((1, 1))
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_grayscale_l():
    out = load_image(encode(Image.new("L", (3, 2), 77)))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (77, 77, 77)


def test_16_bit_rescaled_not_clipped():
    array = np.full((2, 2), 65535, dtype=np.uint16)
    array[0, 0] = 257 * 100
    out = load_image(encode(Image.fromarray(array)))
    assert out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (100, 100, 100)


def test_float_image():
    array = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    out = load_image(Image.fromarray(array))
    assert out.mode == "RGB"
    assert out.getpixel((1, 0)) == (128, 128, 128) and out.getpixel((0, 1)) == (255, 255, 255)


def test_exif_orientation_applied():
    image = Image.new("RGB", (4, 2), (0, 0, 255))
    image.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(encode(image, "JPEG", exif=exif.tobytes(), quality=100))
    assert out.size == (2, 4)


def test_pixel_limit_is_a_clear_error():
    data = encode(Image.new("RGB", (100, 100)))
    with pytest.raises(ImageError) as err:
        load_image(data, max_pixels=5_000)
    assert err.value.reason == "too_large" and "max_pixels=5000" in str(err.value)
    assert load_image(data, max_pixels=None).size == (100, 100)


def test_pixel_limit_above_pillows_own_guard(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("RGB", (100, 100)))
    assert load_image(data, max_pixels=20_000).size == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_truncated_bytes():
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError) as err:
        load_image(data[: len(data) // 2])
    assert err.value.reason == "truncated"


@pytest.mark.parametrize("data", [b"not an image at all", b"\x89PNG\r\n\x1a\n garbage"])
def test_garbage_bytes(data):
    with pytest.raises(ImageError) as err:
        load_image(data)
    assert err.value.reason in ("undecodable", "truncated")


@pytest.mark.parametrize("source", [None, b"", {"bytes": None, "path": None}])
def test_missing_image(source):
    with pytest.raises(ImageError) as err:
        load_image(source)
    assert err.value.reason == "missing"


def test_datasets_dict_and_path(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (5, 6), (1, 2, 3)).save(path)
    assert load_image({"bytes": None, "path": str(path)}).size == (5, 6)
    assert load_image(str(path)).getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(ImageError):
        load_image(42)


def test_pad_to_square_centres_and_keeps_every_pixel():
    image = Image.effect_noise((10, 4), 60).convert("RGB")
    square = pad_to_square(image)
    assert square.size == (10, 10)
    assert square.crop((0, 3, 10, 7)).tobytes() == image.tobytes()
    assert square.getpixel((0, 0)) == CLIP_MEAN_RGB
    assert pad_to_square(square) is square
