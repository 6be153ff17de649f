"""TFLite -> PyTorch conversion: flatbuffer reading, op semantics and parity with the TFLite runtime.

Reference outputs come from the real TFLite runtime (``ai_edge_litert``): the MediaPipe graphs on
real crops (COCO person, OneHand10K hand, WFLW face) and random inputs, and single-op models
written here with the flatbuffer builder for the ops/flags the MediaPipe graphs do not use.
"""

from __future__ import annotations

import importlib
import time

import numpy as np
import pytest
import torch

from posetune.errors import CheckpointError, ModelError
from posetune.models.mediapipe import ops as O
from posetune.models.mediapipe.converter import convert_graph, densify, head_input
from posetune.models.mediapipe.tflite_reader import Sparsity, TensorInfo, parse_tflite, read_tflite

VERSION = "0.10.21"


#: these small nets run fastest single-threaded on a shared 2-core machine (conftest fixture)
pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # random inputs: the same numbers on every run


def _interpreter(path=None, content=None, xnnpack=False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    it = Interpreter(model_path=str(path) if path else None, model_content=content, **kwargs)
    it.allocate_tensors()
    return it


def _run_tflite(it, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    it.set_tensor(it.get_input_details()[0]["index"], x_nhwc.astype(np.float32))
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}


def _model(mediapipe_cache, name):
    return mediapipe_cache / "mediapipe" / VERSION / f"{name}.tflite"


def _crop(path, bbox, size, pad=1.25):
    """Square crop around a COCO bbox (x, y, w, h), resized to ``size`` (RGB float in [0, 1])."""
    import cv2

    from posetune.data.images import load_image

    img = load_image(path)
    x, y, w, h = bbox
    cx, cy, side = x + w / 2, y + h / 2, max(w, h) * pad
    src = np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2], [cx - side / 2, cy + side / 2]])
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    out = cv2.warpAffine(img, cv2.getAffineTransform(src, dst), (size, size), flags=cv2.INTER_LINEAR)
    return out.astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- reader
def test_reader_parses_blazepose_graph(mediapipe_cache):
    g = read_tflite(_model(mediapipe_cache, "pose_landmark_full"))
    counts = g.op_counts()
    assert counts["CONV_2D"] == 58 and counts["DEPTHWISE_CONV_2D"] == 38 and counts["DEQUANTIZE"] == 192
    assert counts["RESIZE_BILINEAR"] == 5 and counts["PAD"] == 5
    outs = {g.tensors[i].name: g.tensors[i].shape for i in g.outputs}
    assert outs == {"Identity": (1, 195), "Identity_1": (1, 1), "Identity_2": (1, 256, 256, 1),
                    "Identity_3": (1, 64, 64, 39), "Identity_4": (1, 117)}
    assert g.tensors[g.inputs[0]].shape == (1, 256, 256, 3)
    fp16 = [t for t in g.tensors if t.dtype == "FLOAT16"]
    assert len(fp16) == 192 and all(t.data is not None and t.data.dtype == np.float16 for t in fp16)
    conv = next(op for op in g.operators if op.op == "CONV_2D")
    assert conv.options["padding"] in ("SAME", "VALID") and conv.options["fused_activation_function"] == "RELU6"
    resize = next(op for op in g.operators if op.op == "RESIZE_BILINEAR")
    assert resize.options == {"align_corners": False, "half_pixel_centers": True}


def test_reader_rejects_files_that_are_not_tflite(tmp_path, mediapipe_cache):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(CheckpointError, match="not a TFLite model"):
        read_tflite(bad)
    with pytest.raises(CheckpointError, match="not found"):
        read_tflite(tmp_path / "missing.tflite")
    data = _model(mediapipe_cache, "hand_landmark_lite").read_bytes()
    with pytest.raises(CheckpointError):
        parse_tflite(data[:4096], source="truncated")


