"""TFLite graph -> trainable PyTorch module.

:func:`convert_graph` turns a :class:`~posetune.models.mediapipe.tflite_reader.TFLiteGraph` into
a :class:`TFLiteModule`:

* constant sub-graphs (fp16 ``DEQUANTIZE``, sparse ``DENSIFY``, int8 weight dequantisation) are
  evaluated once at load time, so fp16/sparse weights become dense float32 tensors;
* convolution / depthwise / transposed-convolution / fully-connected weights and biases and PReLU
  slopes become trainable ``nn.Parameter``s (OHWI -> OIHW, (1, kh, kw, C) -> (C, 1, kh, kw));
  other constants become buffers;
* rank-4 activations run in NCHW (the input is NCHW too); axes, paddings and constant shapes are
  rewritten once; RESHAPE targets keep the batch dimension free so batches > 1 work;
* a zero ``PAD`` feeding a single convolution is folded into the convolution's padding.

Rank-4 outputs are returned in NCHW (``(B, C, H, W)``, e.g. BlazePose heatmaps ``(B, 39, 64, 64)``)
unless ``output_layout="nhwc"`` asks for TFLite's layout. Other outputs keep TFLite's shapes
with a free batch dimension (e.g. landmarks ``(B, 195)``).

The forward pass is a plain loop over the converted ops in TFLite's execution order: it traces
(``torch.jit.trace``, ``torch.onnx.export``) into a flat graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from posetune.errors import ModelError
from posetune.models.mediapipe import ops as O
from posetune.models.mediapipe.tflite_reader import TensorInfo, TFLiteGraph

#: ops evaluated at load time when all their inputs are constants
FOLDABLE = ("DEQUANTIZE", "DENSIFY", "RESHAPE")
#: ops the converter can run (see ``_BUILDERS``)
SUPPORTED_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "PAD", "PADV2",
    "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE", "LOGISTIC", "TANH",
    "RELU", "RELU6", "RELU_N1_TO_1", "HARD_SWISH", "PRELU", "CONCATENATION", "MEAN", "SOFTMAX", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "DENSIFY",
)
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


# ----------------------------------------------------------------------------- constants
def densify(t: TensorInfo) -> np.ndarray:
    """Dense array of a TFLite sparse tensor (CSR dimensions, optional block sparsity)."""
    sp = t.sparsity
    assert sp is not None and t.data is not None
    shape = list(t.shape)
    rank = len(shape)
    order = sp.traversal_order or list(range(rank))
    # coordinates along each traversal level for every stored value, built level by level
    coords: list[np.ndarray] = []
    prev = np.zeros(1, dtype=np.int64)
    for meta in sp.dim_metadata:
        if meta[0] == "DENSE":
            size = int(meta[1])
            coords = [np.repeat(c, size) for c in coords]
            level = np.tile(np.arange(size, dtype=np.int64), len(prev))
            prev = np.repeat(prev, size) * size + level
        else:
            segments, indices = meta[1], meta[2]
            starts, ends = segments[prev], segments[prev + 1]
            counts = ends - starts
            coords = [np.repeat(c, counts) for c in coords]
            offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
            positions = np.arange(int(counts.sum()), dtype=np.int64) + offsets
            level = indices[positions]
            prev = positions
        coords.append(level)
    if len(coords[0]) != t.data.size:
        raise ModelError(f"sparse tensor '{t.name}' stores {t.data.size} values but its metadata describes "
                         f"{len(coords[0])}", hint="the model file is corrupt; re-fetch it")
    orig = [np.zeros_like(coords[0]) for _ in range(rank)]
    for level, dim in enumerate(order[:rank]):
        orig[dim] = coords[level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        dim = sp.block_map[block]
        block_size = int(sp.dim_metadata[level][1])
        orig[dim] = orig[dim] * block_size + coords[level]
    dense = np.zeros(shape, dtype=t.data.dtype)
    dense[tuple(orig)] = t.data
    return dense


def dequantize(t: TensorInfo, value: np.ndarray) -> np.ndarray:
    """float32 value of a constant fp16 / int8 / uint8 (per-tensor or per-axis) tensor."""
    if value.dtype in (np.float16, np.float32, np.float64):
        return value.astype(np.float32)
    q = t.quantization
    if q is None:
        raise ModelError(f"DEQUANTIZE of tensor '{t.name}' ({t.dtype}) without quantisation parameters",
                         hint="the model file is unsupported or corrupt")
    scale = q.scale.astype(np.float32)
    zero = q.zero_point.astype(np.float32) if q.zero_point.size else np.zeros_like(scale)
    if scale.size > 1:
        shape = [1] * value.ndim
        shape[q.quantized_dimension] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)


def nchw_const(arr: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against an NHWC rank-4 tensor, made to broadcast against NCHW."""
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim > 4:
        raise ModelError(f"constant of rank {arr.ndim} cannot broadcast against a feature map")
    arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------- the module
