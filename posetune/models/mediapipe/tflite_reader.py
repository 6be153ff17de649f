"""Read a ``.tflite`` flatbuffer into a small, plain graph description.

The flatbuffer is parsed with the ``tflite`` package (generated from TFLite's schema). The
result is independent of it: :class:`TFLiteGraph` holds tensors (name, shape, dtype, constant
data, quantisation, sparsity) and operators (op name, input/output tensor indices, options as a
snake_case dict with enums spelled out, e.g. ``{"padding": "SAME", "fused_activation_function":
"RELU6", "stride_h": 2, ...}``). Only the first subgraph (the model's main function) is read.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posetune.errors import CheckpointError

# TFLite TensorType enum -> numpy dtype (types that can hold constant data in these graphs)
_DTYPES: dict[str, Any] = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT32": np.int32, "INT64": np.int64,
    "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "BOOL": np.bool_,
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT", 6: "SIGMOID"}


@dataclass
class Sparsity:
    """TFLite sparse tensor metadata (see ``SparsityParameters`` in TFLite's schema).

    ``dim_metadata`` has one entry per traversal dimension: ``("DENSE", dense_size)`` or
    ``("SPARSE_CSR", segments, indices)``.
    """

    traversal_order: list[int]
    block_map: list[int]
    dim_metadata: list[tuple]


@dataclass
class Quantization:
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int = 0


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # TFLite type name, e.g. "FLOAT32"
    data: np.ndarray | None = None  # constant value (sparse tensors: the 1-D list of stored values)
    quantization: Quantization | None = None
    sparsity: Sparsity | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class OperatorInfo:
    index: int
    op: str  # builtin name, e.g. "CONV_2D", or "CUSTOM:<code>"
    inputs: tuple[int, ...]  # tensor indices; -1 = optional input left out
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 1


@dataclass
class TFLiteGraph:
    """One TFLite subgraph: tensors, operators in execution order, graph inputs and outputs."""

    tensors: list[TensorInfo]
    operators: list[OperatorInfo]
    inputs: list[int]
    outputs: list[int]
    source: str = ""

    def tensor(self, name_or_index: str | int) -> TensorInfo:
        """A tensor by index or exact name."""
        if isinstance(name_or_index, (int, np.integer)):
            return self.tensors[int(name_or_index)]
        for t in self.tensors:
            if t.name == name_or_index:
                return t
        raise KeyError(name_or_index)

    def producers(self) -> dict[int, OperatorInfo]:
        """tensor index -> the operator that writes it."""
        return {o: op for op in self.operators for o in op.outputs}

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
        return counts


def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return s.lower()


def _enum_names(module_name: str) -> dict[int, str]:
    mod = importlib.import_module(f"tflite.{module_name}")
    cls = getattr(mod, module_name)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _read_options(op: Any, options_names: dict[int, str]) -> dict[str, Any]:
    """Builtin options table -> snake_case dict (vector fields as lists, enums as names)."""
    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    cls_name = options_names.get(kind)
    if cls_name is None:
        return {}
    mod = importlib.import_module(f"tflite.{cls_name}")
    cls = getattr(mod, cls_name)
    table = op.BuiltinOptions()
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    skip = ("Init", "GetRootAs")
    out: dict[str, Any] = {}
    for attr, fn in vars(cls).items():
        if not callable(fn) or attr.startswith("_") or attr.startswith(skip) or attr.endswith(
                ("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")):
            continue
        if hasattr(cls, attr + "AsNumpy"):
            arr = getattr(obj, attr + "AsNumpy")()
            value: Any = [] if isinstance(arr, int) else np.asarray(arr).tolist()
        else:
            try:
                value = getattr(obj, attr)()
            except TypeError:  # accessor that needs an index (a vector of tables): not used here
                continue
        out[_snake(attr)] = value
    if "padding" in out:
        out["padding"] = _PADDING.get(out["padding"], out["padding"])
    if "fused_activation_function" in out:
        out["fused_activation_function"] = _ACTIVATIONS.get(out["fused_activation_function"],
                                                            out["fused_activation_function"])
    return out


def _index_vector(union_type: int, table: Any) -> np.ndarray:
    names = {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"}
    if union_type not in names or table is None:
        return np.zeros(0, dtype=np.int64)
    mod = importlib.import_module(f"tflite.{names[union_type]}")
    vec = getattr(mod, names[union_type])()
    vec.Init(table.Bytes, table.Pos)
    arr = vec.ValuesAsNumpy()
    return np.zeros(0, dtype=np.int64) if isinstance(arr, int) else np.asarray(arr, dtype=np.int64)


def _read_sparsity(sp: Any) -> Sparsity:
    dims = []
    for d in range(sp.DimMetadataLength()):
        dm = sp.DimMetadata(d)
        if dm.Format() == 0:
            dims.append(("DENSE", int(dm.DenseSize())))
        else:
            dims.append(("SPARSE_CSR", _index_vector(dm.ArraySegmentsType(), dm.ArraySegments()),
                         _index_vector(dm.ArrayIndicesType(), dm.ArrayIndices())))
    trav = sp.TraversalOrderAsNumpy()
    bmap = sp.BlockMapAsNumpy()
    return Sparsity(traversal_order=[] if isinstance(trav, int) else [int(v) for v in trav],
                    block_map=[] if isinstance(bmap, int) else [int(v) for v in bmap], dim_metadata=dims)


def read_tflite(path: str | Path) -> TFLiteGraph:
    """Parse a ``.tflite`` file (first subgraph) into a :class:`TFLiteGraph`.

    Raises :class:`~posetune.errors.CheckpointError` when the file is missing or is not a
    TFLite flatbuffer.
    """
    path = Path(path)
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError("TFLite model file not found", where=path,
                              hint="run `posetune weights fetch mediapipe` or check the path") from None
    except OSError as e:
        raise CheckpointError(f"cannot read TFLite model ({e.strerror})", where=path) from None
    return parse_tflite(buf, source=str(path))


def parse_tflite(buf: bytes, source: str = "<bytes>") -> TFLiteGraph:
    """Parse TFLite flatbuffer bytes (see :func:`read_tflite`)."""
    import tflite
    from tflite.utils import BUILTIN_OPCODE2NAME

    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise CheckpointError("not a TFLite model (no 'TFL3' flatbuffer identifier)", where=source,
                              hint="the file is corrupt or of another format; re-fetch it")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise CheckpointError("TFLite model has no subgraph", where=source)
        g = model.Subgraphs(0)
        type_names = _enum_names("TensorType")
        options_names = _enum_names("BuiltinOptions")

        def buffer_bytes(idx: int) -> bytes | None:
            b = model.Buffers(idx)
            if b is None:
                return None
            if b.Offset() > 1:  # data stored after the flatbuffer (models > 2 GB)
                return buf[b.Offset():b.Offset() + b.Size()]
            if b.DataLength() == 0:
                return None
            return b.DataAsNumpy().tobytes()

        tensors: list[TensorInfo] = []
        for i in range(g.TensorsLength()):
            t = g.Tensors(i)
            shape_np = t.ShapeAsNumpy()
            shape = () if isinstance(shape_np, int) else tuple(int(s) for s in shape_np)
            dtype = type_names.get(t.Type(), str(t.Type()))
            sparsity = _read_sparsity(t.Sparsity()) if t.Sparsity() is not None else None
            q = t.Quantization()
            quant = None
            if q is not None and q.ScaleLength() > 0:
                quant = Quantization(scale=np.asarray(q.ScaleAsNumpy(), dtype=np.float32),
                                     zero_point=np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64),
                                     quantized_dimension=int(q.QuantizedDimension()))
            data = None
            raw = buffer_bytes(t.Buffer())
            if raw is not None:
                if dtype not in _DTYPES:
                    raise CheckpointError(f"tensor '{t.Name().decode()}' has unsupported constant type {dtype}",
                                          where=source)
                arr = np.frombuffer(raw, dtype=_DTYPES[dtype]).copy()
                data = arr if sparsity is not None else arr.reshape(shape)
            tensors.append(TensorInfo(index=i, name=t.Name().decode("utf-8", "replace"), shape=shape, dtype=dtype,
                                      data=data, quantization=quant, sparsity=sparsity))

        operators: list[OperatorInfo] = []
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            name = BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
            ins = op.InputsAsNumpy()
            outs = op.OutputsAsNumpy()
            operators.append(OperatorInfo(
                index=i, op=name,
                inputs=() if isinstance(ins, int) else tuple(int(v) for v in ins),
                outputs=() if isinstance(outs, int) else tuple(int(v) for v in outs),
                options=_read_options(op, options_names), version=int(code.Version())))
        gin = g.InputsAsNumpy()
        gout = g.OutputsAsNumpy()
        return TFLiteGraph(tensors=tensors, operators=operators,
                           inputs=[] if isinstance(gin, int) else [int(v) for v in gin],
                           outputs=[] if isinstance(gout, int) else [int(v) for v in gout], source=source)
    except CheckpointError:
        raise
    except Exception as e:  # a damaged flatbuffer fails in many ways inside the generated reader
        raise CheckpointError(f"cannot parse TFLite model ({type(e).__name__}: {e})", where=source,
                              hint="the file is corrupt; re-fetch it") from None