def test_densify_csr_and_block_sparse():
    dense = np.zeros((4, 6), np.float32)
    dense[0, 1], dense[0, 5], dense[2, 0], dense[3, 3] = 1, 2, 3, 4
    csr = TensorInfo(0, "w", (4, 6), "FLOAT32", data=np.float32([1, 2, 3, 4]), sparsity=Sparsity(
        [0, 1], [], [("DENSE", 4), ("SPARSE_CSR", np.array([0, 2, 2, 3, 4]), np.array([1, 5, 0, 3]))]))
    np.testing.assert_array_equal(densify(csr), dense)
    # 2x2 blocks: block rows 0..1, block cols 0..2; non-zero blocks (0, 0) and (1, 2)
    blocky = np.zeros((4, 6), np.float32)
    blocky[0:2, 0:2] = [[1, 2], [3, 4]]
    blocky[2:4, 4:6] = [[5, 6], [7, 8]]
    bs = TensorInfo(0, "w", (4, 6), "FLOAT32", data=np.float32([1, 2, 3, 4, 5, 6, 7, 8]), sparsity=Sparsity(
        [0, 1, 2, 3], [0, 1],
        [("DENSE", 2), ("SPARSE_CSR", np.array([0, 1, 2]), np.array([0, 2])), ("DENSE", 2), ("DENSE", 2)]))
    np.testing.assert_array_equal(densify(bs), blocky)


# ----------------------------------------------------------------------------- MediaPipe parity
def _parity(module, it, x_nhwc):
    ref = _run_tflite(it, x_nhwc)
    with torch.no_grad():
        got = module.forward_dict(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous())
    return ref, {k: v.numpy() for k, v in got.items()}


@pytest.fixture(scope="module")
def real_crops(shared_data):
    coco = shared_data / "mmpose_coco" / "coco"
    hand = shared_data / "mmpose_onehand10k" / "onehand10k"
    face = shared_data / "mmpose_wflw" / "wflw"
    return {
        "pose_landmark_full": _crop(coco / "000000000785.jpg", (280.79, 44.73, 218.7, 346.68), 256),
        "pose_detection": _crop(coco / "000000197388.jpg", (139.41, 102.25, 222.39, 241.57), 224, pad=2.0),
        "hand_landmark_full": _crop(hand / "9.jpg", (63, 92, 99, 194), 224),
        "hand_landmark_lite": _crop(hand / "1402.jpg", (32, 68, 150, 210), 224),
        "face_landmark": _crop(face / "7_Cheering_Cheering_7_16.jpg", (718.26, 293.22, 102.06, 108.05), 192),
        "palm_detection_full": _crop(hand / "1402.jpg", (32, 68, 150, 210), 192, pad=1.6),
        "face_detection_short_range": _crop(face / "7_Cheering_Cheering_7_16.jpg", (718.26, 293.22, 102.06, 108.05),
                                            128, pad=2.5),
    }


# (model, outputs checked at atol 1e-3 (landmark pixels, flags, box regressors), dense maps with the
# atol of their probabilities (sigmoid of the logits)). BlazePose's segmentation logits reach
# +-2000, so near the mask boundary float32 rounding alone moves the probability by ~1e-3: TFLite
# itself differs from a float64 evaluation of the same graph by up to 2e-3 there.
# The detector's box regressors (up to ~300 px from the anchors) get rtol 1e-5 and DETECTOR_ATOL.
PARITY = [
    ("pose_landmark_full", ["Identity", "Identity_1", "Identity_4"], {"Identity_3": 1e-4, "Identity_2": 2e-3}, 0),
    ("hand_landmark_full", ["Identity", "Identity_1", "Identity_2", "Identity_3"], {}, 0),
    ("hand_landmark_lite", ["Identity", "Identity_1", "Identity_2", "Identity_3"], {}, 0),
    ("face_landmark", ["conv2d_21", "conv2d_31"], {}, 0),
    ("pose_detection", ["Identity", "Identity_1"], {}, 1e-5),
    ("palm_detection_full", ["Identity", "Identity_1"], {}, 1e-5),
    ("face_detection_short_range", ["regressors", "classificators"], {}, 1e-5),
]
#: detector outputs: TFLite and this converter both differ from float64 math by ~1.5e-3 there
DETECTOR_ATOL = 3e-3


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(a.astype(np.float64), -60, 60)))


