"""Training losses for keypoint models, built from the ``loss`` config section and the codec.

:func:`build_loss` returns a :class:`KeypointLoss`; ``loss(outputs, targets)`` gives
``(loss, parts)`` where ``targets`` are the batched codec targets and ``parts`` maps each term
name to its (unweighted) value.

``loss.type`` is ``auto`` or a weighted sum of terms, e.g. ``0.7*mse + 0.3*l1``, ``kl`` or
``ohkm + 0.1*mse`` (parsed by a small scanner, never ``eval``). ``auto`` picks the codec's usual
loss: ``mse`` for heatmap codecs (msra, udp), ``kl`` for simcc, ``smooth_l1`` for regression.

Terms, and the codec outputs they fit (a codec tells its kind by ``output_kind``):

==============  =====================  =========================================================
term            outputs                per element / per keypoint
==============  =====================  =========================================================
mse             heatmap, regression    squared error
heatmap_mse     heatmap                the same as ``mse`` (MMPose's name)
ohkm            heatmap, regression    squared error; only each sample's ``ohkm_topk`` hardest
                                       (weighted) keypoints count (online hard keypoint mining)
l1              heatmap, regression    absolute error
smooth_l1       heatmap, regression    Huber-style, ``smooth_l1_beta``
wing            regression             Wing (Feng et al. 2018), ``wing_w``, ``wing_epsilon``
adaptive_wing   heatmap                Adaptive Wing (Wang et al. 2019), alpha 2.1, omega 14,
                                       epsilon 1, theta 0.5 (the paper's values)
kl              simcc                  KL(target || softmax(simcc_beta * logits)) summed over bins,
                                       x plus y (SimCC's KLDiscretLoss)
soft_ce         simcc                  cross-entropy with the soft target, x plus y (KL + the
                                       target's entropy: same gradients)
==============  =====================  =========================================================

Reduction: the element-wise loss is averaged over each keypoint's elements (heatmap pixels,
or the x and y coordinate), multiplied by the keypoint's weight, then averaged over batch and
keypoints — for ``mse`` on heatmaps that is the plain mean of ``w * (pred - target) ** 2`` over
all B*K*H*W values (MMPose's ``KeypointMSELoss`` convention, without a 0.5 factor). Weights are
the codec's ``keypoint_weights`` (0 for unlabelled / outside keypoints; all 1 when
``use_target_weight`` is false) times ``keypoint_weights`` from the config (a list in spec order
or a mapping ``name: weight``, missing names weigh 1). Regression terms work on normalised
coordinates in [0, 1], so ``smooth_l1`` with the default beta 1 acts like ``0.5 * mse``; lower
``smooth_l1_beta`` (e.g. 0.05) for an L1-like loss.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posetune.codecs.base import Codec, Outputs
from posetune.config.schema import LossConfig
from posetune.data.spec import KeypointSpec
from posetune.errors import ConfigError, ModelError

#: term -> output kinds it fits
TERM_KINDS: dict[str, tuple[str, ...]] = {
    "mse": ("heatmap", "regression"),
    "heatmap_mse": ("heatmap",),
    "ohkm": ("heatmap", "regression"),
    "l1": ("heatmap", "regression"),
    "smooth_l1": ("heatmap", "regression"),
    "wing": ("regression",),
    "adaptive_wing": ("heatmap",),
    "kl": ("simcc",),
    "soft_ce": ("simcc",),
}
#: output kind -> the ``auto`` loss
AUTO_TERMS: dict[str, str] = {"heatmap": "mse", "simcc": "kl", "regression": "smooth_l1"}
#: output kind -> target keys the codec produces
TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "heatmap": ("heatmaps",), "simcc": ("simcc_x", "simcc_y"), "regression": ("keypoints_norm",)}
#: Adaptive Wing constants (Wang et al. 2019)
AWING_ALPHA, AWING_OMEGA, AWING_EPSILON, AWING_THETA = 2.1, 14.0, 1.0, 0.5

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TERM_RE = re.compile(rf"\s*(?:(?P<c1>{_NUM})\s*\*\s*)?(?P<name>[A-Za-z_][\w\-]*)(?:\s*\*\s*(?P<c2>{_NUM}))?\s*")
_EXAMPLE = "write terms as 'name' or 'weight*name' joined by '+', e.g. '0.7*mse + 0.3*l1'"


# ----------------------------------------------------------------------------- element-wise terms
def wing_loss(error: torch.Tensor, w: float = 10.0, epsilon: float = 2.0) -> torch.Tensor:
    """Wing loss of coordinate errors: ``w * ln(1 + |e| / epsilon)`` below ``w``, else ``|e| - C``."""
    a = error.abs()
    c = w - w * math.log1p(w / epsilon)
    return torch.where(a < w, w * torch.log1p(a / epsilon), a - c)


def adaptive_wing_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = AWING_ALPHA,
                       omega: float = AWING_OMEGA, epsilon: float = AWING_EPSILON,
                       theta: float = AWING_THETA) -> torch.Tensor:
    """Adaptive Wing loss of heatmaps (element-wise); ``target`` in [0, 1]."""
    d = (target - pred).abs()
    p = alpha - target
    r = theta / epsilon
    big_a = omega * (1.0 / (1.0 + torch.pow(r, p))) * p * torch.pow(r, p - 1.0) / epsilon
    big_c = theta * big_a - omega * torch.log1p(torch.pow(r, p))
    return torch.where(d < theta, omega * torch.log1p(torch.pow(d / epsilon, p)), big_a * d - big_c)


def simcc_kl(logits: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """KL(target || softmax(beta * logits)) per row (sums over the last axis)."""
    logp = F.log_softmax(logits * beta, dim=-1)
    return (torch.xlogy(target, target) - target * logp).sum(dim=-1)


def simcc_soft_ce(logits: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Cross-entropy ``-sum target * log softmax(beta * logits)`` per row."""
    return -(target * F.log_softmax(logits * beta, dim=-1)).sum(dim=-1)


