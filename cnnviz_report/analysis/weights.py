"""Conv kernels of every kind, brought to one drawable layout: (kh, kw, in_channels, filters)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .keras_graph import resolve_layer
from ..layers import LayerInfo


@dataclass(frozen=True)
class KernelView:
    kernel: np.ndarray  # float32 (kh, kw, in_channels, filters)
    note: str  # how the layer's own kernel was laid out to get here ("" when as stored)
    depthwise: np.ndarray | None = None  # separable convs: their depthwise kernels, (kh, kw, 1, in x multiplier)
    # per filter, which inputs it reads: filters with different numbers read different input
    # channels (depthwise: one channel each; grouped convs: one group's), so they are never
    # duplicates of each other however alike their kernels; None: every filter reads every input
    input_sets: np.ndarray | None = None


def separable_effective_kernel(depthwise: np.ndarray, pointwise: np.ndarray) -> np.ndarray:
    """The (kh, kw, in, out) kernel a separable conv applies: nothing non-linear sits between its
    depthwise and pointwise steps, so output channel o is one ordinary conv with kernel
    sum_m depthwise[..., c, m] * pointwise[0, 0, c * M + m, o]."""
    kh, kw, channels, multiplier = depthwise.shape
    mixing = pointwise.reshape(channels, multiplier, pointwise.shape[-1])
    return np.einsum("hwcm,cmo->hwco", depthwise.astype(np.float64), mixing.astype(np.float64)).astype(np.float32)


def _numpy(variable) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, dtype=np.float32)


def kernel_view(model, info: LayerInfo) -> KernelView:
    """The kernel of conv layer ``info`` as (kh, kw, in, out), whatever the conv kind."""
    layer = resolve_layer(model, info)
    kind = info.conv_kind
    if kind in ("separable", "separable1d"):
        depthwise, pointwise = _numpy(layer.depthwise_kernel), _numpy(layer.pointwise_kernel)
        if kind == "separable1d":
            depthwise, pointwise = depthwise[None], pointwise[None]
        kh, kw, channels, multiplier = depthwise.shape
        return KernelView(
            separable_effective_kernel(depthwise, pointwise),
            "a filter of a separable conv is one output channel: its kernel here is the layer's depthwise "
            "kernels weighted by that filter's column of the 1x1 pointwise kernel, which is exactly what the "
            "layer computes; the depthwise kernels themselves are drawn below",
            depthwise.reshape(kh, kw, 1, channels * multiplier))
    raw = _numpy(layer.kernel)
    if kind in ("conv1d", "transpose1d", "depthwise1d"):
        raw = raw[None]  # (k, in, out) -> (1, k, in, out)
    if kind in ("transpose", "transpose1d"):
        return KernelView(raw.transpose(0, 1, 3, 2), "transposed-conv kernel (kh, kw, out, in) shown as (in, out)")
    if kind in ("depthwise", "depthwise1d"):
        kh, kw, channels, multiplier = raw.shape
        note = ("depthwise kernels: one spatial kernel per output channel, which reads input channel "
                f"(filter // {multiplier}); duplicates are judged only among the {multiplier} filters of one input channel"
                if multiplier > 1 else "depthwise kernels: filter c reads input channel c alone, so no filter is judged a "
                "duplicate of another (they read different inputs)")
        return KernelView(raw.reshape(kh, kw, 1, channels * multiplier), note,
                          input_sets=np.arange(channels * multiplier) // multiplier)
    if kind in ("conv3d", "transpose3d"):
        if kind == "transpose3d":
            raw = raw.transpose(0, 1, 2, 4, 3)
        kd, kh, kw, cin, cout = raw.shape
        flat = raw.transpose(1, 0, 2, 3, 4).reshape(kh, kd * kw, cin, cout)
        return KernelView(flat, f"3-D kernels: the {kd} depth slices are laid side by side", input_sets=_groups(layer, cout))
    sets = _groups(layer, raw.shape[-1])
    if sets is None:
        return KernelView(raw, "")
    groups = int(sets[-1]) + 1
    return KernelView(raw, f"grouped conv: {groups} groups of {raw.shape[-1] // groups} filters, each group reading its "
                      f"own {raw.shape[-2]} of the {raw.shape[-2] * groups} input channels (the kernel's columns); "
                      "duplicates are judged only within a group", input_sets=sets)


def _groups(layer, filters: int) -> np.ndarray | None:
    """A grouped conv's (``groups`` > 1) filter groups: group g's filters read only its share of
    the input channels."""
    groups = int(getattr(layer, "groups", 1) or 1)
    return np.arange(filters) // (filters // groups) if groups > 1 and filters % groups == 0 else None