@pytest.mark.parametrize("name,points,maps,rtol", PARITY, ids=[p[0] for p in PARITY])
def test_converted_graph_matches_tflite_runtime(mediapipe_cache, real_crops, name, points, maps, rtol):
    path = _model(mediapipe_cache, name)
    t0 = time.perf_counter()
    module = convert_graph(read_tflite(path), output_layout="nhwc").eval()
    assert time.perf_counter() - t0 < 5.0
    it = _interpreter(path)
    real = real_crops[name][None]
    ref, got = _parity(module, it, real)
    assert set(ref) == set(got)
    for k in points:
        assert got[k].shape == ref[k].shape
        np.testing.assert_allclose(got[k], ref[k], rtol=rtol, atol=DETECTOR_ATOL if rtol else 1e-3, err_msg=k)
    for k, atol in maps.items():
        assert got[k].shape == ref[k].shape
        np.testing.assert_allclose(_sigmoid(got[k]), _sigmoid(ref[k]), rtol=0, atol=atol, err_msg=k)
        assert np.abs(_sigmoid(got[k]) - _sigmoid(ref[k])).mean() < 1e-6, k
        # raw logits: float32 rounding relative to their range
        assert np.abs(got[k] - ref[k]).max() <= 2e-4 * max(1.0, np.abs(ref[k]).max()), k
    # random input (out of distribution: large activations) -> relative tolerance
    rnd = np.random.default_rng(0).random(real.shape, dtype=np.float32)
    ref, got = _parity(module, it, rnd)
    for k in points + list(maps):
        scale = max(1.0, float(np.abs(ref[k]).max()))
        assert np.abs(got[k] - ref[k]).max() <= (2e-4 if k in maps else 1e-5) * scale + 1e-4, k


