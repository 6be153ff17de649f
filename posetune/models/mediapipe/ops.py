"""TFLite operators as PyTorch modules, with TFLite's exact semantics.

Every module takes its (non-constant) input tensors positionally and returns one tensor.
Rank-4 activations are kept in PyTorch's NCHW layout (TFLite's are NHWC); the converter
rewrites layouts, axes and constant shapes once at load time, so these modules only see
NCHW feature maps. Padding for ``SAME`` is computed the way TensorFlow does it (the extra
pixel of an odd total goes after), and asymmetric padding is applied with ``F.pad``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGMOID", "LOGISTIC", "HARD_SWISH")


def apply_activation(x: torch.Tensor, kind: str) -> torch.Tensor:
    """A TFLite (fused) activation by name."""
    if kind == "NONE":
        return x
    if kind == "RELU":
        return F.relu(x)
    if kind == "RELU6":
        return F.hardtanh(x, 0.0, 6.0)
    if kind == "RELU_N1_TO_1":
        return F.hardtanh(x, -1.0, 1.0)
    if kind == "TANH":
        return torch.tanh(x)
    if kind in ("SIGMOID", "LOGISTIC"):
        return torch.sigmoid(x)
    if kind == "HARD_SWISH":
        return F.hardswish(x)
    raise ValueError(f"unsupported activation {kind}")


def apply_activation_(x: torch.Tensor, kind: str) -> torch.Tensor:
    """In-place :func:`apply_activation` for a tensor the op has just created (saves a copy)."""
    if kind == "RELU":
        return F.relu_(x)
    if kind == "RELU6":
        return F.hardtanh_(x, 0.0, 6.0)
    if kind == "RELU_N1_TO_1":
        return F.hardtanh_(x, -1.0, 1.0)
    return apply_activation(x, kind)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's ``SAME`` for one spatial axis."""
    effective = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _is_symmetric(pad: tuple[int, int, int, int]) -> bool:
    left, right, top, bottom = pad
    return left == right and top == bottom


class Conv2d(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D (``groups`` = input channels) with explicit (l, r, t, b) padding."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int],
                 dilation: tuple[int, int], groups: int, pad: tuple[int, int, int, int], activation: str):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        self.bias = nn.Parameter(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))) \
            if bias is not None else None
        self.stride = (int(stride[0]), int(stride[1]))
        self.dilation = (int(dilation[0]), int(dilation[1]))
        self.groups = int(groups)
        self.pad = tuple(int(p) for p in pad)
        self.activation = activation
        self._symmetric = _is_symmetric(self.pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._symmetric:
            y = F.conv2d(x, self.weight, self.bias, self.stride, (self.pad[2], self.pad[0]), self.dilation, self.groups)
        else:
            y = F.conv2d(F.pad(x, self.pad), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return apply_activation_(y, self.activation)

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return (f"{i * self.groups}->{o}, kernel=({kh}, {kw}), stride={self.stride}, pad={self.pad}, "
                f"groups={self.groups}, act={self.activation}")


class TransposeConv2d(nn.Module):
    """TRANSPOSE_CONV: PyTorch's transposed convolution, then TFLite's crop to ``out_hw``."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int],
                 crop: tuple[int, int], out_hw: tuple[int, int], activation: str):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))  # (I, O, kh, kw)
        self.bias = nn.Parameter(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))) \
            if bias is not None else None
        self.stride = (int(stride[0]), int(stride[1]))
        self.crop = (int(crop[0]), int(crop[1]))
        self.out_hw = (int(out_hw[0]), int(out_hw[1]))
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight, None, self.stride)
        top, left = self.crop
        h, w = self.out_hw
        short_h = top + h - y.shape[2]
        short_w = left + w - y.shape[3]
        if short_h > 0 or short_w > 0:  # TFLite leaves these output pixels at the bias
            y = F.pad(y, (0, max(short_w, 0), 0, max(short_h, 0)))
        y = y[:, :, top:top + h, left:left + w]
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return apply_activation(y, self.activation)


class Linear(nn.Module):
    """FULLY_CONNECTED. Rank-4 (NCHW) inputs are flattened in TFLite's NHWC order."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, activation: str, nchw_input: bool,
                 keep_num_dims: bool, nchw_output: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        self.bias = nn.Parameter(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))) \
            if bias is not None else None
        self.activation = activation
        self.nchw_input = nchw_input
        self.keep_num_dims = keep_num_dims
        self.nchw_output = nchw_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nchw_input:
            x = x.permute(0, 2, 3, 1)
        if self.keep_num_dims:
            y = F.linear(x, self.weight, self.bias)
            if self.nchw_output:
                y = y.permute(0, 3, 1, 2)
        else:
            y = F.linear(x.reshape(-1, self.weight.shape[1]), self.weight, self.bias)
        return apply_activation(y, self.activation)