# ----------------------------------------------------------------------------- config parsing
def parse_loss_expression(text: str) -> list[tuple[float, str]]:
    """``'0.7*mse + 0.3*l1'`` -> ``[(0.7, 'mse'), (0.3, 'l1')]`` (repeated terms add up).

    Raises :class:`ConfigError` (``loss.type``) for bad syntax or unknown terms.
    """
    src = str(text)
    valid = ", ".join(TERM_KINDS)
    if not src.strip():
        raise ConfigError("the loss expression is empty", where="loss.type", hint=f"use 'auto' or {_EXAMPLE}")
    pos, coefs = 0, {}
    while True:
        m = _TERM_RE.match(src, pos)
        if m is None:
            raise ConfigError(f"cannot read loss expression '{src}' at character {pos + 1}", where="loss.type",
                              hint=f"{_EXAMPLE}; terms: {valid}")
        name = m.group("name").lower().replace("-", "_")
        if name not in TERM_KINDS:
            raise ConfigError(f"unknown loss term '{m.group('name')}' in '{src}'", where="loss.type",
                              hint=f"valid terms: {valid} (or 'auto')")
        coef = float(m.group("c1") or 1.0) * float(m.group("c2") or 1.0)
        coefs[name] = coefs.get(name, 0.0) + coef
        pos = m.end()
        if pos == len(src):
            break
        if src[pos] != "+":
            raise ConfigError(f"cannot read loss expression '{src}' at character {pos + 1} ('{src[pos]}')",
                              where="loss.type", hint=f"{_EXAMPLE}; terms: {valid}")
        pos += 1
    return [(c, n) for n, c in coefs.items()]


def codec_output_kind(codec: Codec) -> str | None:
    """'heatmap', 'simcc' or 'regression' (a codec's ``output_kind``), or None when unknown."""
    kind = getattr(codec, "output_kind", None)
    return kind if kind in TARGET_KEYS else None


def resolve_terms(expr: str, codec: Codec) -> list[tuple[float, str]]:
    """The weighted terms of ``loss.type`` for ``codec``, checked against its outputs."""
    kind = codec_output_kind(codec)
    if kind is None:
        raise ConfigError(f"posetune has no training loss for the '{codec.name}' codec", where="loss.type",
                          hint="use a codec with heatmap, simcc or regression outputs (model.codec.type)")
    if expr.strip().lower() == "auto":
        return [(1.0, AUTO_TERMS[kind])]
    terms = parse_loss_expression(expr)
    for _, name in terms:
        if kind not in TERM_KINDS[name]:
            fits = [t for t, kinds in TERM_KINDS.items() if kind in kinds]
            needs = " or ".join(f"{k} outputs" for k in TERM_KINDS[name])
            raise ConfigError(f"loss term '{name}' needs {needs} but the '{codec.name}' codec gives {kind} outputs",
                              where="loss.type", hint=f"terms for {kind} outputs: {', '.join(fits)}")
    return terms


