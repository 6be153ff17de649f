"""Loading weights into posetune models: posetune/Lightning checkpoints, plain state dicts,
timm/torchvision backbone weights, MMPose top-down and MMAction2 TSN checkpoints.

Every load returns a :class:`LoadReport` (matched, missing, unexpected and shape-mismatched keys;
printable as a rich table). Files are read with ``torch.load(weights_only=True)``; a file that
needs arbitrary unpickling is refused unless the caller opts in (``allow_unsafe=True``,
``model.allow_unsafe_load: true`` or ``--allow-unsafe-load``), because unpickling can run code.

Key names. posetune's top-down models are ``backbone.<timm name>`` + ``head.<name>``; the heads
use MMPose's layer names (``deconv_layers.N``, ``final_layer``). MMPose's ResNet and HRNet
backbones use the same module names as timm's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``transition1.0.0``, ``stage2.0.branches.0.0.conv1``, ``stage2.0.fuse_layers.0.1.0`` ...), so the
mapping functions below only handle the prefixes and the few real differences (MMPose 0.x
``keypoint_head.``, ResNetV1d's deep stem, MMAction2's ConvModule ``.conv``/``.bn`` wrappers).

When the checkpoint's head predicts a different keypoint set, rows are copied by keypoint name if
the checkpoint stores names (posetune metadata, MMPose 1.x ``dataset_meta``); otherwise the head
is skipped (non-strict) or a CheckpointError names both counts (strict).
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from posetune.errors import CheckpointError

#: keys never reported as missing (BatchNorm step counters are not weights)
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
#: numpy array reconstruction, allowed with weights_only (MMPose metadata stores sigmas as arrays)
_NUMPY_SAFE = re.compile(r"^numpy\.(?:_core\.multiarray\.(?:_reconstruct|scalar)|core\.multiarray\.(?:_reconstruct|scalar)"
                         r"|ndarray|dtype|dtypes\.\w+DType)$")
_SHOW = 8  # keys shown per category in messages


# ----------------------------------------------------------------------------- report
@dataclass
class LoadReport:
    """What happened to every key of a weight file."""

    source: str
    kind: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every key matched (nothing missing, unexpected or mismatched)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{len(self.matched)} matched"]
        for name, items in (("adapted by keypoint name", self.adapted), ("missing", self.missing),
                            ("unexpected", self.unexpected), ("shape-mismatched", self.mismatched)):
            if items:
                parts.append(f"{len(items)} {name}")
        text = f"{self.kind} weights from {self.source}: " + ", ".join(parts)
        return text + ("" if not self.notes else " (" + "; ".join(self.notes) + ")")

    def problems_text(self, limit: int = _SHOW) -> str:
        """The unmatched keys, a few per category, for error messages."""
        out = []
        for name, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
                out.append(f"{name}: {', '.join(keys[:limit])}{more}")
        if self.mismatched:
            items = [f"{k} {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:limit]]
            more = f" (+{len(self.mismatched) - limit} more)" if len(self.mismatched) > limit else ""
            out.append(f"shape-mismatched: {', '.join(items)}{more}")
        return "; ".join(out)

    def to_table(self, limit: int = _SHOW) -> Any:
        """A rich Table: one row per category with its count and example keys."""
        from rich.table import Table

        table = Table(title=f"weights: {self.source} ({self.kind})", title_justify="left")
        table.add_column("keys")
        table.add_column("count", justify="right")
        table.add_column("examples")

        def examples(keys: list[str]) -> str:
            more = f"\n… +{len(keys) - limit} more" if len(keys) > limit else ""
            return "\n".join(keys[:limit]) + more

        table.add_row("[green]matched[/]", str(len(self.matched)), "")
        if self.adapted:
            table.add_row("[cyan]adapted (keypoints by name)[/]", str(len(self.adapted)), examples(self.adapted))
        table.add_row("[yellow]missing (kept initial values)[/]", str(len(self.missing)), examples(self.missing))
        table.add_row("[yellow]unexpected (ignored)[/]", str(len(self.unexpected)), examples(self.unexpected))
        mism = [f"{k}: {list(a)} ≠ model {list(b)}" for k, a, b in self.mismatched]
        table.add_row("[red]shape-mismatched (skipped)[/]", str(len(self.mismatched)), examples(mism))
        if self.notes:
            table.caption = "; ".join(self.notes)
        return table

    def __rich__(self) -> Any:
        return self.to_table()


# ----------------------------------------------------------------------------- reading
def _resolve_global(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(importlib.import_module(module), attr)


def _numpy_globals(path: Path) -> list[tuple[Any, str]] | None:
    """Allow-list entries for the numpy globals of ``path`` when those are all it needs."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a zip checkpoint: no allow-listing
        return None
    if not names or not all(_NUMPY_SAFE.match(n) for n in names):
        return None
    try:
        allow: list[Any] = [(_resolve_global(n), n) for n in names]
    except (ImportError, AttributeError):
        return None
    # dtype instances are rebuilt through their concrete classes (numpy.dtypes.Float32DType ...)
    import numpy as np

    allow += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return allow


