"""KeypointSpec: what the keypoints of a dataset are called, how they link and mirror.

A spec is immutable and serialisable (``to_dict``/``from_dict``) so that it travels inside
checkpoints and COCO ``categories``. Presets live in :mod:`posetune.data.presets`;
:func:`KeypointSpec.from_names` builds a custom spec from the labels, inferring flip pairs
from left/right naming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from posetune.errors import DataError

#: OKS sigma used for keypoints with no known value (between COCO's eye 0.025 and hip 0.107).
DEFAULT_SIGMA = 0.05

LEFT_COLOR = (0, 200, 0)
RIGHT_COLOR = (255, 128, 0)
CENTER_COLOR = (51, 153, 255)

_SEP = r"[_\-\s.]"
# (regex, side) tried in order; group "rest" is the side-free part of the name.
_SIDE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^left{_SEP}?(?P<rest>.+)$", re.I), "L"),
    (re.compile(rf"^right{_SEP}?(?P<rest>.+)$", re.I), "R"),
    (re.compile(rf"^(?P<rest>.+?){_SEP}?left$", re.I), "L"),
    (re.compile(rf"^(?P<rest>.+?){_SEP}?right$", re.I), "R"),
    (re.compile(rf"^l{_SEP}(?P<rest>.+)$", re.I), "L"),
    (re.compile(rf"^r{_SEP}(?P<rest>.+)$", re.I), "R"),
    (re.compile(rf"^(?P<rest>.+?){_SEP}l$", re.I), "L"),
    (re.compile(rf"^(?P<rest>.+?){_SEP}r$", re.I), "R"),
    # camel case: LEar / REar / leftEar
    (re.compile(r"^L(?P<rest>[A-Z].*)$"), "L"),
    (re.compile(r"^R(?P<rest>[A-Z].*)$"), "R"),
    # sides in the middle: front_left_paw / front_right_paw, F_L_paw
    (re.compile(rf"^(?P<pre>.+?){_SEP}(?:left|l){_SEP}(?P<rest>.+)$", re.I), "L"),
    (re.compile(rf"^(?P<pre>.+?){_SEP}(?:right|r){_SEP}(?P<rest>.+)$", re.I), "R"),
]


def _side_of(name: str) -> tuple[str, str] | None:
    """Return (side, side-free key) for a left/right keypoint name, else None."""
    for pattern, side in _SIDE_PATTERNS:
        m = pattern.match(name)
        if m:
            rest = m.group("rest")
            pre = m.groupdict().get("pre")
            key = f"{pre}|{rest}" if pre else rest
            return side, re.sub(rf"{_SEP}", "", key).lower()
    return None


def infer_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Pair keypoints whose names differ only by a left/right marker.

    Recognises ``left_ear``/``right_ear``, ``leftear``/``rightear``, ``L_Eye``/``R_Eye``,
    ``ear_l``/``ear_r``, ``LEar``/``REar`` and ``front_left_paw``/``front_right_paw``.
    """
    lefts: dict[str, int] = {}
    rights: dict[str, int] = {}
    for i, name in enumerate(names):
        side = _side_of(name)
        if side is None:
            continue
        table = lefts if side[0] == "L" else rights
        table.setdefault(side[1], i)
    pairs = [(i, rights[key]) for key, i in lefts.items() if key in rights]
    return tuple(sorted(pairs))


def side_of_keypoint(name: str) -> str:
    """'L', 'R' or 'C' (centre) for colouring."""
    side = _side_of(name)
    return side[0] if side else "C"


