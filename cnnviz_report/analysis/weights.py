"""Conv kernels of every kind, brought to one drawable layout: (kh, kw, in_channels, filters)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..inspection import LayerInfo, resolve_layer


@dataclass(frozen=True)
class KernelView:
    kernel: np.ndarray  # float32 (kh, kw, in_channels, filters)
    note: str  # how the layer's own kernel was laid out to get here ("" when as stored)


def _numpy(variable) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, dtype=np.float32)


def kernel_view(model, info: LayerInfo) -> KernelView:
    """The kernel of conv layer ``info`` as (kh, kw, in, out), whatever the conv kind."""
    layer = resolve_layer(model, info)
    kind = info.conv_kind
    if kind in ("separable", "separable1d"):
        raw = _numpy(layer.depthwise_kernel)
    else:
        raw = _numpy(layer.kernel)
    if kind in ("conv1d", "transpose1d", "depthwise1d", "separable1d"):
        raw = raw[None]  # (k, in, out) -> (1, k, in, out)
    if kind in ("transpose", "transpose1d"):
        return KernelView(raw.transpose(0, 1, 3, 2), "transposed-conv kernel (kh, kw, out, in) shown as (in, out)")
    if kind in ("depthwise", "depthwise1d", "separable", "separable1d"):
        kh, kw, channels, multiplier = raw.shape
        note = "depthwise kernels: one spatial kernel per input channel"
        if kind.startswith("separable"):
            note += f"; the 1x1 pointwise kernel {info.pointwise_shape} is not drawn"
        return KernelView(raw.reshape(kh, kw, 1, channels * multiplier), note)
    if kind in ("conv3d", "transpose3d"):
        if kind == "transpose3d":
            raw = raw.transpose(0, 1, 2, 4, 3)
        kd, kh, kw, cin, cout = raw.shape
        flat = raw.transpose(1, 0, 2, 3, 4).reshape(kh, kd * kw, cin, cout)
        return KernelView(flat, f"3-D kernels: the {kd} depth slices are laid side by side")
    return KernelView(raw, "")
