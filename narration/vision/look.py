"""How the photo looks, measured directly from the pixels: dominant named colours, light, sharpness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

ANALYSIS_SIDE = 256


@dataclass(frozen=True)
class Look:
    colours: tuple[tuple[str, float], ...]  # (name, share of the picture), largest first
    brightness: float  # mean luminance 0..1
    contrast: float  # luminance standard deviation 0..~0.5
    sharpness: float  # mean gradient energy of the luminance, scale-normalised
    saturation: float  # mean HSV saturation 0..1
    flat_share: float = 0.0  # pixels identical to their neighbours; camera noise keeps this low in photos

    @property
    def graphic(self) -> bool:
        """Mostly perfectly flat areas: a drawing, chart or screenshot rather than a camera photo."""
        return not self.plain and self.brightness >= 0.12 and self.flat_share >= 0.8

    @property
    def light(self) -> str:
        """A word for the light: very dark, dim, even, bright or very bright."""
        if self.brightness < 0.12:
            return "very dark"
        if self.brightness < 0.3:
            return "dim"
        if self.brightness > 0.85:
            return "very bright"
        if self.brightness > 0.65:
            return "bright"
        return "even"

    @property
    def plain(self) -> bool:
        """Almost no detail at all: one flat colour or a very smooth gradient."""
        return self.contrast < 0.03 or (self.sharpness < 0.002 and self.contrast < 0.08)

    @property
    def blurry(self) -> bool:
        return not self.plain and self.sharpness < 0.012

    @property
    def black_and_white(self) -> bool:
        return self.saturation < 0.06


def analyse(image: Image.Image) -> Look:
    small = image.convert("RGB")
    small.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    names = _colour_names(hsv)
    unique, counts = np.unique(names, return_counts=True)
    shares = sorted(((str(n), c / names.size) for n, c in zip(unique, counts, strict=True)), key=lambda t: -t[1])
    return Look(
        colours=tuple((n, float(s)) for n, s in shares),
        brightness=float(luma.mean()),
        contrast=float(luma.std()),
        sharpness=_sharpness(luma),
        saturation=float(hsv[..., 1].mean()),
        flat_share=_flat_share(np.asarray(small, dtype=np.int16)),
    )


def _flat_share(rgb: np.ndarray) -> float:
    if min(rgb.shape[:2]) < 2:
        return 1.0
    dx = np.abs(np.diff(rgb, axis=1)).max(axis=-1)[:-1, :]
    dy = np.abs(np.diff(rgb, axis=0)).max(axis=-1)[:, :-1]
    return float(((dx <= 1) & (dy <= 1)).mean())


def _sharpness(luma: np.ndarray) -> float:
    """Variance of a Laplacian: high for crisp edges and fine texture, low for blur."""
    if min(luma.shape) < 3:
        return 0.0
    lap = (
        -4 * luma[1:-1, 1:-1] + luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]
    )
    return float(lap.var() * 10)


def _colour_names(hsv: np.ndarray) -> np.ndarray:
    """Name every pixel with one of a dozen everyday colour words, from hue, saturation and value."""
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    names = np.full(h.shape, "grey", dtype=object)
    hue_names = np.select(
        [h < 15, h < 40, h < 68, h < 165, h < 195, h < 255, h < 290, h < 335],
        ["red", "orange", "yellow", "green", "turquoise", "blue", "purple", "pink"],
        default="red",
    )
    chromatic = s >= 0.2
    names = np.where(chromatic, hue_names, names)
    # Dark oranges, reds and yellows are what people call brown; pale warm tones are beige; light reds pink.
    warm = (h < 50) | (h >= 345)
    names = np.where(chromatic & warm & (v < 0.6) & (h >= 8) & (h < 50), "brown", names)
    names = np.where(chromatic & (h < 15) & (s < 0.5) & (v > 0.75), "pink", names)
    names = np.where(~chromatic & (s >= 0.1) & (h >= 15) & (h < 55) & (v > 0.6), "beige", names)
    names = np.where(~chromatic & (v > 0.85) & (s < 0.1), "white", names)
    names = np.where(v < 0.16, "black", names)
    names = np.where(~chromatic & (v >= 0.16) & (v < 0.3), "dark grey", names)
    return names
