"""Numbers and shapes as the pages, summary.md and the console show them (one way everywhere)."""

from __future__ import annotations


def fmt_int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def fmt_probability(value: float | None, missing: str = "") -> str:
    """0.9937 -> '99.4%'; None (a class the model did not rank in its top 5) -> ``missing``."""
    return missing if value is None else f"{value:.1%}"


def fmt_shape(shape) -> str:
    if shape is None or shape == ():
        return ""
    if shape and isinstance(shape[0], tuple):
        return ", ".join(fmt_shape(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def fmt_axes(values: tuple | None) -> str:
    """(5, 5) -> '5'; (3, 5) -> '3×5'; None -> ''."""
    if not values:
        return ""
    return str(values[0]) if len(set(values)) == 1 else "×".join(str(v) for v in values)


PREPROCESS_WORDS = {
    "raw": "none: pixels 0..255 as they are",
    "unit": "pixels / 255 (0..1)",
    "tf": "pixels / 127.5 - 1 (-1..1)",
    "caffe": "caffe: RGB to BGR, ImageNet channel means subtracted",
    "torch": "torch: pixels / 255, then ImageNet channel means and std",
    "application": "the application's own preprocess_input",
}


def preprocess_words(mode: str) -> str:
    return f"{mode} ({PREPROCESS_WORDS[mode]})" if mode in PREPROCESS_WORDS else mode