def test_batches_larger_than_one_match_single_runs(mediapipe_cache, real_crops):
    path = _model(mediapipe_cache, "pose_detection")  # RESHAPE / CONCATENATION of anchors per image
    module = convert_graph(read_tflite(path), output_layout="nhwc").eval()
    it = _interpreter(path)
    x = np.stack([real_crops["pose_detection"], np.random.default_rng(1).random((224, 224, 3), dtype=np.float32)])
    with torch.no_grad():
        both = module.forward_dict(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
    for i in range(2):
        ref = _run_tflite(it, x[i:i + 1])
        for k, v in ref.items():
            assert both[k].shape[0] == 2
            assert np.abs(both[k][i:i + 1].numpy() - v).max() <= 1e-5 * max(1.0, np.abs(v).max()) + 1e-4


def test_parity_with_default_xnnpack_runtime(mediapipe_cache, real_crops):
    """What users run (XNNPACK delegate): float32 rounding differs a little more."""
    path = _model(mediapipe_cache, "pose_landmark_full")
    module = convert_graph(read_tflite(path), outputs=["Identity", "Identity_3"], output_layout="nhwc").eval()
    ref = _run_tflite(_interpreter(path, xnnpack=True), real_crops["pose_landmark_full"][None])
    with torch.no_grad():
        got = module.forward_dict(torch.from_numpy(real_crops["pose_landmark_full"][None]).permute(0, 3, 1, 2))
    np.testing.assert_allclose(got["Identity"].numpy(), ref["Identity"], rtol=0, atol=2e-3)
    np.testing.assert_allclose(got["Identity_3"].numpy(), ref["Identity_3"], rtol=0, atol=1e-3)


def test_module_structure_layouts_and_output_selection(mediapipe_cache):
    g = read_tflite(_model(mediapipe_cache, "pose_landmark_full"))
    m = convert_graph(g)
    assert m.output_names == ["Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4"]
    assert m.output_shapes[2:4] == [(1, 1, 256, 256), (1, 39, 64, 64)]  # NCHW by default
    # conv / depthwise weights are trainable parameters in torch layouts; no BatchNorm
    convs = [l for l in m.layers.values() if isinstance(l, O.Conv2d)]
    assert len(convs) == 96 and all(isinstance(c.weight, torch.nn.Parameter) for c in convs)
    first = m.layers["conv003"]
    assert tuple(first.weight.shape) == (24, 3, 3, 3) and first.pad == (1, 1, 1, 1)  # PAD folded into the conv
    assert not any(isinstance(l, O.Pad) for l in m.layers.values())
    dw = next(c for c in convs if c.groups > 1)
    assert dw.weight.shape[1] == 1 and dw.groups == dw.weight.shape[0]
    assert sum(p.numel() for p in m.parameters()) == 3169489
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    # weights equal the fp16 constants of the file, dequantised (OHWI -> OIHW)
    op = next(o for o in g.operators if o.index == 3)
    w_fp16 = g.tensors[next(p for p in g.operators if p.outputs[0] == op.inputs[1]).inputs[0]].data
    np.testing.assert_array_equal(first.weight.detach().numpy(), w_fp16.astype(np.float32).transpose(0, 3, 1, 2))
    # only the ops an output needs run
    assert len(m.plan(["Identity"])) < len(m.plan()) and "conv230" not in m.plan(["Identity"])
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        full = m(x)
        part = m.run(x, outputs=["Identity"])
    assert len(part) == 1 and torch.equal(part[0], full[0])
    # penultimate features of the landmark layer
    assert g.tensors[head_input(g, "Identity")].shape == (1, 2, 2, 288)


def test_converted_model_exports_to_onnx(mediapipe_cache, tmp_path):
    import onnxruntime as ort

    m = convert_graph(read_tflite(_model(mediapipe_cache, "hand_landmark_lite"))).eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        onnx_path = tmp_path / "hand.onnx"
        torch.onnx.export(m, (x,), str(onnx_path), input_names=["image"], output_names=m.output_names,
                          dynamic_axes={"image": {0: "batch"}}, dynamo=False)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x3 = torch.rand(3, 3, 224, 224)
    got = sess.run(None, {"image": x3.numpy()})
    with torch.no_grad():
        want = m(x3)
    for a, b in zip(got, want):  # landmarks in pixels (up to ~200): float32 rounding differs
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- single-op models
_CODES = None


def _op_code(name: str) -> int:
    global _CODES
    if _CODES is None:
        from tflite.utils import BUILTIN_OPCODE2NAME

        _CODES = {v: k for k, v in BUILTIN_OPCODE2NAME.items()}
    return _CODES[name]


def _table(builder, cls: str, fields: dict) -> int:
    mod = importlib.import_module(f"tflite.{cls}")
    getattr(mod, f"{cls}Start")(builder)
    for key, value in fields.items():
        getattr(mod, f"{cls}Add{key}")(builder, value)
    return getattr(mod, f"{cls}End")(builder)


def make_tflite(tensors: list[dict], ops: list[dict], inputs: list[int], outputs: list[int]) -> bytes:
    """A one-subgraph float model. tensors: {shape, data (optional), dtype 'f'|'i'}; ops: {op,
    inputs, outputs, options (class name), fields, version}."""
    import flatbuffers
    from tflite.BuiltinOptions import BuiltinOptions

    b = flatbuffers.Builder(1024)
    ivec = lambda v: b.CreateNumpyVector(np.asarray(v, dtype=np.int32))  # noqa: E731
    buffers = []
    for t in [{}] + tensors:
        data = t.get("data")
        vec = b.CreateNumpyVector(np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)) \
            if data is not None else None
        buffers.append(_table(b, "Buffer", {"Data": vec} if vec is not None else {}))
    tensor_offsets = []
    for i, t in enumerate(tensors):
        name = b.CreateString(f"t{i}")
        shape = ivec(t["shape"])
        tensor_offsets.append(_table(b, "Tensor", {
            "Shape": shape, "Type": 2 if t.get("dtype") == "i" else 0,
            "Buffer": i + 1 if t.get("data") is not None else 0, "Name": name}))
    codes = sorted({(o["op"], o.get("version", 1)) for o in ops})
    code_offsets = [_table(b, "OperatorCode", {"DeprecatedBuiltinCode": min(_op_code(n), 127),
                                                "BuiltinCode": _op_code(n), "Version": v}) for n, v in codes]
    op_offsets = []
    for o in ops:
        ins, outs = ivec(o["inputs"]), ivec(o["outputs"])
        opts = _table(b, o["options"], o.get("fields", {})) if o.get("options") else None
        fields = {"OpcodeIndex": codes.index((o["op"], o.get("version", 1))), "Inputs": ins, "Outputs": outs}
        if opts is not None:
            fields["BuiltinOptionsType"] = getattr(BuiltinOptions, o["options"])
            fields["BuiltinOptions"] = opts
        op_offsets.append(_table(b, "Operator", fields))

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    tv, ov = vector(tensor_offsets), vector(op_offsets)
    iv, outv = ivec(inputs), ivec(outputs)
    sub = _table(b, "SubGraph", {"Tensors": tv, "Inputs": iv, "Outputs": outv, "Operators": ov})
    subs, cv, bv = vector([sub]), vector(code_offsets), vector(buffers)
    model = _table(b, "Model", {"Version": 3, "OperatorCodes": cv, "Subgraphs": subs, "Buffers": bv})
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _single_op(op, in_shape, out_shape, consts=(), options=None, fields=None, version=1, const_first=False):
    """Input tensor 0, constants 1.., output last."""
    tensors = [{"shape": in_shape}]
    for c in consts:
        c = np.asarray(c)
        tensors.append({"shape": c.shape, "data": c, "dtype": "i" if c.dtype.kind == "i" else "f"})
    tensors.append({"shape": out_shape})
    ins = list(range(len(tensors) - 1))
    if const_first:
        ins = ins[1:] + ins[:1]
    return make_tflite(tensors, [{"op": op, "inputs": ins, "outputs": [len(tensors) - 1], "options": options,
                                  "fields": fields or {}, "version": version}], [0], [len(tensors) - 1])