class TFLiteModule(nn.Module):
    """A converted TFLite graph. ``forward(*inputs)`` returns a tuple in ``output_names`` order.

    Inputs of rank 4 are NCHW float tensors. ``run(x, outputs=[...])`` computes only the
    named tensors (any tensor the module computes, by TFLite name) and only the ops they need,
    e.g. BlazePose landmarks without the full-resolution segmentation decoder.

    Attributes: ``input_names``, ``output_names`` (the default outputs), ``output_shapes`` (batch 1,
    in the returned layout), ``layer_tensors`` / ``layer_shapes`` (layer name -> the TFLite tensor
    it computes and its TFLite shape), ``source``.
    """

    def __init__(self, layers: dict[str, nn.Module], steps: Sequence[tuple[str, tuple[int, ...], int]],
                 input_indices: Sequence[int], output_indices: Sequence[int], tensor_names: dict[int, str],
                 tensor_shapes: dict[int, tuple[int, ...]], output_layout: str = "nchw", source: str = ""):
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.steps = [(str(n), tuple(int(i) for i in ins), int(o)) for n, ins, o in steps]
        self.input_indices = [int(i) for i in input_indices]
        self.output_indices = [int(i) for i in output_indices]
        self.tensor_names = {int(k): str(v) for k, v in tensor_names.items()}
        self.tensor_shapes = {int(k): tuple(int(d) for d in v) for k, v in tensor_shapes.items()}
        self.output_layout = output_layout
        self.source = source
        self._index = {v: k for k, v in self.tensor_names.items()}
        self._plans: dict[tuple[int, ...], tuple[list[tuple[str, tuple[int, ...], int]], list[tuple[int, ...]]]] = {}

    # --- names and shapes --------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [self.tensor_names[i] for i in self.input_indices]

    @property
    def output_names(self) -> list[str]:
        return [self.tensor_names[i] for i in self.output_indices]

    def shape_of(self, name: str) -> tuple[int, ...]:
        """Shape (batch 1) of a tensor as this module returns it (rank 4: NCHW unless 'nhwc')."""
        s = self.tensor_shapes[self.index_of(name)]
        return s if len(s) != 4 or self.output_layout == "nhwc" else (s[0], s[3], s[1], s[2])

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [self.shape_of(n) for n in self.output_names]

    @property
    def layer_tensors(self) -> dict[str, str]:
        return {name: self.tensor_names[out] for name, _, out in self.steps}

    @property
    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: self.tensor_shapes[out] for name, _, out in self.steps}

    def index_of(self, name: str | int) -> int:
        if isinstance(name, int):
            return name
        if name not in self._index:
            raise ModelError(f"tensor '{name}' is not computed by this converted model", where=self.source,
                             hint=f"its outputs are: {', '.join(self.output_names)}")
        return self._index[name]

    # --- execution ---------------------------------------------------------------------
    def plan(self, outputs: Sequence[str | int] | None = None) -> list[str]:
        """Names of the layers run to compute ``outputs`` (default: all outputs), in order."""
        return [name for name, _, _ in self._plan(self._targets(outputs))[0]]

    def _targets(self, outputs: Sequence[str | int] | None) -> tuple[int, ...]:
        return tuple(self.output_indices) if outputs is None else tuple(self.index_of(n) for n in outputs)

    def _plan(self, targets: tuple[int, ...]):
        plan = self._plans.get(targets)
        if plan is not None:
            return plan
        producer = {out: k for k, (_, _, out) in enumerate(self.steps)}
        keep: set[int] = set()
        stack = list(targets)
        while stack:
            t = stack.pop()
            k = producer.get(t)
            if k is None or k in keep:
                if k is None and t not in self.input_indices:
                    raise ModelError(f"tensor '{self.tensor_names.get(t, t)}' is not computed by this model",
                                     where=self.source)
                continue
            keep.add(k)
            stack.extend(self.steps[k][1])
        steps = [s for k, s in enumerate(self.steps) if k in keep]
        # release intermediate values after their last use (lower peak memory in inference)
        last_use: dict[int, int] = {}
        for k, (_, ins, _) in enumerate(steps):
            for i in ins:
                last_use[i] = k
        releases = [tuple(i for i in set(ins) if last_use[i] == k and i not in targets)
                    for k, (_, ins, _) in enumerate(steps)]
        self._plans[targets] = (steps, releases)
        return steps, releases

    def run(self, *inputs: torch.Tensor, outputs: Sequence[str | int] | None = None) -> tuple[torch.Tensor, ...]:
        """The tensors named by ``outputs`` (default: ``output_names``), running only their ops."""
        if len(inputs) != len(self.input_indices):
            raise ModelError(f"the model takes {len(self.input_indices)} input(s) ({', '.join(self.input_names)}), "
                             f"got {len(inputs)}")
        targets = self._targets(outputs)
        steps, releases = self._plan(targets)
        values: dict[int, torch.Tensor] = dict(zip(self.input_indices, inputs))
        for (name, ins, out), release in zip(steps, releases):
            values[out] = self.layers[name](*[values[i] for i in ins])
            for i in release:
                del values[i]
        nhwc = self.output_layout == "nhwc"
        return tuple(values[i].permute(0, 2, 3, 1) if nhwc and values[i].ndim == 4 else values[i] for i in targets)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All default outputs, in ``output_names`` order."""
        return self.run(*inputs)

    def forward_dict(self, *inputs: torch.Tensor,
                     outputs: Sequence[str | int] | None = None) -> dict[str, torch.Tensor]:
        """Outputs by TFLite tensor name."""
        targets = self._targets(outputs)
        return dict(zip((self.tensor_names[i] for i in targets), self.run(*inputs, outputs=list(targets))))

    def describe(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for layer in self.layers.values():
            counts[type(layer).__name__] = counts.get(type(layer).__name__, 0) + 1
        return {"source": self.source, "inputs": self.input_names,
                "outputs": {n: list(s) for n, s in zip(self.output_names, self.output_shapes)},
                "layers": counts, "parameters": sum(p.numel() for p in self.parameters())}


# ----------------------------------------------------------------------------- conversion
@dataclass
class _Ctx:
    graph: TFLiteGraph
    consts: dict[int, np.ndarray]
    folded_pads: dict[int, tuple[int, int, int, int]]  # conv op index -> extra (l, r, t, b)

    def shape(self, i: int) -> tuple[int, ...]:
        return self.graph.tensors[i].shape

    def is_const(self, i: int) -> bool:
        return i in self.consts

    def nchw(self, i: int) -> bool:
        return len(self.shape(i)) == 4 and not self.is_const(i)

    def const(self, i: int, what: str, op_name: str) -> np.ndarray:
        if i not in self.consts:
            raise ModelError(f"{op_name}: {what} ('{self.graph.tensors[i].name}') is computed at run time; only "
                             f"constant {what}s are supported", where=self.graph.source)
        return self.consts[i]

    def name(self, i: int) -> str:
        return self.graph.tensors[i].name


def _opt(op: Any, key: str, default: Any = None) -> Any:
    return op.options.get(key, default)


def _conv(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x, w_idx = op.inputs[0], op.inputs[1]
    b_idx = op.inputs[2] if len(op.inputs) > 2 else -1
    w = ctx.const(w_idx, "filter", op.op)
    bias = ctx.consts.get(b_idx) if b_idx >= 0 else None
    _, in_h, in_w, cin = ctx.shape(x)
    stride = (_opt(op, "stride_h", 1), _opt(op, "stride_w", 1))
    dilation = (_opt(op, "dilation_hfactor", 1), _opt(op, "dilation_wfactor", 1))
    extra = ctx.folded_pads.get(op.index, (0, 0, 0, 0))  # a PAD folded into this conv; x is its (padded) output
    if op.op == "DEPTHWISE_CONV_2D":
        _, kh, kw, cout = w.shape
        weight = w.transpose(3, 0, 1, 2)  # (1, kh, kw, C*m) -> (C*m, 1, kh, kw)
        groups = cin
    else:
        cout, kh, kw, wcin = w.shape
        weight = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        if cin % wcin:
            raise ModelError(f"{op.op}: input has {cin} channels, filter {wcin}", where=ctx.graph.source)
        groups = cin // wcin
    if _opt(op, "padding") == "SAME":
        top, bottom = O.same_padding(in_h, kh, stride[0], dilation[0])
        left, right = O.same_padding(in_w, kw, stride[1], dilation[1])
    else:
        top = bottom = left = right = 0
    pad = (left + extra[0], right + extra[1], top + extra[2], bottom + extra[3])
    module = O.Conv2d(weight, bias, stride, dilation, groups, pad, _opt(op, "fused_activation_function", "NONE"))
    return module, [x]


def _transpose_conv(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    shape_idx, w_idx, x = op.inputs[0], op.inputs[1], op.inputs[2]
    b_idx = op.inputs[3] if len(op.inputs) > 3 else -1
    out_shape = [int(v) for v in ctx.const(shape_idx, "output shape", op.op)]
    w = ctx.const(w_idx, "filter", op.op)  # (O, kh, kw, I)
    bias = ctx.consts.get(b_idx) if b_idx >= 0 else None
    _, kh, kw, _ = w.shape
    stride = (_opt(op, "stride_h", 1), _opt(op, "stride_w", 1))
    if _opt(op, "padding") == "SAME":
        crop = (O.same_padding(out_shape[1], kh, stride[0])[0], O.same_padding(out_shape[2], kw, stride[1])[0])
    else:
        crop = (0, 0)
    module = O.TransposeConv2d(w.transpose(3, 0, 1, 2), bias, stride, crop, (out_shape[1], out_shape[2]),
                               _opt(op, "fused_activation_function", "NONE"))
    return module, [x]


def _fully_connected(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x, w_idx = op.inputs[0], op.inputs[1]
    b_idx = op.inputs[2] if len(op.inputs) > 2 else -1
    if _opt(op, "weights_format", 0) != 0:
        raise ModelError("FULLY_CONNECTED with shuffled int8 weights is not supported", where=ctx.graph.source)
    w = ctx.const(w_idx, "weight", op.op)
    bias = ctx.consts.get(b_idx) if b_idx >= 0 else None
    keep = bool(_opt(op, "keep_num_dims", False))
    nchw_in = ctx.nchw(x)
    module = O.Linear(w, bias, _opt(op, "fused_activation_function", "NONE"), nchw_in, keep,
                      keep and nchw_in)
    return module, [x]


def _binary(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    a, b = op.inputs[0], op.inputs[1]
    act = _opt(op, "fused_activation_function", "NONE")
    out_nchw = len(ctx.shape(op.outputs[0])) == 4
    for i in (a, b):
        if not ctx.is_const(i) and out_nchw and len(ctx.shape(i)) != 4:
            raise ModelError(f"{op.op}: broadcasting a rank-{len(ctx.shape(i))} tensor against a feature map is "
                             "not supported", where=ctx.graph.source)
    if ctx.is_const(a) or ctx.is_const(b):
        const_first = ctx.is_const(a)
        c = ctx.consts[a if const_first else b].astype(np.float32)
        if out_nchw:
            c = nchw_const(c)
        return O.Binary(op.op, act, c, const_first), [b if const_first else a]
    return O.Binary(op.op, act), [a, b]


def _pad(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x = op.inputs[0]
    pads = np.asarray(ctx.const(op.inputs[1], "paddings", op.op), dtype=np.int64).reshape(-1, 2)
    value = 0.0
    if op.op == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = float(np.asarray(ctx.const(op.inputs[2], "pad value", op.op)).reshape(-1)[0])
    if pads[0].any():
        raise ModelError("PAD of the batch dimension is not supported", where=ctx.graph.source)
    if ctx.nchw(x):
        pads = pads[[0, 3, 1, 2]]
    flat: list[int] = []
    for before, after in pads[::-1][:-1]:  # F.pad order: last dimension first; batch never padded
        flat += [int(before), int(after)]
    while len(flat) > 2 and flat[-1] == 0 and flat[-2] == 0:
        flat = flat[:-2]
    return O.Pad(tuple(flat), value), [x]


def _pool(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x = op.inputs[0]
    _, in_h, in_w, _ = ctx.shape(x)
    k = (_opt(op, "filter_height"), _opt(op, "filter_width"))
    s = (_opt(op, "stride_h", 1), _opt(op, "stride_w", 1))
    if _opt(op, "padding") == "SAME":
        top, bottom = O.same_padding(in_h, k[0], s[0])
        left, right = O.same_padding(in_w, k[1], s[1])
    else:
        top = bottom = left = right = 0
    kind = "MAX" if op.op == "MAX_POOL_2D" else "AVG"
    return O.Pool2d(kind, k, s, (left, right, top, bottom), _opt(op, "fused_activation_function", "NONE")), [x]


def _resize(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x = op.inputs[0]
    size = [int(v) for v in ctx.const(op.inputs[1], "size", op.op)]
    _, in_h, in_w, _ = ctx.shape(x)
    mode = "bilinear" if op.op == "RESIZE_BILINEAR" else "nearest"
    return O.Resize(mode, (in_h, in_w), (size[0], size[1]), bool(_opt(op, "align_corners", False)),
                    bool(_opt(op, "half_pixel_centers", False))), [x]


def _same_order(shape: tuple[int, ...]) -> bool:
    """NCHW and NHWC hold a rank-4 tensor's elements in the same order (C == 1 or H * W == 1)."""
    return shape[3] == 1 or shape[1] * shape[2] == 1