def resolve_keypoint_weights(value: Sequence[float] | dict[str, float] | None,
                             spec: KeypointSpec) -> np.ndarray | None:
    """``loss.keypoint_weights`` (list in spec order, or ``{name: weight}``) -> (K,) array."""
    if value is None:
        return None
    k = spec.num_keypoints
    if isinstance(value, dict):
        out = np.ones(k, dtype=np.float64)
        for name, wt in value.items():
            if not spec.has(name):
                raise ConfigError(f"unknown keypoint '{name}'", where="loss.keypoint_weights",
                                  hint=f"keypoints of '{spec.name}': {', '.join(spec.keypoints)}")
            out[spec.index(name)] = float(wt)
    else:
        out = np.asarray(list(value), dtype=np.float64)
        if out.shape != (k,):
            raise ConfigError(f"{out.size} weights for {k} keypoints", where="loss.keypoint_weights",
                              hint=f"give one weight per keypoint in spec order ({', '.join(spec.keypoints)}), "
                                   "or a mapping name: weight")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ConfigError(f"weights must be finite and >= 0, got {out.tolist()}", where="loss.keypoint_weights",
                          hint="use non-negative numbers (0 ignores a keypoint)")
    return out


# ----------------------------------------------------------------------------- the module
class KeypointLoss(nn.Module):
    """Weighted sum of loss terms for one codec output kind (see the module docstring)."""

    def __init__(self, terms: Sequence[tuple[float, str]], kind: str, *, use_target_weight: bool = True,
                 keypoint_weights: np.ndarray | Sequence[float] | None = None, ohkm_topk: int = 8,
                 smooth_l1_beta: float = 1.0, wing_w: float = 10.0, wing_epsilon: float = 2.0,
                 simcc_beta: float = 10.0):
        super().__init__()
        if kind not in TARGET_KEYS:
            raise ValueError(f"unknown output kind '{kind}'")
        for _, name in terms:
            if kind not in TERM_KINDS.get(name, ()):
                raise ValueError(f"term '{name}' does not fit {kind} outputs")
        self.terms = [(float(c), str(n)) for c, n in terms]
        self.kind = kind
        self.use_target_weight = bool(use_target_weight)
        self.ohkm_topk = int(ohkm_topk)
        self.smooth_l1_beta = float(smooth_l1_beta)
        self.wing_w = float(wing_w)
        self.wing_epsilon = float(wing_epsilon)
        self.simcc_beta = float(simcc_beta)
        kw = None if keypoint_weights is None else torch.as_tensor(np.asarray(keypoint_weights), dtype=torch.float32)
        self.register_buffer("keypoint_weights", kw, persistent=False)

    # --- inputs ------------------------------------------------------------------------
    def _pairs(self, outputs: Outputs, targets: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(prediction, target) float tensors, checked to have matching shapes."""
        keys = TARGET_KEYS[self.kind]
        missing = [k for k in keys if k not in targets]
        if missing:
            raise ValueError(f"targets lack {missing} (have {sorted(targets)}) for a {self.kind} loss")
        preds = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        if len(preds) != len(keys):
            raise ModelError(f"the model gives {len(preds)} output tensor(s) but the {self.kind} loss needs "
                             f"{len(keys)}",
                             where="model.head.type", hint="pick a head that matches model.codec.type")
        pairs = []
        for key, pred in zip(keys, preds):
            tgt = targets[key].float()
            pred = pred.float()
            if self.kind == "regression":
                ok = pred.ndim == 3 and pred.shape[:2] == tgt.shape[:2] and pred.shape[-1] in (2, 3)
                pred = pred[..., :2]
            else:
                ok = pred.shape == tgt.shape
            if not ok:
                raise ModelError(f"model output {tuple(pred.shape)} does not match the '{key}' target "
                                 f"{tuple(tgt.shape)}",
                                 where="model.codec", hint="make the head's output size match model.codec "
                                                           "(heatmap_size / simcc_split_ratio / keypoint count)")
            pairs.append((pred, tgt))
        return pairs

    def _weights(self, targets: dict[str, torch.Tensor], batch: int, k: int, like: torch.Tensor) -> torch.Tensor:
        if self.use_target_weight:
            if "keypoint_weights" not in targets:
                raise ValueError("targets lack 'keypoint_weights' (set loss.use_target_weight: false to ignore them)")
            w = targets["keypoint_weights"].to(like).reshape(batch, k)
        else:
            w = torch.ones(batch, k, dtype=like.dtype, device=like.device)
        if self.keypoint_weights is not None:
            if self.keypoint_weights.numel() != k:
                raise ModelError(f"loss.keypoint_weights has {self.keypoint_weights.numel()} values but the model "
                                 f"predicts {k} keypoints", where="loss.keypoint_weights",
                                 hint="give one weight per keypoint of the spec")
            w = w * self.keypoint_weights.to(like)[None]
        return w

    # --- per-keypoint losses (B, K), unweighted ------------------------------------------
    def _per_keypoint(self, name: str, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        if self.kind == "simcc":
            fn = simcc_kl if name == "kl" else simcc_soft_ce
            return sum(fn(p, t, self.simcc_beta) for p, t in pairs)  # type: ignore[return-value]
        pred, tgt = pairs[0]
        if name in ("mse", "heatmap_mse", "ohkm"):
            e = (pred - tgt) ** 2
        elif name == "l1":
            e = (pred - tgt).abs()
        elif name == "smooth_l1":
            e = F.smooth_l1_loss(pred, tgt, reduction="none", beta=self.smooth_l1_beta)
        elif name == "wing":
            e = wing_loss(pred - tgt, self.wing_w, self.wing_epsilon)
        elif name == "adaptive_wing":
            e = adaptive_wing_loss(pred, tgt)
        else:  # pragma: no cover - guarded in __init__
            raise ValueError(name)
        return e.flatten(2).mean(dim=-1)

    def forward(self, outputs: Outputs, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss and ``{term: value}`` (each term's value before its coefficient)."""
        pairs = self._pairs(outputs, targets)
        pred = pairs[0][0]
        batch, k = pred.shape[0], pred.shape[1]
        weights = self._weights(targets, batch, k, pred)
        total = pred.new_zeros(())
        parts: dict[str, float] = {}
        cache: dict[str, torch.Tensor] = {}
        for coef, name in self.terms:
            key = "mse" if name in ("heatmap_mse", "ohkm") else name
            if key not in cache:
                cache[key] = self._per_keypoint(key, pairs) * weights
            per_kp = cache[key]
            if name == "ohkm":
                value = per_kp.topk(min(self.ohkm_topk, k), dim=1).values.mean()
            else:
                value = per_kp.mean()
            total = total + coef * value
            parts[name] = float(value.detach())
        return total, parts

    def extra_repr(self) -> str:
        return " + ".join(f"{c:g}*{n}" for c, n in self.terms) + f" ({self.kind})"


def build_loss(cfg: LossConfig, codec: Codec, spec: KeypointSpec) -> nn.Module:
    """The loss of ``cfg`` (``loss`` section) for ``codec``'s outputs and ``spec``'s keypoints.

    A codec with a ``segmentation_weight`` > 0 (MediaPipe multi-task, see
    :mod:`posetune.models.mediapipe.segmentation`) adds its mask term: a ``MultiTaskLoss``.
    """
    terms = resolve_terms(cfg.type, codec)
    loss = KeypointLoss(
        terms, codec_output_kind(codec),  # type: ignore[arg-type]
        use_target_weight=cfg.use_target_weight,
        keypoint_weights=resolve_keypoint_weights(cfg.keypoint_weights, spec),
        ohkm_topk=cfg.ohkm_topk, smooth_l1_beta=cfg.smooth_l1_beta, wing_w=cfg.wing_w,
        wing_epsilon=cfg.wing_epsilon, simcc_beta=cfg.simcc_beta)
    mask_weight = float(getattr(codec, "segmentation_weight", 0.0) or 0.0)
    if mask_weight > 0:
        from posetune.models.mediapipe.segmentation import MultiTaskLoss

        return MultiTaskLoss(loss, mask_weight)
    return loss