def read_checkpoint(source: str | os.PathLike, *, allow_unsafe: bool = False, sha256: str | None = None,
                    progress: bool = True) -> Any:
    """The object stored in a weight file (path, ``file://`` or ``http(s)://`` URL).

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)`` (numpy arrays in metadata are allowed). Files that need
    other classes unpickled are refused with a CheckpointError unless ``allow_unsafe``.
    """
    from posetune.models import hub

    path = hub.resolve(source, sha256=sha256, progress=progress)
    where = str(source)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:  # pragma: no cover - timm depends on safetensors
            raise CheckpointError("reading .safetensors needs the 'safetensors' package", where=where,
                                  hint="pip install safetensors") from None
        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"cannot read safetensors file ({e})", where=where,
                                  hint="the file is corrupt or not a safetensors file") from None
    return _torch_load(path, where, allow_unsafe)


def _read_error(e: BaseException, where: str) -> CheckpointError:
    first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    return CheckpointError(f"cannot read weights ({first})", where=where,
                           hint="the file is empty, truncated or not a PyTorch checkpoint; download it again")


def _torch_load(path: Path, where: str, allow_unsafe: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        error: Exception = e
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/EOFError/IndexError... on junk
        raise _read_error(e, where) from None
    match = _UNSAFE_GLOBAL.search(str(error))
    allow = _numpy_globals(path) if match else None
    if allow is not None:
        try:
            with torch.serialization.safe_globals(allow):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            match = _UNSAFE_GLOBAL.search(str(e)) or match
        except Exception as e:  # noqa: BLE001
            raise _read_error(e, where) from None
    if not allow_unsafe:
        if match:
            what = (f"the file stores a Python object of class '{match.group(1)}', which only unrestricted "
                    "unpickling can rebuild — and unpickling a file can run arbitrary code")
        else:
            what = ("the file cannot be read as plain weights (corrupt, or a pickle that needs unrestricted "
                    "unpickling, which can run arbitrary code)")
        raise CheckpointError(what, where=where,
                              hint="if you trust the file's source, opt in with allow_unsafe=True, "
                                   "model.allow_unsafe_load: true or --allow-unsafe-load")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - arbitrary unpickling can raise anything
        raise CheckpointError(f"cannot read weights even with unsafe loading ({type(e).__name__}: {e})", where=where,
                              hint="the file is corrupt or not a PyTorch checkpoint") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


@dataclass
class CheckpointContent:
    """A weight file's tensors in a known layout plus what it says about the keypoints."""

    state_dict: dict[str, torch.Tensor]
    kind: str  # posetune | lightning | mmpose | mmaction | state_dict
    keypoint_names: list[str] | None = None
    meta: dict[str, Any] | None = None
    dropped: list[str] = field(default_factory=list)


def _mmpose_names(obj: dict) -> list[str] | None:
    meta = obj.get("meta")
    dataset_meta = meta.get("dataset_meta") if isinstance(meta, dict) else None
    id2name = dataset_meta.get("keypoint_id2name") if isinstance(dataset_meta, dict) else None
    if isinstance(id2name, dict) and id2name:
        try:
            return [str(id2name[i]) for i in sorted(int(k) for k in id2name)]
        except (KeyError, ValueError):
            return None
    return None


def split_checkpoint(obj: Any, where: str = "checkpoint") -> CheckpointContent:
    """Recognise the layout of a loaded weight file and return its state dict in posetune terms.

    posetune / Lightning checkpoints: ``state_dict`` with ``model.`` keys (other Lightning-module
    keys, e.g. loss buffers, are dropped). MMPose: ``state_dict`` with ``backbone.`` and
    ``keypoint_head.`` (0.x) or ``head.`` (1.x) keys. MMAction2: ``backbone.`` + ``cls_head.``.
    Anything else: a plain state dict (or ``{'model': state_dict}``), a ``module.`` prefix removed.
    """
    if isinstance(obj, nn.Module):
        return CheckpointContent(dict(obj.state_dict()), "state_dict")
    if not isinstance(obj, dict):
        raise CheckpointError(f"holds a {type(obj).__name__}, not weights", where=where,
                              hint="pass a checkpoint or state-dict file")
    if isinstance(obj.get("posetune"), dict) and isinstance(obj.get("state_dict"), dict):
        meta = obj["posetune"]
        sd = obj["state_dict"]
        model_sd = _strip(sd, "model.")
        spec = meta.get("spec") or (meta.get("model") or {}).get("spec") or {}
        names = list(spec.get("keypoints") or []) or None
        return CheckpointContent(model_sd, "posetune", names, meta, [k for k in sd if not k.startswith("model.")])
    inner = obj.get("state_dict") if isinstance(obj.get("state_dict"), dict) else None
    if inner is None and _is_state_dict(obj.get("model")):
        inner = obj["model"]
    sd = inner if inner is not None else obj
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError("holds no weight tensors", where=where, hint="pass a checkpoint or state-dict file")
    if all(k.startswith("module.") for k in sd):
        sd = _strip(sd, "module.")
    keys = list(sd)
    if any(k.startswith("cls_head.") for k in keys) and any(k.startswith("backbone.") for k in keys):
        return CheckpointContent(sd, "mmaction", meta=obj.get("meta") if isinstance(obj.get("meta"), dict) else None)
    mmpose_meta = inner is not None and isinstance(obj.get("meta"), dict)  # mmengine/mmcv checkpoints carry 'meta'
    if any(k.startswith("backbone.") for k in keys) and (
            any(k.startswith("keypoint_head.") for k in keys)
            or (mmpose_meta and any(k.startswith("head.") for k in keys))):
        return CheckpointContent(sd, "mmpose", _mmpose_names(obj), meta=obj.get("meta") if mmpose_meta else None)
    if inner is not None and any(k.startswith("model.") for k in keys):
        return CheckpointContent(_strip(sd, "model."), "lightning", dropped=[k for k in keys if not k.startswith("model.")])
    return CheckpointContent(sd, "state_dict")


# ----------------------------------------------------------------------------- key mappings
def flatten_first_index(key: str) -> str:
    """timm's FeatureListNet flattens the first ``name.N`` level into ``name_N``."""
    return re.sub(r"^([A-Za-z]\w*)\.(\d+)\.", r"\1_\2.", key, count=1)


def timm_key_candidates(key: str) -> list[str]:
    """Names a timm (or torchvision ResNet) key may have inside a timm ``features_only`` model."""
    flat = flatten_first_index(key)
    return [key] if flat == key else [key, flat]


_V1D_STEM = {"stem.0.conv.": "conv1.0.", "stem.0.bn.": "conv1.1.", "stem.1.conv.": "conv1.3.",
             "stem.1.bn.": "conv1.4.", "stem.2.conv.": "conv1.6.", "stem.2.bn.": "bn1."}


def mmpose_resnet_key_to_timm(key: str) -> str:
    """An MMPose ResNet backbone key (without ``backbone.``) as timm's ``resnet*`` names it.

    MMPose's ResNet keeps torchvision's names (``conv1``, ``bn1``, ``layerN.M.convK``/``bnK``,
    ``downsample.0/1``), which timm shares; ResNetV1d's deep stem (``stem.i.conv``/``.bn``) becomes
    timm ``resnet*d``'s ``conv1.{0,1,3,4,6}`` and ``bn1``; its avg-pool downsample keeps its indices.
    """
    for old, new in _V1D_STEM.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def mmpose_hrnet_key_to_timm(key: str) -> str:
    """An MMPose HRNet backbone key (without ``backbone.``) as timm's ``hrnet_w*`` names it.

    Both derive from the original HRNet code and name every module the same way: stem ``conv1``,
    ``bn1``, ``conv2``, ``bn2``; ``layer1`` (Bottlenecks); ``transitionN.i.0/1`` (conv, BN) or
    ``transitionN.i.0.0/1`` for new branches; ``stageN.m.branches.b.k.conv1/bn1``; fuse layers
    ``stageN.m.fuse_layers.i.j.0/1`` (upsampling) and ``...i.j.k.0/1`` (strided convs). MMPose's
    last module keeps only ``fuse_layers.0`` (stride 4), as does posetune's pruned timm HRNet.
    """
    return key


def mmpose_key_to_posetune(key: str) -> str:
    """An MMPose top-down checkpoint key as posetune's top-down model names it.

    ``backbone.*`` -> ``backbone.*`` through :func:`mmpose_resnet_key_to_timm` /
    :func:`mmpose_hrnet_key_to_timm`; ``keypoint_head.*`` (0.x) and ``head.*`` (1.x) -> ``head.*``
    (``deconv_layers.N`` and ``final_layer`` are posetune's names too). MMPose 0.x heads with
    extra convs store ``final_layer.{0,1,3}`` (conv, BN, 1x1): these map to
    ``conv_layers.{0,1}`` and ``final_layer``.
    """
    if key.startswith("backbone."):
        rest = mmpose_hrnet_key_to_timm(mmpose_resnet_key_to_timm(key[len("backbone."):]))
        return "backbone." + rest
    for prefix in ("keypoint_head.", "head."):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            m = re.match(r"^final_layer\.(\d+)\.(.*)$", rest)
            if m:
                i = int(m.group(1))
                rest = f"conv_layers.{i}.{m.group(2)}" if i < 3 else f"final_layer.{m.group(2)}"
            return "head." + rest
    return key


def mmaction_tsn_to_timm_resnet(state_dict: dict[str, torch.Tensor]
                                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An MMAction2 TSN ResNet checkpoint's state dict -> (timm ``resnet`` backbone state dict,
    classifier state dict with keys ``fc.weight``/``fc.bias``).

    MMAction2's ResNet wraps each conv and its BN in a ConvModule: ``conv1.conv``/``conv1.bn``
    (stem -> timm ``conv1``/``bn1``), ``layerN.M.convK.conv``/``.bn`` (-> ``convK``/``bnK``) and
    ``downsample.conv``/``.bn`` (-> ``downsample.0``/``.1``). ``cls_head.fc_cls`` is the classifier.
    The two dicts together load into ``timm.create_model('resnet50', num_classes=C)``.
    """
    sd = _strip(state_dict, "backbone.") if any(k.startswith("backbone.") for k in state_dict) else dict(state_dict)
    backbone: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith("cls_head."):
            continue
        k = re.sub(r"^conv1\.conv\.", "conv1.", key)
        k = re.sub(r"^conv1\.bn\.", "bn1.", k)
        k = re.sub(r"\.conv(\d)\.conv\.", r".conv\1.", k)
        k = re.sub(r"\.conv(\d)\.bn\.", r".bn\1.", k)
        k = k.replace(".downsample.conv.", ".downsample.0.").replace(".downsample.bn.", ".downsample.1.")
        backbone[k] = value
    head = {k.replace("cls_head.fc_cls.", "fc."): v for k, v in state_dict.items() if k.startswith("cls_head.fc_cls.")}
    return backbone, head


# ----------------------------------------------------------------------------- applying
def _keypoint_keys(module: nn.Module, prefix: str) -> dict[str, int]:
    """Full state-dict key -> rows per keypoint, for the head's per-keypoint layers."""
    head = getattr(module, "head", None)
    layers = head.keypoint_layers() if head is not None and hasattr(head, "keypoint_layers") else {}
    out = {}
    for attr, group in layers.items():
        for p in ("weight", "bias"):
            out[f"{prefix}head.{attr}.{p}"] = group
    return out


def _apply(module: nn.Module, content: CheckpointContent, source: str, key_fn: Callable[[str], Iterable[str]],
           model_names: list[str] | None, strict: bool) -> LoadReport:
    """Copy every checkpoint tensor whose mapped key and shape fit ``module`` (in place)."""
    from posetune.models.heads import copy_keypoint_rows
    from posetune.models.topdown import keypoint_index_map

    target = module.state_dict()
    kp_keys = _keypoint_keys(module, "")
    report = LoadReport(source=source, kind=content.kind)
    ckpt_names = content.keypoint_names
    index_map = None
    if ckpt_names and model_names and list(ckpt_names) != list(model_names):
        index_map = keypoint_index_map(ckpt_names, model_names)
    loaded: set[str] = set()
    updates: dict[str, torch.Tensor] = {}
    count_problem: tuple[int, int] | None = None
    for key, value in content.state_dict.items():
        dest = next((c for c in key_fn(key) if c in target), None)
        if dest is None or dest in loaded:
            report.unexpected.append(key)
            continue
        have = target[dest]
        if dest in kp_keys and (index_map is not None or value.shape != have.shape):
            group = kp_keys[dest]
            if index_map is not None and value.shape[1:] == have.shape[1:] \
                    and value.shape[0] == len(ckpt_names) * group:
                new = have.detach().clone()
                copy_keypoint_rows(new, value.to(new.dtype), index_map, group)
                updates[dest] = new
                report.adapted.append(dest)
                loaded.add(dest)
                continue
            if value.shape[1:] == have.shape[1:] and value.shape[0] % group == 0:
                count_problem = (value.shape[0] // group, have.shape[0] // group)
        if value.shape != have.shape:
            report.mismatched.append((key, tuple(value.shape), tuple(have.shape)))
            continue
        updates[dest] = value
        report.matched.append(key)
        loaded.add(dest)
    report.missing = [k for k in target if k not in loaded and not k.endswith(_IGNORED_SUFFIXES)]
    if index_map is not None and report.adapted:
        n = sum(j is not None for j in index_map)
        report.notes.append(f"head: {n} of {len(index_map)} keypoints copied by name from the checkpoint's "
                            f"{len(ckpt_names)}")
    if count_problem is not None:
        report.notes.append(f"head predicts {count_problem[0]} keypoints, the model {count_problem[1]}: "
                            "head layer skipped")
    if strict:
        if count_problem is not None:
            raise CheckpointError(
                f"the checkpoint's head predicts {count_problem[0]} keypoints but the model has {count_problem[1]}, "
                "and the checkpoint stores no keypoint names to match them by", where=source,
                hint="set model.load_strict: false (strict=False) to load everything except the head's last layer")
        if not report.ok:
            raise CheckpointError(f"weights do not fit the model exactly: {report.problems_text()}", where=source,
                                  hint="set model.load_strict: false (strict=False) to load the keys that fit")
    with torch.no_grad():
        for dest, value in updates.items():
            target[dest].copy_(value.to(dtype=target[dest].dtype))
    return report


def _spec_names(model: nn.Module) -> list[str] | None:
    spec = getattr(model, "spec", None)
    return list(spec.keypoints) if spec is not None else None


def load_content(model: nn.Module, content: CheckpointContent, source: str, *, strict: bool = False) -> LoadReport:
    """Load already-read weights (see :func:`split_checkpoint`) into a posetune model."""
    sd = content.state_dict
    if content.kind == "mmaction":
        backbone_sd, _ = mmaction_tsn_to_timm_resnet(sd)
        content = CheckpointContent({"backbone." + k: v for k, v in backbone_sd.items()}, "mmaction",
                                    dropped=[k for k in sd if k.startswith("cls_head.")])
        sd = content.state_dict
    # a timm classifier's own "head.*" keys must not be read as a posetune head
    full_model = content.kind in ("posetune", "lightning", "mmpose", "mmaction") or any(
        k.startswith("backbone.") for k in sd)
    if full_model:
        def key_fn(k: str) -> list[str]:
            # MMPose's names differ from posetune's only where posetune never uses them, so the
            # mapping is safe for every full-model state dict (plain posetune ones included)
            mapped = mmpose_key_to_posetune(k)
            if mapped.startswith("backbone."):
                return ["backbone." + c for c in timm_key_candidates(mapped[len("backbone."):])]
            return [mapped]
    else:
        def key_fn(k: str) -> list[str]:
            return ["backbone." + c for c in timm_key_candidates(k)]
    report = _apply(model, content, source, key_fn, _spec_names(model), strict)
    if content.kind in ("posetune", "lightning"):
        if content.dropped:
            report.notes.append(f"{len(content.dropped)} training-only keys ignored")
    else:
        report.unexpected.extend(content.dropped)
    return report


def load_weights(model: nn.Module, source: str | os.PathLike, *, strict: bool = False,
                 allow_unsafe: bool = False, sha256: str | None = None) -> LoadReport:
    """Load a weight file (path or URL) into a posetune model and report what matched.

    Accepted: posetune checkpoints (Lightning ``.ckpt`` with ``posetune`` metadata), other
    Lightning checkpoints and plain state dicts of the same architecture, timm/torchvision backbone
    state dicts (loaded into ``backbone``), MMPose 0.x/1.x top-down checkpoints (ResNet
    SimpleBaseline, HRNet) and MMAction2 TSN ResNet checkpoints (backbone only).

    ``strict=True`` raises a CheckpointError listing every key that did not fit. Keypoint sets
    that differ are matched by name when the checkpoint stores names.
    """
    where = os.fspath(source)
    obj = read_checkpoint(where, allow_unsafe=allow_unsafe, sha256=sha256)
    return load_content(model, split_checkpoint(obj, where), where, strict=strict)


def load_backbone_weights(backbone: nn.Module, source: str | os.PathLike, *, sha256: str | None = None,
                          strict: bool = False, allow_unsafe: bool = False) -> LoadReport:
    """Load backbone weights (``model.backbone.pretrained: <path or URL>``) into a timm
    ``features_only`` backbone: a timm or torchvision state dict of the same architecture, or the
    ``backbone.*`` part of a posetune / MMPose / MMAction2 checkpoint. Classifier keys are reported
    as unexpected."""
    where = os.fspath(source)
    content = split_checkpoint(read_checkpoint(where, allow_unsafe=allow_unsafe, sha256=sha256), where)
    sd = content.state_dict
    if content.kind == "mmaction":
        sd, _ = mmaction_tsn_to_timm_resnet(sd)
    elif any(k.startswith("backbone.") for k in sd):
        other = [k for k in sd if not k.startswith("backbone.")]
        sd = {mmpose_key_to_posetune(k)[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
        content.dropped.extend(other)
    part = CheckpointContent(sd, content.kind, dropped=content.dropped)
    report = _apply(backbone, part, where, timm_key_candidates, None, strict)
    report.unexpected.extend(content.dropped)
    return report


def load_model(source: str | os.PathLike, *, allow_unsafe: bool = False, sha256: str | None = None) -> nn.Module:
    """Rebuild a model from a posetune checkpoint (architecture, spec and codec from its metadata)
    and load its weights strictly."""
    from posetune.models.build import build_from_description

    where = os.fspath(source)
    content = split_checkpoint(read_checkpoint(where, allow_unsafe=allow_unsafe, sha256=sha256), where)
    if content.kind != "posetune" or not isinstance((content.meta or {}).get("model"), dict):
        raise CheckpointError("not a posetune checkpoint (no 'posetune' metadata to rebuild the model from)",
                              where=where, hint="build the model from a config and use load_weights / model.load_from")
    model = build_from_description(content.meta["model"])
    load_content(model, content, where, strict=True)
    return model


__all__ = [
    "LoadReport", "CheckpointContent", "read_checkpoint", "split_checkpoint", "load_weights", "load_backbone_weights",
    "load_content", "load_model", "mmaction_tsn_to_timm_resnet", "mmpose_key_to_posetune", "mmpose_resnet_key_to_timm",
    "mmpose_hrnet_key_to_timm", "timm_key_candidates", "flatten_first_index",
]
