"""Numbers and shapes as the pages, summary.md and the console show them (one way everywhere)."""

from __future__ import annotations


def fmt_int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


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
