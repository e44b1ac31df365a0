"""Image normalisation: every input becomes an RGB ``PIL.Image`` or a typed :class:`ImageError`.

A long labeling run meets every kind of image a dataset can hold. Whatever comes in (a PIL image,
encoded bytes, a path, the ``{"bytes", "path"}`` dict that ``datasets`` gives with
``Image(decode=False)``, or ``None``) leaves as RGB, or as an :class:`ImageError` whose ``reason``
the caller records as a skip. Nothing here raises anything else for bad data.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Default pixel limit (width * height). Pillow's own default guard is ~89.5 MP.
DEFAULT_MAX_PIXELS = 89_478_485

#: CLIP's image mean as 0-255 RGB: the background LLaVA-1.5 pads with (``expand2square``).
CLIP_MEAN_RGB = (122, 116, 104)

#: How transparency is turned into RGB. ``drop``: the stored colour under the alpha is kept and
#: alpha is discarded, exactly what ``Image.convert("RGB")`` gives (LLaVA-1.5's and lmms-eval's
#: loaders do ``Image.open(...).convert("RGB")``). ``white``: composited on a white background.
ALPHA_MODES = ("drop", "white")

#: The default of ``load_image`` / ``to_rgb``: LLaVA's convention. Record it in provenance.
DEFAULT_ALPHA = "drop"

_ALPHA_IMAGE_MODES = ("RGBA", "LA", "PA", "RGBa")

_PIL_LIMIT_LOCK = threading.Lock()


class ImageError(ValueError):
    """An image that cannot be used. ``reason`` is a short stable code for skip records."""

    REASONS = ("missing", "undecodable", "truncated", "too_large", "too_small", "unsupported")

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in self.REASONS:
            raise ValueError(
                f"unknown image error reason {reason!r}; expected one of {self.REASONS}"
            )
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def load_image(
    source: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS, alpha: str = DEFAULT_ALPHA
) -> Image.Image:
    """Return ``source`` as a fully decoded RGB image, or raise :class:`ImageError`.

    ``max_pixels`` bounds width * height before decoding (``None`` disables the guard); ``alpha``
    says what becomes of transparency (see :data:`ALPHA_MODES`).
    """
    _check_alpha(alpha)
    if source is None:
        raise ImageError("missing", "no image")
    if isinstance(source, Image.Image):
        image = source
        _check_pixels(image.size, max_pixels)
    else:
        image = _open(source, max_pixels)
    try:
        image.load()
    except OSError as err:  # Pillow reports cut-off files as OSError
        raise ImageError("truncated", str(err)) from err
    except Image.DecompressionBombError as err:
        raise ImageError("too_large", str(err)) from err
    return to_rgb(image, alpha)


def _check_alpha(alpha: str) -> None:
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")


def _open(source: Any, max_pixels: int | None) -> Image.Image:
    if isinstance(source, dict):
        data, path = source.get("bytes"), source.get("path")
        if data is None and not path:
            raise ImageError("missing", "empty image record")
        source = data if data is not None else path
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("missing", "zero bytes")
        fp: Any = io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise ImageError("missing", f"no such file: {source}")
        fp = source
    else:
        raise ImageError("unsupported", f"cannot read an image from {type(source).__name__}")
    # Pillow's bomb guard is a module global; swap in ours while opening (header only).
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            image = Image.open(fp)
        except UnidentifiedImageError as err:
            raise ImageError("undecodable", str(err)) from err
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError("undecodable", str(err)) from err
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    _check_pixels(image.size, max_pixels)
    return image


def _check_pixels(size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError("too_small", f"{width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            "too_large",
            f"{width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels}",
        )


def to_rgb(image: Image.Image, alpha: str = DEFAULT_ALPHA) -> Image.Image:
    """Apply EXIF orientation and convert any Pillow mode to RGB.

    Transparency (RGBA, LA, a palette with a transparent index, ...) is dropped, keeping the stored
    colours as ``convert("RGB")`` does (``alpha="drop"``, LLaVA's convention), or composited on
    white (``alpha="white"``); 16-bit and float images are rescaled to 0-255 first (a plain
    ``convert`` would clip them to white).
    """
    _check_alpha(alpha)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a corrupt EXIF block must not kill a run; keep the stored orientation
        pass
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "La":  # premultiplied luminance: Pillow converts it to LA only
        image, mode = image.convert("LA"), "LA"
    if alpha == "drop" and (mode in _ALPHA_IMAGE_MODES or mode == "P"):
        with warnings.catch_warnings():  # "should be converted to RGBA": dropping it is the point
            warnings.filterwarnings("ignore", message="Palette images with Transparency")
            return image.convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in _ALPHA_IMAGE_MODES:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(image)
    if mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as err:
        raise ImageError("unsupported", f"mode {mode}") from err


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 255.0 if array.size and np.nanmax(array) <= 1.0 else 1.0
    else:  # I;16 and I: 16-bit sensors are the common case
        scale = 1.0 / 257.0 if array.size and array.max() > 255 else 1.0
    array = np.nan_to_num(array * scale, nan=0.0)
    gray = Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8))
    return gray.convert("RGB")


def processor_background(image_processor) -> tuple[int, ...] | None:
    """The padding colour for a processor: its image mean as 0-255 RGB, truncated as LLaVA-1.5's
    ``tuple(int(x * 255) for x in image_processor.image_mean)`` does ((122, 116, 104) for CLIP)."""
    mean = getattr(image_processor, "image_mean", None)
    return tuple(int(m * 255) for m in mean) if mean else None


def pad_to_square(
    image: Image.Image, background: Sequence[int] | None = CLIP_MEAN_RGB
) -> Image.Image:
    """Pad an RGB image to a square, centred, as LLaVA-1.5's ``expand2square`` does.

    Neither the VLM nor the scorer should center-crop away the edge of a non-square cell; the
    background defaults to CLIP's mean colour (what LLaVA-1.5 uses).
    """
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    fill = tuple(int(c) for c in (background or CLIP_MEAN_RGB))
    canvas = Image.new(image.mode, (side, side), fill if image.mode == "RGB" else fill[0])
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas
