"""Heatmap codecs: MSRA Gaussian heatmaps and UDP heatmaps, with DARK sub-pixel decoding.

Targets (from :meth:`HeatmapCodec.encode`): ``heatmaps`` (K, h, w) float32 in [0, 1] and
``keypoint_weights`` (K,). Network outputs: a Tensor (B, K, h, w).

Both codecs place an *unrounded* Gaussian of standard deviation ``sigma`` (heatmap pixels,
peak value 1, cut to a square window of radius 3 sigma) at the keypoint's heatmap position;
they differ only in how input pixels map to heatmap pixels (pixel centres at integers,
``input_size = (W, H)``, ``heatmap_size = (w, h)``):

``msra`` (:class:`MSRAHeatmap`)
    The heatmap is the input downsampled by ``stride = W / w`` (per axis): heatmap pixel ``j``
    covers input pixels ``[j * stride, (j + 1) * stride)``, so
    ``x_heatmap = (x_input + 0.5) / stride - 0.5``. This is the pixel-centre-consistent form of
    MSRA's ``x / stride``: a horizontal flip ``x -> W - 1 - x`` becomes exactly
    ``x_heatmap -> w - 1 - x_heatmap``, so flip-test averaging needs no shift and adds no bias.
    (MMPose's MSRA heatmaps use ``x / stride``: weights trained there decode here
    ``(stride - 1) / 2`` input pixels to the right/bottom until fine-tuned.)
    Crops for ``msra`` map the box to ``input_size`` pixels (``use_udp = False``).

``udp`` (:class:`UDPHeatmap`, Unbiased Data Processing, Huang et al. 2020)
    The first and last pixel centres of input and heatmap coincide:
    ``x_heatmap = x_input * (w - 1) / (W - 1)``. **Affine convention for UDP crops**
    (``use_udp = True``): the crop warp maps the box (in pixel-centre image coordinates) to
    ``[0, W - 1] x [0, H - 1]`` — scale ``(W - 1) / box_w`` and box centre to
    ``((W - 1) / 2, (H - 1) / 2)`` — instead of to ``[0, W]`` (scale ``W / box_w``) as for
    non-UDP codecs (where the unbiased choice is the same centre, ``((W - 1) / 2, (H - 1) / 2)``).
    Codecs themselves only see input-frame pixels, so any warp round-trips as long as predictions
    are mapped back with its inverse. Heatmap sizes must be at least 2 x 2.

Decoding (:meth:`HeatmapCodec.decode`, batched torch, no Python loop over keypoints):
argmax, then either the classic quarter-pixel shift towards the higher neighbour
(``dark=False``) or DARK (Zhang et al. 2020, ``dark=True``): blur each heatmap with a Gaussian
of size ``dark_kernel`` (sigma from OpenCV's rule ``0.3 * ((k - 1) / 2 - 1) + 0.8``), take the
log and make one Newton step with central-difference first/second derivatives. Scores are the
heatmap maxima. Near the border the DARK blur kernel shrinks so that it never reads past the
edge (padding would drag the peak by pixels). Round-trip accuracy of encode -> decode, checked
in tests/test_codecs.py for 192x256 input, 48x64 heatmaps, sigma 2, keypoints anywhere in the
input: UDP+DARK and MSRA+DARK within 0.01 input px (0.003 measured); plain argmax + quarter
shift within ``stride / 4`` (1 px), ``stride / 2`` when the argmax is on the border row/column.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from posetune.codecs.base import Codec, Outputs

#: Gaussian targets are cut to ``|dx|, |dy| <= TRUNCATE * sigma`` (the MSRA window).
TRUNCATE = 3.0


def inside_input(keypoints: np.ndarray, weights: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Weights (K,) float64 with zeros for unlabelled, non-finite or out-of-input keypoints.

    A keypoint is inside the input when ``-0.5 <= x <= W - 0.5`` and ``-0.5 <= y <= H - 0.5``
    (the image extent under the pixel-centre convention; symmetric under flips).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if kp.ndim != 2 or kp.shape[1] < 2 or kp.shape[0] != w.shape[0]:
        raise ValueError(f"expected keypoints (K, 2) and weights (K,), got {kp.shape} and {w.shape}")
    kp = kp[:, :2]
    W, H = input_size
    ok = np.isfinite(kp).all(axis=1) & np.isfinite(w) & (w > 0)
    x = np.where(ok, kp[:, 0], -1e9)
    y = np.where(ok, kp[:, 1], -1e9)
    ok &= (x >= -0.5) & (x <= W - 0.5) & (y >= -0.5) & (y <= H - 0.5)
    return np.where(ok, w, 0.0)


def gaussian_heatmaps(centres: np.ndarray, weights: np.ndarray, size: Sequence[int],
                      sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmaps (K, h, w) float32 and updated weights (K,) float32.

    ``centres`` (K, 2) are heatmap-pixel positions (unrounded); keypoints with weight 0 get an
    empty map. The Gaussian is separable, so only ``K * (w + h)`` exponentials are computed and
    the maps are their outer products (cut to the 3-sigma window). A keypoint whose window
    misses the heatmap entirely gets weight 0.
    """
    w, h = int(size[0]), int(size[1])
    weights = np.asarray(weights, dtype=np.float64).copy()
    c = np.where(weights[:, None] > 0, np.asarray(centres, dtype=np.float64), 0.0)
    dx = np.arange(w, dtype=np.float64)[None, :] - c[:, :1]
    dy = np.arange(h, dtype=np.float64)[None, :] - c[:, 1:2]
    radius = TRUNCATE * sigma
    gx = np.where(np.abs(dx) <= radius, np.exp(-(dx * dx) / (2.0 * sigma * sigma)), 0.0)
    gy = np.where(np.abs(dy) <= radius, np.exp(-(dy * dy) / (2.0 * sigma * sigma)), 0.0)
    reaches = (gx.max(axis=1, initial=0.0) > 0) & (gy.max(axis=1, initial=0.0) > 0)
    weights = np.where(reaches, weights, 0.0)
    gx = (gx * (weights > 0)[:, None]).astype(np.float32)
    gy = gy.astype(np.float32)
    return gy[:, :, None] * gx[:, None, :], weights.astype(np.float32)