class Activation(nn.Module):
    """RELU, RELU6, RELU_N1_TO_1, TANH, LOGISTIC, HARD_SWISH as a stand-alone op."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_activation(x, self.kind)

    def extra_repr(self) -> str:
        return self.kind


class PReLU(nn.Module):
    """PRELU: ``x if x >= 0 else alpha * x`` with a trainable, broadcastable ``alpha``."""

    def __init__(self, alpha: np.ndarray):
        super().__init__()
        self.alpha = nn.Parameter(torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, x * self.alpha)


class Binary(nn.Module):
    """ADD, SUB, MUL (with broadcasting and fused activation). ``const`` replaces one operand."""

    def __init__(self, kind: str, activation: str, const: np.ndarray | None = None, const_first: bool = False):
        super().__init__()
        self.kind = kind
        self.activation = activation
        self.const_first = const_first
        self.has_const = const is not None
        # constants come from the graph at build time: not part of the state dict
        self.register_buffer("const", torch.from_numpy(np.ascontiguousarray(const, dtype=np.float32))
                             if const is not None else torch.zeros(0), persistent=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if self.has_const:
            a, b = (self.const, a) if self.const_first else (a, self.const)
        assert b is not None
        if self.kind == "ADD":
            y = a + b
        elif self.kind == "SUB":
            y = a - b
        else:
            y = a * b
        return apply_activation_(y, self.activation)

    def extra_repr(self) -> str:
        return f"{self.kind}, act={self.activation}" + (", const" if self.has_const else "")


class Pad(nn.Module):
    """PAD / PADV2 with ``pad`` in ``F.pad`` order (last dimension first)."""

    def __init__(self, pad: tuple[int, ...], value: float = 0.0):
        super().__init__()
        self.pad = tuple(int(p) for p in pad)
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad, value=self.value)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


class Pool2d(nn.Module):
    """MAX_POOL_2D / AVERAGE_POOL_2D. TFLite averages over the in-bounds pixels only."""

    def __init__(self, kind: str, kernel: tuple[int, int], stride: tuple[int, int],
                 pad: tuple[int, int, int, int], activation: str):
        super().__init__()
        self.kind = kind
        self.kernel = (int(kernel[0]), int(kernel[1]))
        self.stride = (int(stride[0]), int(stride[1]))
        self.pad = tuple(int(p) for p in pad)
        self.activation = activation
        # PyTorch's own padding only when symmetric and at most half the kernel
        self._native = _is_symmetric(self.pad) and self.pad[2] <= self.kernel[0] // 2 \
            and self.pad[0] <= self.kernel[1] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "MAX":
            if self._native:
                y = F.max_pool2d(x, self.kernel, self.stride, (self.pad[2], self.pad[0]))
            else:
                y = F.max_pool2d(F.pad(x, self.pad, value=-math.inf), self.kernel, self.stride)
        elif self._native:
            y = F.avg_pool2d(x, self.kernel, self.stride, (self.pad[2], self.pad[0]), count_include_pad=False)
        else:
            total = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride)
            ones = F.pad(torch.ones_like(x[:1, :1]), self.pad)
            count = F.avg_pool2d(ones, self.kernel, self.stride)
            y = total / count
        return apply_activation(y, self.activation)

    def extra_repr(self) -> str:
        return f"{self.kind}, kernel={self.kernel}, stride={self.stride}, pad={self.pad}"


def resize_source_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TFLite RESIZE_BILINEAR sampling for one axis: (lower index, upper index, upper weight)."""
    if align_corners and out_size > 1:
        scale = np.float32((in_size - 1) / (out_size - 1))
    else:
        scale = np.float32(in_size / out_size)
    o = np.arange(out_size, dtype=np.float32)
    src = (o + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel_centers else o * scale
    lo_f = np.floor(src)
    lo = np.clip(lo_f, 0, in_size - 1).astype(np.int64)
    hi = np.minimum(np.ceil(src), in_size - 1).astype(np.int64) if half_pixel_centers \
        else np.minimum(lo_f.astype(np.int64) + 1, in_size - 1)
    hi = np.maximum(hi, 0)
    return lo, hi, (src - lo_f).astype(np.float32)


def nearest_source_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """TFLite RESIZE_NEAREST_NEIGHBOR sampling for one axis."""
    if align_corners and out_size > 1:
        scale = np.float32((in_size - 1) / (out_size - 1))
    else:
        scale = np.float32(in_size / out_size)
    offset = np.float32(0.5 if half_pixel_centers else 0.0)
    src = (np.arange(out_size, dtype=np.float32) + offset) * scale
    # TfLiteRound rounds half away from zero; src >= 0 here
    idx = np.floor(src + np.float32(0.5)) if align_corners else np.floor(src)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    return np.maximum(idx, 0)


class Resize(nn.Module):
    """RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR to a fixed ``(out_h, out_w)``.

    Bilinear with ``half_pixel_centers`` is ``F.interpolate(align_corners=False)`` and with
    ``align_corners`` is ``F.interpolate(align_corners=True)``; TF1's legacy mode (neither flag)
    and nearest neighbour use precomputed TFLite sampling indices.
    """

    def __init__(self, mode: str, in_hw: tuple[int, int], out_hw: tuple[int, int], align_corners: bool,
                 half_pixel_centers: bool):
        super().__init__()
        self.mode = mode
        self.out_hw = (int(out_hw[0]), int(out_hw[1]))
        self.align_corners = bool(align_corners)
        self.half_pixel_centers = bool(half_pixel_centers)
        self.use_interpolate = mode == "bilinear" and (self.half_pixel_centers != self.align_corners)
        (in_h, in_w), (out_h, out_w) = in_hw, out_hw
        if mode == "bilinear":
            y0, y1, wy = resize_source_indices(in_h, out_h, align_corners, half_pixel_centers)
            x0, x1, wx = resize_source_indices(in_w, out_w, align_corners, half_pixel_centers)
        else:
            y0 = y1 = nearest_source_indices(in_h, out_h, align_corners, half_pixel_centers)
            x0 = x1 = nearest_source_indices(in_w, out_w, align_corners, half_pixel_centers)
            wy, wx = np.zeros(out_h, np.float32), np.zeros(out_w, np.float32)
        for name, arr in (("y0", y0), ("y1", y1), ("wy", wy), ("x0", x0), ("x1", x1), ("wx", wx)):
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(arr)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_interpolate:
            return F.interpolate(x, size=self.out_hw, mode="bilinear", align_corners=self.align_corners)
        if self.mode == "nearest":
            return x.index_select(2, self.y0).index_select(3, self.x0)
        return resize_gather(x, self.y0, self.y1, self.wy, self.x0, self.x1, self.wx)

    def extra_repr(self) -> str:
        return (f"{self.mode}, out={self.out_hw}, align_corners={self.align_corners}, "
                f"half_pixel_centers={self.half_pixel_centers}")


def resize_gather(x: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor, wy: torch.Tensor, x0: torch.Tensor,
                  x1: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    """Separable bilinear interpolation with explicit sampling indices and weights (NCHW)."""
    top = x.index_select(2, y0)
    bottom = x.index_select(2, y1)
    wy = wy.view(1, 1, -1, 1)
    rows = top + (bottom - top) * wy
    left = rows.index_select(3, x0)
    right = rows.index_select(3, x1)
    return left + (right - left) * wx.view(1, 1, 1, -1)


class Reshape(nn.Module):
    """RESHAPE keeping the batch dimension free (the TFLite graphs hard-code batch 1).

    Rank-4 tensors are reshaped in TFLite's NHWC element order.
    """

    def __init__(self, shape: tuple[int, ...], keep_batch: bool, nchw_input: bool, nchw_output: bool):
        super().__init__()
        self.shape = [int(s) for s in shape]
        self.keep_batch = keep_batch
        self.nchw_input = nchw_input
        self.nchw_output = nchw_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nchw_input:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape([-1] + self.shape[1:]) if self.keep_batch else x.reshape(self.shape)
        if self.nchw_output:
            y = y.permute(0, 3, 1, 2)
        return y

    def extra_repr(self) -> str:
        return f"shape={self.shape}, keep_batch={self.keep_batch}"


class Concat(nn.Module):
    """CONCATENATION along ``dim`` (already mapped to the internal layout)."""

    def __init__(self, dim: int, activation: str, consts: dict[int, np.ndarray] | None = None, num_inputs: int = 0):
        super().__init__()
        self.dim = int(dim)
        self.activation = activation
        consts = consts or {}
        self.num_inputs = int(num_inputs)
        self.const_positions = sorted(consts)
        for pos, arr in consts.items():
            self.register_buffer(f"const{pos}", torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)),
                                 persistent=False)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.const_positions:
            items = list(xs)
            for pos in self.const_positions:
                c = getattr(self, f"const{pos}")
                items.insert(pos, c.expand((items[0].shape[0],) + tuple(c.shape[1:])))
            xs = tuple(items)
        return apply_activation(torch.cat(xs, dim=self.dim), self.activation)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Mean(nn.Module):
    """MEAN over ``dims`` (internal layout); ``nhwc_first`` when the result order needs NHWC."""

    def __init__(self, dims: tuple[int, ...], keepdim: bool, nhwc_first: bool):
        super().__init__()
        self.dims = [int(d) for d in dims]
        self.keepdim = bool(keepdim)
        self.nhwc_first = bool(nhwc_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc_first:
            x = x.permute(0, 2, 3, 1)
        return x.mean(dim=self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, keepdim={self.keepdim}"


class Softmax(nn.Module):
    """SOFTMAX over the TFLite last axis (channels) with ``beta``."""

    def __init__(self, dim: int, beta: float):
        super().__init__()
        self.dim = int(dim)
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x * self.beta if self.beta != 1.0 else x, dim=self.dim)


class DepthToSpace(nn.Module):
    """DEPTH_TO_SPACE (TensorFlow's DCR order: channel = (i * block + j) * C_out + c), NCHW in/out."""

    def __init__(self, block: int):
        super().__init__()
        self.block = int(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        r = self.block
        y = x.reshape(b, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
        return y.reshape(b, c // (r * r), h * r, w * r)

    def extra_repr(self) -> str:
        return f"block={self.block}"
