"""CPU baselines of the CSP comparison: ``random`` (the floor) and ``template`` (element substitution).

``random``
    A training structure's cell shape (lengths up to scale and angles) drawn at random, scaled to a volume per
    atom drawn from the training set, with uniformly random fractional coordinates.
``template``
    Candidates are training structures with the query's anonymous formula (same sorted composition ratio, e.g.
    ABC3). Each is paired element by element with the query (elements with equal counts in the assignment of least
    distance) and ranked by the summed |Δ Mendeleev number| of the pairs (``rank="nearest"``) or at random
    (``rank="random"``); sample i is the i-th candidate with elements substituted and its volume scaled by the ratio
    of summed atomic volumes (4/3 π r³, pymatgen's atomic radii). A query without a candidate, or past the
    candidates, gets a ``random`` sample (counted in ``fallbacks_``).

Both keep only arrays and write them as JSON: the artifact runs no code when read.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Sequence

import numpy as np

from xtalbase.csp.models.base import CspModel, CspModelError, register_model
from xtalbase.platform.convert import StructureArrays


def _volume_per_atom(s: StructureArrays) -> float:
    return float(abs(np.linalg.det(np.asarray(s.cell, float)))) / len(s.numbers)


def _shape(cell: np.ndarray) -> tuple[list[float], list[float]]:
    """Lengths normalised to unit cube root of the length product, and angles in degrees."""
    cell = np.asarray(cell, float)
    lengths = np.linalg.norm(cell, axis=1)
    angles = [float(np.degrees(np.arccos(np.clip(cell[j] @ cell[k] / (lengths[j] * lengths[k]), -1, 1))))
              for j, k in ((1, 2), (0, 2), (0, 1))]
    return list(lengths / np.cbrt(lengths.prod())), angles


def _cell_from(lengths: Sequence[float], angles: Sequence[float], volume: float) -> np.ndarray:
    from pymatgen.core import Lattice

    lattice = Lattice.from_parameters(*lengths, *angles)
    return lattice.matrix * np.cbrt(volume / lattice.volume)


class _JsonModel(CspModel):
    artifact_format = "csp-json"

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "shapes_"):
            raise CspModelError(f"the {self.name} model is not fitted: call fit() first")

    def to_bytes(self) -> bytes:
        self._check_fitted()
        doc = {"format": f"{self.artifact_format}/{self.name}", "params": self.get_params(), "state": self._state()}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> "CspModel":
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise CspModelError(f"not a {cls.artifact_format} artifact: {exc}") from None
        if doc.get("format") != f"{cls.artifact_format}/{cls.name}":
            raise CspModelError(f"artifact format {doc.get('format')!r} is not {cls.artifact_format}/{cls.name}")
        model = cls(**doc["params"])
        model._load_state(doc["state"])
        return model

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _random_structure(self, numbers: np.ndarray, rng: np.random.Generator) -> StructureArrays:
        i = int(rng.integers(len(self.shapes_)))
        lengths, angles = self.shapes_[i]
        volume = float(rng.choice(self.volumes_)) * len(numbers)
        frac = rng.random((len(numbers), 3))
        return StructureArrays(_cell_from(lengths, angles, volume), np.asarray(numbers, dtype=np.int64), frac)


@register_model
class RandomModel(_JsonModel):
    """Training cell shapes and volumes per atom, random fractional coordinates (the floor of the comparison)."""

    name = "random"
    summary = "a training cell shape scaled to a training volume per atom, random fractional coordinates"

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, train: Sequence[StructureArrays], val: Sequence[StructureArrays] | None = None) -> "RandomModel":
        if not train:
            raise CspModelError("the random model needs at least one training structure")
        self.shapes_ = [_shape(s.cell) for s in train]
        self.volumes_ = [_volume_per_atom(s) for s in train]
        return self

    def sample(self, compositions: Sequence[np.ndarray], k: int, seed: int) -> list[list[StructureArrays]]:
        self._check_fitted()
        rng = np.random.default_rng([seed, self.random_state])
        return [[self._random_structure(np.asarray(c), rng) for _ in range(k)] for c in compositions]

    def _state(self) -> dict[str, Any]:
        return {"shapes": self.shapes_, "volumes": self.volumes_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.shapes_ = [tuple(x) for x in state["shapes"]]
        self.volumes_ = list(state["volumes"])


def _element_table() -> tuple[np.ndarray, np.ndarray]:
    """Mendeleev number and atomic volume (Å³) by atomic number (NaN where pymatgen has none)."""
    from pymatgen.core.periodic_table import Element

    mendeleev = np.full(119, np.nan)
    volume = np.full(119, np.nan)
    for z in range(1, 104):
        e = Element.from_Z(z)
        if e.mendeleev_no is not None:
            mendeleev[z] = e.mendeleev_no
        radius = e.atomic_radius
        if radius is not None:
            volume[z] = 4.0 / 3.0 * np.pi * float(radius) ** 3
    return mendeleev, volume


def _groups(numbers: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Elements and counts of a cell, sorted by count then atomic number (the anonymous-formula order)."""
    elements, counts = np.unique(np.asarray(numbers, dtype=int), return_counts=True)
    order = sorted(range(len(elements)), key=lambda i: (counts[i], elements[i]))
    return tuple(int(elements[i]) for i in order), tuple(int(counts[i]) for i in order)