def _reshape(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x = op.inputs[0]
    in_shape, out_shape = ctx.shape(x), ctx.shape(op.outputs[0])
    if not out_shape or any(s < 0 for s in out_shape):
        src = np.asarray(ctx.const(op.inputs[1], "shape", op.op)) if len(op.inputs) > 1 and op.inputs[1] >= 0 \
            else np.asarray(_opt(op, "new_shape", []))
        out_shape = np.empty(int(np.prod(in_shape)), dtype=np.int8).reshape([int(v) for v in src]).shape
    keep_batch = len(in_shape) >= 1 and len(out_shape) >= 1 and in_shape[0] == 1 and out_shape[0] == 1
    nchw_in = ctx.nchw(x) and not _same_order(in_shape)
    nchw_out = len(out_shape) == 4 and not _same_order(out_shape)
    target = tuple(out_shape)
    if len(out_shape) == 4 and not nchw_out:  # trivially ordered: reshape straight to NCHW
        target = (out_shape[0], out_shape[3], out_shape[1], out_shape[2])
    return O.Reshape(target, keep_batch, nchw_in, nchw_out), [x]


def _activation(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    return O.Activation(op.op), [op.inputs[0]]


def _prelu(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x = op.inputs[0]
    alpha = ctx.const(op.inputs[1], "alpha", op.op).astype(np.float32)
    if ctx.nchw(x):
        alpha = nchw_const(alpha)
    return O.PReLU(alpha), [x]


def _concat(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    out_shape = ctx.shape(op.outputs[0])
    rank = len(out_shape)
    axis = int(_opt(op, "axis", 0)) % rank
    if rank == 4:
        axis = _NHWC_TO_NCHW_AXIS[axis]
    consts: dict[int, np.ndarray] = {}
    runtime = []
    for pos, i in enumerate(op.inputs):
        if ctx.is_const(i):
            c = ctx.consts[i].astype(np.float32)
            consts[pos] = nchw_const(c) if rank == 4 else c
        else:
            runtime.append(i)
    return O.Concat(axis, _opt(op, "fused_activation_function", "NONE"), consts, len(op.inputs)), runtime


def _mean(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x = op.inputs[0]
    rank = len(ctx.shape(x))
    axes = sorted({int(a) % rank for a in np.asarray(ctx.const(op.inputs[1], "axes", op.op)).reshape(-1)})
    keep = bool(_opt(op, "keep_dims", False))
    if not ctx.nchw(x):
        return O.Mean(tuple(axes), keep, False), [x]
    kept_nhwc = [a for a in range(4) if a not in axes]
    kept_nchw = [a for a in (0, 3, 1, 2) if a not in axes]
    if keep or kept_nhwc == kept_nchw:
        return O.Mean(tuple(_NHWC_TO_NCHW_AXIS[a] for a in axes), keep, False), [x]
    return O.Mean(tuple(axes), keep, True), [x]


def _softmax(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    x = op.inputs[0]
    return O.Softmax(1 if ctx.nchw(x) else -1, float(_opt(op, "beta", 1.0))), [x]


def _depth_to_space(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    return O.DepthToSpace(int(_opt(op, "block_size"))), [op.inputs[0]]


def _runtime_dequantize(ctx: _Ctx, op: Any) -> tuple[nn.Module, list[int]]:
    raise ModelError(f"DEQUANTIZE of the activation '{ctx.name(op.inputs[0])}': quantised (int8/fp16) activations "
                     "are not supported", where=ctx.graph.source, hint="use the float model")


_BUILDERS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "TRANSPOSE_CONV": _transpose_conv,
    "FULLY_CONNECTED": _fully_connected, "ADD": _binary, "SUB": _binary, "MUL": _binary, "PAD": _pad, "PADV2": _pad,
    "MAX_POOL_2D": _pool, "AVERAGE_POOL_2D": _pool, "RESIZE_BILINEAR": _resize, "RESIZE_NEAREST_NEIGHBOR": _resize,
    "RESHAPE": _reshape, "LOGISTIC": _activation, "TANH": _activation, "RELU": _activation, "RELU6": _activation,
    "RELU_N1_TO_1": _activation, "HARD_SWISH": _activation, "PRELU": _prelu, "CONCATENATION": _concat,
    "MEAN": _mean, "SOFTMAX": _softmax, "DEPTH_TO_SPACE": _depth_to_space, "DEQUANTIZE": _runtime_dequantize,
}
_SHORT = {
    "CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dwconv", "TRANSPOSE_CONV": "tconv", "FULLY_CONNECTED": "fc",
    "MAX_POOL_2D": "maxpool", "AVERAGE_POOL_2D": "avgpool", "RESIZE_BILINEAR": "resize",
    "RESIZE_NEAREST_NEIGHBOR": "resize", "CONCATENATION": "concat", "DEPTH_TO_SPACE": "d2s", "LOGISTIC": "sigmoid",
}


def _fold_constant(graph: TFLiteGraph, op: Any, consts: dict[int, np.ndarray]) -> np.ndarray:
    t_in = graph.tensors[op.inputs[0]]
    if op.op == "DENSIFY":
        return densify(t_in)
    value = consts[op.inputs[0]]
    if op.op == "DEQUANTIZE":
        return dequantize(t_in, value)
    return value.reshape(graph.tensors[op.outputs[0]].shape)  # RESHAPE


def _resolve(graph: TFLiteGraph, names: Sequence[str | int]) -> list[int]:
    out = []
    for n in names:
        try:
            out.append(graph.tensor(n).index)
        except (KeyError, IndexError):
            known = ", ".join(graph.tensors[i].name for i in graph.outputs)
            raise ModelError(f"no tensor '{n}' in the TFLite graph", where=graph.source,
                             hint=f"graph outputs are: {known}") from None
    return out


def convert_graph(graph: TFLiteGraph, outputs: Sequence[str | int] | None = None,
                  extra_outputs: Sequence[str | int] = (), output_layout: str = "nchw",
                  fold_pads: bool = True) -> TFLiteModule:
    """Convert a TFLite graph to a :class:`TFLiteModule`.

    ``outputs``: graph outputs to compute (names or tensor indices; default all, ops that feed
    none of them are dropped). ``extra_outputs``: internal tensors returned after them (e.g. the
    features feeding a head). ``output_layout``: ``"nchw"`` (default) or ``"nhwc"`` for rank-4
    outputs. Raises :class:`ModelError` naming any op that is not supported.
    """
    if output_layout not in ("nchw", "nhwc"):
        raise ModelError(f"output_layout must be 'nchw' or 'nhwc', not '{output_layout}'")
    out_idx = _resolve(graph, outputs) if outputs is not None else list(graph.outputs)
    out_idx += [i for i in _resolve(graph, extra_outputs) if i not in out_idx]

    consts: dict[int, np.ndarray] = {t.index: t.data for t in graph.tensors
                                     if t.data is not None and t.sparsity is None}
    runtime_ops = []
    for op in graph.operators:
        ins = [i for i in op.inputs if i >= 0]
        sparse_ok = op.op == "DENSIFY"
        if op.op in FOLDABLE and len(op.outputs) == 1 \
                and all(i in consts or (sparse_ok and graph.tensors[i].sparsity is not None) for i in ins):
            consts[op.outputs[0]] = _fold_constant(graph, op, consts)
        else:
            runtime_ops.append(op)

    # keep only the ops that feed the requested outputs
    producer = {o: op for op in runtime_ops for o in op.outputs}
    needed: set[int] = set()
    stack = [i for i in out_idx]
    seen: set[int] = set()
    while stack:
        t = stack.pop()
        if t in seen or t < 0:
            continue
        seen.add(t)
        op = producer.get(t)
        if op is not None and op.index not in needed:
            needed.add(op.index)
            stack.extend(i for i in op.inputs if i >= 0 and i not in consts)
    ops = [op for op in runtime_ops if op.index in needed]

    unsupported = sorted({op.op for op in ops if op.op not in _BUILDERS})
    if unsupported:
        raise ModelError(f"TFLite op(s) not supported by the converter: {', '.join(unsupported)}",
                         where=graph.source, hint=f"supported ops: {', '.join(SUPPORTED_OPS)}")
    for op in ops:
        if len(op.outputs) != 1:
            raise ModelError(f"{op.op} with {len(op.outputs)} outputs is not supported", where=graph.source)
    for i in out_idx:
        if i in consts:
            raise ModelError(f"output '{graph.tensors[i].name}' is a constant", where=graph.source)
    missing = [graph.tensors[i].name for op in ops for i in op.inputs
               if i >= 0 and i not in consts and i not in producer and i not in graph.inputs]
    if missing:
        raise ModelError(f"tensor(s) {missing[:3]} are neither constants, graph inputs nor computed by an op",
                         where=graph.source, hint="the model file is corrupt or uses variables/control flow")

    # fold zero PADs of the spatial axes into the single convolution that reads them
    folded: dict[int, tuple[int, int, int, int]] = {}
    skip: set[int] = set()
    rename: dict[int, int] = {}
    if fold_pads:
        consumers: dict[int, list[Any]] = {}
        for op in ops:
            for i in op.inputs:
                consumers.setdefault(i, []).append(op)
        for op in ops:
            if op.op != "PAD" or op.outputs[0] in out_idx or len(graph.tensors[op.inputs[0]].shape) != 4:
                continue
            users = consumers.get(op.outputs[0], [])
            if len(users) != 1 or users[0].op not in ("CONV_2D", "DEPTHWISE_CONV_2D") \
                    or users[0].inputs[0] != op.outputs[0]:
                continue
            pads = np.asarray(consts.get(op.inputs[1], np.ones((1, 1))), dtype=np.int64).reshape(-1, 2)
            if pads.shape != (4, 2) or pads[0].any() or pads[3].any():
                continue
            folded[users[0].index] = (int(pads[2, 0]), int(pads[2, 1]), int(pads[1, 0]), int(pads[1, 1]))
            skip.add(op.index)
            rename[op.outputs[0]] = op.inputs[0]

    ctx = _Ctx(graph=graph, consts=consts, folded_pads=folded)
    layers: dict[str, nn.Module] = {}
    steps: list[tuple[str, tuple[int, ...], int]] = []
    for op in ops:
        if op.index in skip:
            continue
        module, ins = _BUILDERS[op.op](ctx, op)
        name = f"{_SHORT.get(op.op, op.op.lower())}{op.index:03d}"
        layers[name] = module
        steps.append((name, tuple(rename.get(i, i) for i in ins), op.outputs[0]))

    known = set(graph.inputs) | {out for _, _, out in steps}
    names = {i: graph.tensors[i].name for i in known}
    shapes = {i: graph.tensors[i].shape for i in known}
    return TFLiteModule(layers, steps, graph.inputs, out_idx, names, shapes, output_layout, graph.source)


def head_input(graph: TFLiteGraph, output: str | int) -> int:
    """Index of the feature tensor read by the last learned layer (conv / fully connected) that
    computes ``output`` (looking through RESHAPE and activations) — the "penultimate features"."""
    producer = graph.producers()
    t = _resolve(graph, [output])[0]
    passthrough = ("RESHAPE", "LOGISTIC", "TANH", "RELU", "RELU6", "DEQUANTIZE")
    while t in producer:
        op = producer[t]
        if op.op in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            return op.inputs[0]
        if op.op not in passthrough:
            break
        t = op.inputs[0]
    raise ModelError(f"cannot find the layer that computes '{output}'", where=graph.source)