@dataclass(frozen=True)
class KeypointSpec:
    """Names, skeleton, mirror pairs, OKS sigmas and colours of a keypoint set.

    ``skeleton`` and ``flip_pairs`` hold 0-based indices. ``sigmas`` are COCO OKS sigmas
    (per-keypoint standard deviations relative to object scale). ``can_flip`` is False for
    sets whose mirror pairs are unknown (horizontal-flip augmentation is then disabled).
    ``parts`` names index ranges (e.g. whole-body ``body``/``foot``/``face``/``hand``).
    """

    name: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = ()
    colors: tuple[tuple[int, int, int], ...] = ()
    can_flip: bool = True
    parts: tuple[tuple[str, tuple[int, ...]], ...] = ()
    _index: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        object.__setattr__(self, "keypoints", tuple(str(n) for n in self.keypoints))
        object.__setattr__(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))
        object.__setattr__(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))
        if len(set(self.keypoints)) != k:
            dup = sorted({n for n in self.keypoints if self.keypoints.count(n) > 1})
            raise DataError(f"keypoint names repeat: {dup}", where=f"keypoint spec '{self.name}'",
                            hint="give every keypoint a unique name")
        for a, b in (*self.skeleton, *self.flip_pairs):
            if not (0 <= a < k and 0 <= b < k):
                raise DataError(f"link ({a}, {b}) refers to a keypoint index outside 0..{k - 1}",
                                where=f"keypoint spec '{self.name}'", hint="fix the skeleton / flip pairs")
        if not self.sigmas:
            object.__setattr__(self, "sigmas", (DEFAULT_SIGMA,) * k)
        elif len(self.sigmas) != k:
            raise DataError(f"{len(self.sigmas)} sigmas for {k} keypoints", where=f"keypoint spec '{self.name}'",
                            hint="give one OKS sigma per keypoint")
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if not self.colors:
            palette = {"L": LEFT_COLOR, "R": RIGHT_COLOR, "C": CENTER_COLOR}
            object.__setattr__(self, "colors", tuple(palette[side_of_keypoint(n)] for n in self.keypoints))
        object.__setattr__(self, "parts", tuple((str(p), tuple(int(i) for i in idx)) for p, idx in self.parts))
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.keypoints)})

    # --- basic queries -------------------------------------------------------------
    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def __len__(self) -> int:
        return len(self.keypoints)

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise DataError(f"unknown keypoint '{name}'", where=f"keypoint spec '{self.name}'",
                            hint=f"known keypoints: {', '.join(self.keypoints)}") from None

    def has(self, name: str) -> bool:
        return name in self._index

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation that maps keypoint i to its mirror partner (identity for centre points)."""
        idx = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx

    @property
    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float64)

    def link_colors(self) -> list[tuple[int, int, int]]:
        """One colour per skeleton link: the side colour when both ends share a side."""
        out = []
        for a, b in self.skeleton:
            sa, sb = side_of_keypoint(self.keypoints[a]), side_of_keypoint(self.keypoints[b])
            out.append(self.colors[a] if sa == sb else self.colors[a] if sa != "C" else self.colors[b])
        return out

    # --- derived specs --------------------------------------------------------------
    def with_sigmas(self, sigmas: Iterable[float] | dict[str, float]) -> "KeypointSpec":
        if isinstance(sigmas, dict):
            values = list(self.sigmas)
            for n, s in sigmas.items():
                values[self.index(n)] = float(s)
        else:
            values = [float(s) for s in sigmas]
        return self.replace(sigmas=tuple(values))

    def replace(self, **changes: Any) -> "KeypointSpec":
        d = self.to_dict()
        d.update(changes)
        return KeypointSpec.from_dict(d)

    def subset(self, names: Sequence[str], name: str | None = None) -> "KeypointSpec":
        """A spec with only ``names`` (in that order), links and pairs restricted to them."""
        old = [self.index(n) for n in names]
        remap = {o: i for i, o in enumerate(old)}
        return KeypointSpec(
            name=name or f"{self.name}-subset",
            keypoints=tuple(names),
            skeleton=tuple((remap[a], remap[b]) for a, b in self.skeleton if a in remap and b in remap),
            flip_pairs=tuple((remap[a], remap[b]) for a, b in self.flip_pairs if a in remap and b in remap),
            sigmas=tuple(self.sigmas[o] for o in old),
            colors=tuple(self.colors[o] for o in old),
            can_flip=self.can_flip,
        )

    # --- construction ---------------------------------------------------------------
    @classmethod
    def from_names(
        cls,
        names: Sequence[str],
        name: str = "custom",
        skeleton: Iterable[tuple[int, int]] | Iterable[tuple[str, str]] = (),
        sigmas: Sequence[float] | None = None,
        flip_pairs: Iterable[tuple[int, int]] | None = None,
    ) -> "KeypointSpec":
        """A custom spec from keypoint names; links may be given by index or by name."""
        names = [str(n) for n in names]
        index = {n: i for i, n in enumerate(names)}
        links = []
        for a, b in skeleton:
            if isinstance(a, str) or isinstance(b, str):
                missing = [x for x in (a, b) if x not in index]
                if missing:
                    raise DataError(f"skeleton link ({a}, {b}) names unknown keypoint(s) {missing}",
                                    where=f"keypoint spec '{name}'", hint=f"known keypoints: {', '.join(names)}")
                links.append((index[a], index[b]))
            else:
                links.append((int(a), int(b)))
        pairs = tuple(flip_pairs) if flip_pairs is not None else infer_flip_pairs(names)
        if sigmas is None:
            # labels that carry a known keypoint set (e.g. COCO-17 names) get its published sigmas
            preset = _matching_preset(names)
            sigmas = preset.sigmas if preset is not None else None
        return cls(name=name, keypoints=tuple(names), skeleton=tuple(links), flip_pairs=pairs,
                   sigmas=tuple(sigmas) if sigmas is not None else ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "skeleton": [list(p) for p in self.skeleton],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": list(self.sigmas),
            "colors": [list(c) for c in self.colors],
            "can_flip": self.can_flip,
            "parts": {p: list(idx) for p, idx in self.parts},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KeypointSpec":
        try:
            return cls(
                name=d.get("name", "custom"),
                keypoints=tuple(d["keypoints"]),
                skeleton=tuple(tuple(p) for p in d.get("skeleton", ())),
                flip_pairs=tuple(tuple(p) for p in d.get("flip_pairs", ())),
                sigmas=tuple(d.get("sigmas") or ()),
                colors=tuple(tuple(c) for c in d.get("colors") or ()),
                can_flip=bool(d.get("can_flip", True)),
                parts=tuple((p, tuple(idx)) for p, idx in (d.get("parts") or {}).items()),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"invalid keypoint spec ({e})", where="keypoint spec",
                            hint="a spec needs at least a 'keypoints' list of names") from None


def _matching_preset(names: Sequence[str]) -> KeypointSpec | None:
    from posetune.data import presets

    for spec in getattr(presets, "PRESETS", {}).values():  # empty while presets.py itself loads
        if list(spec.keypoints) == list(names):
            return spec
    return None


def get_spec(name_or_spec: "str | KeypointSpec | dict") -> KeypointSpec:
    """A preset by name (``coco17``, ``coco_wholebody133``, ``mpii16``, ``mediapipe_pose33``,
    ``mediapipe_hand21``, ``mediapipe_face468``, ...), or a spec from its dict form."""
    from posetune.data import presets

    if isinstance(name_or_spec, KeypointSpec):
        return name_or_spec
    if isinstance(name_or_spec, dict):
        return KeypointSpec.from_dict(name_or_spec)
    key = str(name_or_spec).lower().replace("-", "_")
    key = presets.ALIASES.get(key, key)
    if key not in presets.PRESETS:
        raise DataError(f"unknown keypoint spec '{name_or_spec}'",
                        hint=f"use one of: {', '.join(sorted(presets.PRESETS))}, or 'auto' to take it from the labels")
    return presets.PRESETS[key]


def list_specs() -> list[str]:
    from posetune.data import presets

    return sorted(presets.PRESETS)