def blur_kernel_sigma(kernel: int) -> float:
    """OpenCV's default sigma for a Gaussian kernel of odd size ``kernel``."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def _gather(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, width: int) -> torch.Tensor:
    """Values of (B, K, H*W) maps at integer positions (B, K)."""
    return flat.gather(-1, (y * width + x).unsqueeze(-1)).squeeze(-1)


def _blur_weights(radius: torch.Tensor, r: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels (..., 2r+1) of size ``2 * radius + 1`` (zero beyond)."""
    t = torch.arange(-r, r + 1, device=radius.device, dtype=torch.float32)
    sigma = torch.clamp(0.3 * (radius.float() - 1) + 0.8, min=0.05).unsqueeze(-1)
    g = torch.exp(-(t * t) / (2 * sigma * sigma)) * (t.abs() <= radius.unsqueeze(-1))
    return g / g.sum(dim=-1, keepdim=True)


def _dark_neighbourhood(flat: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, size: tuple[int, int],
                        kernel: int) -> torch.Tensor:
    """Gaussian-blurred values (B, K, 3, 3) (rows y, columns x) around the interior points
    ``(cx, cy)``, computed from local patches only.

    The blur kernel shrinks near the border so that it never reads outside the heatmap: padding
    (zero, edge or mirror) shifts a blurred peak by several pixels, while a Gaussian blurred by a
    smaller Gaussian keeps its centre. Away from the border this is the full ``kernel`` blur.
    """
    W, H = size
    r = max(kernel // 2, 0)
    offs = torch.arange(-(r + 1), r + 2, device=flat.device)
    xs = (cx.unsqueeze(-1) + offs).clamp(0, W - 1)  # (B, K, P)
    ys = (cy.unsqueeze(-1) + offs).clamp(0, H - 1)
    P = offs.numel()
    idx = (ys.unsqueeze(-1) * W + xs.unsqueeze(-2)).reshape(*cx.shape, P * P)
    patch = flat.gather(-1, idx).reshape(*cx.shape, P, P)
    rx = torch.minimum(torch.minimum(cx - 1, W - 2 - cx), torch.full_like(cx, r))
    ry = torch.minimum(torch.minimum(cy - 1, H - 2 - cy), torch.full_like(cy, r))
    gx, gy = _blur_weights(rx, r), _blur_weights(ry, r)
    # along x: (B, K, P, 3, 2r+1) windows -> (B, K, P, 3); then along y -> (B, K, 3, 3)
    bx = torch.einsum("bkpwt,bkt->bkpw", patch.unfold(-1, 2 * r + 1, 1), gx)
    return torch.einsum("bkwht,bkt->bkhw", bx.transpose(-1, -2).unfold(-1, 2 * r + 1, 1), gy)


def decode_heatmaps(heatmaps: torch.Tensor, dark: bool = False,
                    dark_kernel: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmap-pixel positions (B, K, 2) and maxima (B, K) of (B, K, H, W) heatmaps.

    Argmax + quarter-pixel shift towards the higher neighbour; with ``dark`` the DARK Newton
    step on the blurred log-heatmap replaces the shift wherever that map is locally concave and
    the step stays within one pixel of the argmax (elsewhere, and for heatmaps under 3 x 3, the
    quarter shift is kept).
    """
    hm = torch.as_tensor(heatmaps).float()
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (B, K, H, W), got shape {tuple(hm.shape)}")
    B, K, H, W = hm.shape
    flat = hm.reshape(B, K, H * W)
    scores, idx = flat.max(dim=-1)
    px, py = idx % W, idx // W

    # quarter-pixel shift towards the higher neighbour (only where both neighbours exist)
    def _shift(pos: torch.Tensor, size: int, dx: int, dy: int) -> torch.Tensor:
        inner = (pos > 0) & (pos < size - 1)
        hi = _gather(flat, (px + dx).clamp(0, W - 1), (py + dy).clamp(0, H - 1), W)
        lo = _gather(flat, (px - dx).clamp(0, W - 1), (py - dy).clamp(0, H - 1), W)
        return 0.25 * torch.sign(hi - lo) * inner

    x = px.float() + _shift(px, W, 1, 0)
    y = py.float() + _shift(py, H, 0, 1)

    if dark and H >= 3 and W >= 3:
        # expand around an interior point next to the argmax (exact for a quadratic log-map)
        cx, cy = px.clamp(1, W - 2), py.clamp(1, H - 2)
        L = _dark_neighbourhood(flat, cx, cy, (W, H), dark_kernel).clamp_min(1e-10).log()
        c = L[..., 1, 1]
        xp, xm, yp, ym = L[..., 1, 2], L[..., 1, 0], L[..., 2, 1], L[..., 0, 1]
        gx, gy = 0.5 * (xp - xm), 0.5 * (yp - ym)
        hxx, hyy = xp - 2 * c + xm, yp - 2 * c + ym
        hxy = 0.25 * (L[..., 2, 2] - L[..., 0, 2] - L[..., 2, 0] + L[..., 0, 0])
        det = hxx * hyy - hxy * hxy
        safe = torch.where(det.abs() > 1e-12, det, torch.ones_like(det))
        fx = cx.float() - (hyy * gx - hxy * gy) / safe
        fy = cy.float() - (hxx * gy - hxy * gx) / safe
        ok = (det > 1e-12) & (hxx < 0) & ((fx - px).abs() <= 1) & ((fy - py).abs() <= 1)
        x = torch.where(ok, fx, x)
        y = torch.where(ok, fy, y)
    return torch.stack([x, y], dim=-1), scores


class HeatmapCodec(Codec):
    """Gaussian heatmap codec; subclasses define the input <-> heatmap pixel mapping."""

    output_kind = "heatmap"

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int] | None = None,
                 sigma: float = 2.0, dark: bool = False, dark_kernel: int = 11):
        super().__init__(input_size)
        if heatmap_size is None:
            heatmap_size = (max(1, self.input_size[0] // 4), max(1, self.input_size[1] // 4))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if sigma <= 0 or min(self.heatmap_size) < 1:
            raise ValueError("sigma and heatmap_size must be positive")
        if dark_kernel < 1 or dark_kernel % 2 == 0:
            raise ValueError(f"dark_kernel must be a positive odd number, got {dark_kernel}")
        self.sigma = float(sigma)
        self.dark = bool(dark)
        self.dark_kernel = int(dark_kernel)

    # --- mapping (per axis arrays of shape (..., 2)) -------------------------------------
    def to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Input-frame pixels -> heatmap pixels."""
        raise NotImplementedError

    def from_heatmap(self, coords: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Heatmap pixels -> input-frame pixels."""
        raise NotImplementedError

    # --- Codec API ------------------------------------------------------------------------
    def encode(self, keypoints: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``heatmaps`` (K, h, w) and ``keypoint_weights`` (K,) for one instance."""
        w = inside_input(keypoints, weights, self.input_size)
        kp = np.asarray(keypoints, dtype=np.float64)[:, :2]
        centres = self.to_heatmap(np.where(w[:, None] > 0, kp, 0.0))
        heatmaps, w = gaussian_heatmaps(centres, w, self.heatmap_size, self.sigma)
        return {"heatmaps": heatmaps, "keypoint_weights": w}

    def decode(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, h, w) heatmaps -> keypoints (B, K, 2) input-frame pixels, scores (B, K)."""
        coords, scores = decode_heatmaps(outputs, self.dark, self.dark_kernel)
        return self.from_heatmap(coords), scores

    def flip_back(self, outputs: Outputs, flip_index: np.ndarray | list[int]) -> Outputs:
        """Mirror along the width and swap left/right channels (no shift needed: both heatmap
        mappings send ``x -> W - 1 - x`` to ``x_h -> w - 1 - x_h``)."""
        idx = torch.as_tensor(np.asarray(flip_index, dtype=np.int64), device=outputs.device)
        return torch.flip(outputs, dims=[-1]).index_select(1, idx)

    def describe(self) -> dict[str, Any]:
        """Fields of :class:`posetune.config.schema.CodecConfig` that rebuild this codec."""
        return {"type": self.name, "input_size": list(self.input_size), "heatmap_size": list(self.heatmap_size),
                "sigma": self.sigma, "dark": self.dark, "dark_kernel": self.dark_kernel}


class MSRAHeatmap(HeatmapCodec):
    """MSRA Gaussian heatmaps: ``x_heatmap = (x + 0.5) / stride - 0.5`` (see module docstring)."""

    name = "msra"
    use_udp = False

    def _stride(self) -> np.ndarray:
        return np.array(self.input_size, dtype=np.float64) / np.array(self.heatmap_size, dtype=np.float64)

    def to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:
        return (np.asarray(keypoints, dtype=np.float64) + 0.5) / self._stride() - 0.5

    def from_heatmap(self, coords: torch.Tensor) -> torch.Tensor:
        stride = torch.as_tensor(self._stride(), dtype=coords.dtype, device=coords.device)
        return (coords + 0.5) * stride - 0.5


class UDPHeatmap(HeatmapCodec):
    """UDP heatmaps: ``x_heatmap = x * (w - 1) / (W - 1)``; crops use the UDP affine convention
    (box -> ``[0, input - 1]``, see module docstring)."""

    name = "udp"
    use_udp = True

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int] | None = None,
                 sigma: float = 2.0, dark: bool = False, dark_kernel: int = 11):
        super().__init__(input_size, heatmap_size, sigma, dark, dark_kernel)
        if min(self.heatmap_size) < 2 or min(self.input_size) < 2:
            raise ValueError("UDP needs input and heatmap sizes of at least 2 x 2")

    def _scale(self) -> np.ndarray:
        """Input pixels per heatmap pixel, ``(W - 1) / (w - 1)`` per axis."""
        return (np.array(self.input_size, dtype=np.float64) - 1) / (np.array(self.heatmap_size, dtype=np.float64) - 1)

    def to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:
        return np.asarray(keypoints, dtype=np.float64) / self._scale()

    def from_heatmap(self, coords: torch.Tensor) -> torch.Tensor:
        return coords * torch.as_tensor(self._scale(), dtype=coords.dtype, device=coords.device)