def _check_single(content: bytes, in_shape, seed=0, atol=1e-5):
    it = _interpreter(content=content)
    x = np.random.default_rng(seed).standard_normal(in_shape).astype(np.float32)
    ref = list(_run_tflite(it, x).values())[0]
    m = convert_graph(parse_tflite(content), output_layout="nhwc").eval()
    xt = torch.from_numpy(x)
    if x.ndim == 4:
        xt = xt.permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        got = m(xt)[0].numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=atol)
    return m


rng = np.random.default_rng(42)
W3 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
SAME, VALID = 0, 1


@pytest.mark.parametrize("case", [
    # conv, SAME with stride 2 on an even size: TensorFlow pads 0 before and 1 after
    dict(op="CONV_2D", i=(1, 8, 8, 3), o=(1, 4, 4, 5), c=[W3(5, 3, 3, 3), W3(5)], opt="Conv2DOptions",
         f=dict(Padding=SAME, StrideH=2, StrideW=2, DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=1)),
    dict(op="CONV_2D", i=(1, 9, 7, 4), o=(1, 9, 7, 2), c=[W3(2, 3, 2, 4), W3(2)], opt="Conv2DOptions",
         f=dict(Padding=SAME, StrideH=1, StrideW=1, DilationHFactor=2, DilationWFactor=3, FusedActivationFunction=3)),
    dict(op="DEPTHWISE_CONV_2D", i=(1, 7, 7, 3), o=(1, 4, 4, 6), c=[W3(1, 3, 3, 6), W3(6)], v=2,
         opt="DepthwiseConv2DOptions", f=dict(Padding=SAME, StrideH=2, StrideW=2, DepthMultiplier=2,
                                              DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=2)),
    dict(op="TRANSPOSE_CONV", i=(1, 4, 5, 3), o=(1, 8, 10, 2), c=[W3(2, 3, 3, 3)], v=3,
         opt="TransposeConvOptions", f=dict(Padding=SAME, StrideH=2, StrideW=2), tconv=(1, 8, 10, 2)),
    dict(op="TRANSPOSE_CONV", i=(1, 4, 4, 3), o=(1, 9, 9, 2), c=[W3(2, 3, 3, 3), W3(2)], v=3,
         opt="TransposeConvOptions", f=dict(Padding=VALID, StrideH=2, StrideW=2), tconv=(1, 9, 9, 2)),
    dict(op="AVERAGE_POOL_2D", i=(1, 6, 7, 3), o=(1, 3, 4, 3), opt="Pool2DOptions",
         f=dict(Padding=SAME, StrideH=2, StrideW=2, FilterHeight=3, FilterWidth=3)),
    dict(op="MAX_POOL_2D", i=(1, 6, 6, 3), o=(1, 3, 3, 3), opt="Pool2DOptions",
         f=dict(Padding=SAME, StrideH=2, StrideW=2, FilterHeight=3, FilterWidth=3)),
    dict(op="RESIZE_BILINEAR", i=(1, 5, 7, 2), o=(1, 9, 12, 2), c=[np.int32([9, 12])], v=3,
         opt="ResizeBilinearOptions", f=dict(AlignCorners=False, HalfPixelCenters=True)),
    dict(op="RESIZE_BILINEAR", i=(1, 5, 7, 2), o=(1, 9, 12, 2), c=[np.int32([9, 12])], v=3,
         opt="ResizeBilinearOptions", f=dict(AlignCorners=True, HalfPixelCenters=False)),
    dict(op="RESIZE_BILINEAR", i=(1, 5, 7, 2), o=(1, 9, 12, 2), c=[np.int32([9, 12])], v=3,
         opt="ResizeBilinearOptions", f=dict(AlignCorners=False, HalfPixelCenters=False)),
    dict(op="RESIZE_NEAREST_NEIGHBOR", i=(1, 5, 7, 2), o=(1, 9, 12, 2), c=[np.int32([9, 12])], v=3,
         opt="ResizeNearestNeighborOptions", f=dict(AlignCorners=False, HalfPixelCenters=True)),
    dict(op="RESIZE_NEAREST_NEIGHBOR", i=(1, 5, 7, 2), o=(1, 9, 12, 2), c=[np.int32([9, 12])], v=3,
         opt="ResizeNearestNeighborOptions", f=dict(AlignCorners=True, HalfPixelCenters=False)),
    dict(op="RESIZE_NEAREST_NEIGHBOR", i=(1, 5, 7, 2), o=(1, 9, 12, 2), c=[np.int32([9, 12])], v=3,
         opt="ResizeNearestNeighborOptions", f=dict(AlignCorners=False, HalfPixelCenters=False)),
    dict(op="FULLY_CONNECTED", i=(1, 2, 3, 4), o=(1, 5), c=[W3(5, 24), W3(5)], opt="FullyConnectedOptions",
         f=dict(FusedActivationFunction=1)),
    dict(op="MEAN", i=(1, 4, 5, 3), o=(1, 5, 3), c=[np.int32([1])], opt="ReducerOptions", f=dict(KeepDims=False)),
    dict(op="MEAN", i=(1, 4, 5, 3), o=(1, 1, 1, 3), c=[np.int32([1, 2])], opt="ReducerOptions", f=dict(KeepDims=True)),
    dict(op="SOFTMAX", i=(1, 3, 4, 6), o=(1, 3, 4, 6), opt="SoftmaxOptions", f=dict(Beta=0.7)),
    dict(op="CONCATENATION", i=(1, 3, 4, 2), o=(1, 3, 4, 5), c=[W3(1, 3, 4, 3)], opt="ConcatenationOptions",
         f=dict(Axis=3)),
    dict(op="DEPTH_TO_SPACE", i=(1, 3, 4, 8), o=(1, 6, 8, 2), opt="DepthToSpaceOptions", f=dict(BlockSize=2)),
    dict(op="PAD", i=(1, 3, 4, 2), o=(1, 4, 7, 5), c=[np.int32([[0, 0], [1, 0], [2, 1], [0, 3]])]),
    dict(op="MUL", i=(1, 3, 4, 6), o=(1, 3, 4, 6), c=[W3(6)], opt="MulOptions", f=dict(FusedActivationFunction=0)),
    dict(op="SUB", i=(1, 3, 4, 6), o=(1, 3, 4, 6), c=[W3(1, 1, 4, 6)], opt="SubOptions",
         f=dict(FusedActivationFunction=0), const_first=True),
    dict(op="PRELU", i=(1, 3, 4, 6), o=(1, 3, 4, 6), c=[W3(1, 1, 6)]),
    dict(op="HARD_SWISH", i=(1, 3, 4, 6), o=(1, 3, 4, 6)),
    dict(op="TANH", i=(1, 3, 4, 6), o=(1, 3, 4, 6)),
    dict(op="RELU_N1_TO_1", i=(1, 3, 4, 6), o=(1, 3, 4, 6)),
    dict(op="RESHAPE", i=(1, 3, 4, 6), o=(1, 12, 6), c=[np.int32([1, 12, 6])]),
], ids=lambda c: f"{c['op']}-{c.get('f', {}).get('Padding', '')}{c.get('f', {}).get('AlignCorners', '')}"
                 f"{c.get('f', {}).get('HalfPixelCenters', '')}")