def _anonymous(counts: tuple[int, ...]) -> tuple[int, ...]:
    g = int(np.gcd.reduce(np.asarray(counts))) if counts else 1
    return tuple(c // g for c in counts)


@register_model
class TemplateModel(_JsonModel):
    """Training structures of the same anonymous formula, nearest composition first, elements substituted."""

    name = "template"
    summary = "same anonymous formula in the training fold, nearest composition (Mendeleev numbers), elements substituted"

    def __init__(self, rank: str = "nearest", random_state: int = 0) -> None:
        self.rank = rank
        self.random_state = random_state

    def fit(self, train: Sequence[StructureArrays], val: Sequence[StructureArrays] | None = None) -> "TemplateModel":
        if self.rank not in ("nearest", "random"):
            raise CspModelError(f"rank must be 'nearest' or 'random' (got {self.rank!r})")
        if not train:
            raise CspModelError("the template model needs at least one training structure")
        self.templates_ = [(np.asarray(s.cell, float).tolist(), [int(z) for z in s.numbers], np.asarray(s.frac_coords, float).tolist())
                           for s in train]
        self.shapes_ = [_shape(s.cell) for s in train]
        self.volumes_ = [_volume_per_atom(s) for s in train]
        self._index()
        return self

    def _index(self) -> None:
        self._by_formula: dict[tuple[int, ...], list[int]] = {}
        self._template_groups = [_groups(np.asarray(numbers)) for _, numbers, _ in self.templates_]
        for i, groups in enumerate(self._template_groups):
            self._by_formula.setdefault(_anonymous(groups[1]), []).append(i)
        self._table = _element_table()

    def _candidates(self, query: tuple[tuple[int, ...], tuple[int, ...]]) -> list[tuple[float, int, dict[int, int]]]:
        """``(distance, template index, template element -> query element)`` for every template of the query's
        anonymous formula; elements sit in (count, Z) order, so position j of a template pairs with a query
        position of the same count, and each equal-count block is tried in every order."""
        ids = self._by_formula.get(_anonymous(query[1]), [])
        if not ids:
            return []
        mendeleev = self._table[0]
        q_el = np.asarray(query[0])
        q_red = _anonymous(query[1])
        blocks = [[i for i in range(len(q_red)) if q_red[i] == c] for c in sorted(set(q_red))]
        perms = np.array([sum(map(list, p), []) for p in itertools.product(*(itertools.permutations(b) for b in blocks))])
        t_el = np.array([self._template_groups[i][0] for i in ids])  # (m, g)
        q_m = mendeleev[q_el[perms]]  # (p, g)
        diff = np.abs(mendeleev[t_el][:, None, :] - q_m[None, :, :])
        cost = np.where(np.isfinite(diff), diff, 100.0).sum(-1)  # (m, p)
        best = cost.argmin(1)
        return [(float(cost[r, best[r]]), i, dict(zip(t_el[r].tolist(), q_el[perms[best[r]]].tolist()))) for r, i in enumerate(ids)]

    def sample(self, compositions: Sequence[np.ndarray], k: int, seed: int) -> list[list[StructureArrays]]:
        self._check_fitted()
        rng = np.random.default_rng([seed, self.random_state])
        volume = self._table[1]
        self.fallbacks_ = 0
        out = []
        for numbers in compositions:
            numbers = np.asarray(numbers, dtype=np.int64)
            query = _groups(numbers)
            ranked = self._candidates(query)
            if self.rank == "random":
                order = rng.permutation(len(ranked))
                ranked = [ranked[j] for j in order]
            else:
                ranked.sort(key=lambda r: (r[0], r[1]))
            per = []
            for j in range(k):
                if j >= len(ranked):
                    self.fallbacks_ += 1
                    per.append(self._random_structure(numbers, rng))
                    continue
                _, i, mapping = ranked[j]
                cell, t_numbers, frac = (np.asarray(x) for x in self.templates_[i])
                new = np.array([mapping[int(z)] for z in t_numbers], dtype=np.int64)
                scale = len(numbers) / len(new)  # a template of another multiple of the formula: rescale the count
                v_query, v_template = np.nansum(volume[numbers]), np.nansum(volume[new]) * scale
                ratio = v_query / v_template if v_template > 0 and v_query > 0 else 1.0
                if len(new) != len(numbers):
                    per.append(self._random_structure(numbers, rng))
                    self.fallbacks_ += 1
                    continue
                per.append(StructureArrays(cell * np.cbrt(ratio), new, frac.copy()))
            out.append(per)
        return out

    def _state(self) -> dict[str, Any]:
        return {"templates": self.templates_, "shapes": self.shapes_, "volumes": self.volumes_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.templates_ = [tuple(t) for t in state["templates"]]
        self.shapes_ = [tuple(x) for x in state["shapes"]]
        self.volumes_ = list(state["volumes"])
        self._index()