def test_single_op_matches_tflite_runtime(case):
    consts = list(case.get("c", []))
    if "tconv" in case:  # TRANSPOSE_CONV inputs: (output_shape, weights, input[, bias])
        shape = np.int32(case["tconv"])
        tensors = [{"shape": case["i"]}, {"shape": (4,), "data": shape, "dtype": "i"},
                   {"shape": consts[0].shape, "data": consts[0]}]
        ins = [1, 2, 0]
        if len(consts) > 1:
            tensors.append({"shape": consts[1].shape, "data": consts[1]})
            ins.append(3)
        tensors.append({"shape": case["o"]})
        content = make_tflite(tensors, [{"op": case["op"], "inputs": ins, "outputs": [len(tensors) - 1],
                                         "options": case["opt"], "fields": case["f"], "version": case["v"]}],
                              [0], [len(tensors) - 1])
    else:
        content = _single_op(case["op"], case["i"], case["o"], consts, case.get("opt"), case.get("f"),
                             case.get("v", 1), case.get("const_first", False))
    _check_single(content, case["i"])


def test_pad_folded_into_a_same_convolution():
    """PAD -> CONV_2D(SAME, stride 2): the PAD is folded into the conv's own padding."""
    w, bias = W3(4, 3, 3, 2), W3(4)
    tensors = [{"shape": (1, 7, 8, 2)}, {"shape": (4, 2), "data": np.int32([[0, 0], [2, 1], [0, 3], [0, 0]]),
                                        "dtype": "i"},
               {"shape": (1, 10, 11, 2)}, {"shape": w.shape, "data": w}, {"shape": (4,), "data": bias},
               {"shape": (1, 5, 6, 4)}]
    content = make_tflite(tensors, [
        {"op": "PAD", "inputs": [0, 1], "outputs": [2]},
        {"op": "CONV_2D", "inputs": [2, 3, 4], "outputs": [5], "options": "Conv2DOptions",
         "fields": dict(Padding=SAME, StrideH=2, StrideW=2, DilationHFactor=1, DilationWFactor=1)}], [0], [5])
    m = _check_single(content, (1, 7, 8, 2))
    # SAME on the padded 10x11 input adds (l, r, t, b) = (1, 1, 0, 1) to the PAD's (0, 3, 2, 1)
    assert len(m.layers) == 1 and next(iter(m.layers.values())).pad == (1, 4, 2, 2)


def test_interpolate_fast_paths_equal_tflite_sampling():
    """F.interpolate (used for half-pixel / align-corners bilinear) equals TFLite's formulas."""
    x = torch.randn(2, 3, 5, 7)
    for align, half in ((False, True), (True, False)):
        fast = O.Resize("bilinear", (5, 7), (11, 4), align, half)
        assert fast.use_interpolate
        y0, y1, wy = (torch.from_numpy(a) for a in O.resize_source_indices(5, 11, align, half))
        x0, x1, wx = (torch.from_numpy(a) for a in O.resize_source_indices(7, 4, align, half))
        torch.testing.assert_close(fast(x), O.resize_gather(x, y0, y1, wy, x0, x1, wx), rtol=0, atol=1e-6)


def test_unsupported_op_is_named():
    content = _single_op("EXP", (1, 4), (1, 4))
    with pytest.raises(ModelError, match="EXP"):
        convert_graph(parse_tflite(content))


def test_unknown_output_name_is_a_model_error(mediapipe_cache):
    g = read_tflite(_model(mediapipe_cache, "hand_landmark_lite"))
    with pytest.raises(ModelError, match="no tensor 'nope'.*Identity"):
        convert_graph(g, outputs=["nope"])
