"""Descriptor and network recipes of a potential: atom-centred symmetry functions plus per-element networks.

A :class:`PotentialRecipe` is plain data (JSON round trip, hashed through :mod:`xtalbase.platform.hashing`)
and is stored with every potential. Units are Å and eV throughout; the n2p2 importer converts on read.

Conventions (the same as n2p2, so imported models reproduce their published predictions):

* radial ``G2 = Σ_j exp(-η (r_ij - R_s)²) f_c(r_ij)`` over neighbours ``j`` of element ``neighbors[0]``;
* angular narrow ``G3 = 2^(1-ζ) Σ_{j<k} (1 + λ cos θ_ijk)^ζ exp(-η Σ (r - R_s)²) f_c(r_ij) f_c(r_ik) f_c(r_jk)``,
  the sum over ``r_ij, r_ik, r_jk``; the wide form drops the ``r_jk`` terms. Each triplet is counted once
  (``j < k``), and a triplet with ``1 + λ cos θ <= 0`` adds nothing;
* cutoff functions ``f_c`` as n2p2 names them (``cos``, ``tanhu``, ``tanh``, ``exp``, ``poly1`` … ``poly4``,
  ``hard``) with the inner cutoff ``alpha·R_c`` below which ``f_c = 1``;
* within one centre element the functions are sorted as n2p2 sorts them (type, cutoff, R_c, η, R_s, ζ, λ,
  neighbour elements by atomic number), so the rows of an n2p2 ``scaling.data`` line up with ours.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Sequence

from xtalbase.errors import XtalbaseError

#: n2p2's cutoff type numbers (``cutoff_type`` in ``input.nn``).
CUTOFFS: dict[str, int] = {"hard": 0, "cos": 1, "tanhu": 2, "tanh": 3, "exp": 4, "poly1": 5, "poly2": 6, "poly3": 7,
                           "poly4": 8}
#: Activation names of the networks; the letters are n2p2's (``global_activation_short``).
ACTIVATIONS: dict[str, str] = {"t": "tanh", "l": "linear", "s": "sigmoid", "p": "softplus", "r": "relu"}
KNOWN_ACTIVATIONS = ("tanh", "linear", "sigmoid", "softplus", "relu", "silu")
SCALINGS = ("minmax", "standard", "none")


class RecipeError(XtalbaseError):
    """A potential recipe is malformed (unknown element, cutoff, activation, or a bad parameter)."""


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (``RecipeError`` for an unknown one)."""
    from ase.data import atomic_numbers

    if symbol not in atomic_numbers or symbol == "X":
        raise RecipeError(f"{symbol!r} is not an element symbol")
    return atomic_numbers[symbol]


@dataclass(frozen=True)
class SymmetryFunction:
    """One symmetry function of centre element ``center``.

    ``kind``: ``radial`` (G2), ``angular`` (narrow G3) or ``angular_wide`` (G9). ``neighbors``: one element
    (radial) or two (angular, ordered by atomic number). ``eta`` Å⁻², ``rs`` and ``rc`` Å.
    """

    kind: str
    center: str
    neighbors: tuple[str, ...]
    eta: float
    rc: float
    rs: float = 0.0
    zeta: float = 1.0
    lam: float = 1.0
    cutoff: str = "cos"
    alpha: float = 0.0

    def __post_init__(self) -> None:
        want = 1 if self.kind == "radial" else 2
        if self.kind not in ("radial", "angular", "angular_wide"):
            raise RecipeError(f"symmetry function kind {self.kind!r}: choose radial, angular or angular_wide")
        if len(self.neighbors) != want:
            raise RecipeError(f"a {self.kind} function names {want} neighbour element(s), got {list(self.neighbors)}")
        for symbol in (self.center, *self.neighbors):
            atomic_number(symbol)
        if want == 2:
            object.__setattr__(self, "neighbors", tuple(sorted(self.neighbors, key=atomic_number)))
        if self.cutoff not in CUTOFFS:
            raise RecipeError(f"cutoff function {self.cutoff!r}: choose one of {', '.join(CUTOFFS)}")
        numbers = {"eta": self.eta, "rc": self.rc, "rs": self.rs, "zeta": self.zeta, "lam": self.lam, "alpha": self.alpha}
        bad = [k for k, v in numbers.items() if not math.isfinite(v)]
        if bad or self.rc <= 0 or self.eta < 0 or not 0 <= self.alpha < 1 or self.zeta < 1 and self.kind != "radial":
            raise RecipeError(f"bad parameters for {self.label()}: need finite values, rc > 0, eta >= 0, "
                              f"0 <= alpha < 1 and zeta >= 1")
        if self.kind != "radial" and self.lam not in (-1.0, 1.0):
            raise RecipeError(f"{self.label()}: lambda must be +1 or -1")

    def sort_key(self) -> tuple:
        """n2p2's order within one centre element (``SymFnc*::operator<``)."""
        n2p2_type = {"radial": 2, "angular": 3, "angular_wide": 9}[self.kind]
        zs = tuple(atomic_number(e) for e in self.neighbors)
        if self.kind == "radial":
            return (n2p2_type, CUTOFFS[self.cutoff], self.alpha, self.rc, self.eta, self.rs, *zs)
        return (n2p2_type, CUTOFFS[self.cutoff], self.alpha, self.rc, self.eta, self.rs, self.zeta, self.lam, *zs)

    def label(self) -> str:
        """A short human name, e.g. ``G2[Mo-Mo eta=0.01 rs=0 rc=5.2]``."""
        pair = "-".join((self.center, *self.neighbors))
        if self.kind == "radial":
            return f"G2[{pair} eta={self.eta:g} rs={self.rs:g} rc={self.rc:g}]"
        g = "G3" if self.kind == "angular" else "G9"
        return f"{g}[{pair} eta={self.eta:g} zeta={self.zeta:g} lambda={self.lam:+g} rc={self.rc:g}]"


@dataclass(frozen=True)
class NetworkSpec:
    """Per-element feed-forward networks: hidden layer widths and their activation; the output is linear."""

    hidden: tuple[int, ...] = (60, 60)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        if self.activation not in KNOWN_ACTIVATIONS:
            raise RecipeError(f"activation {self.activation!r}: choose one of {', '.join(KNOWN_ACTIVATIONS)}")
        if not self.hidden or any(int(w) < 1 for w in self.hidden):
            raise RecipeError(f"hidden layers must be positive widths, got {list(self.hidden)}")
        object.__setattr__(self, "hidden", tuple(int(w) for w in self.hidden))


@dataclass(frozen=True)
class PotentialRecipe:
    """Everything that defines a potential before training: elements, symmetry functions, networks, defaults.

    ``training`` holds the recipe's training defaults (``optimizer``, ``epochs``, ...); the command line
    overrides them and the model row records what was used.
    """

    elements: tuple[str, ...]
    functions: tuple[SymmetryFunction, ...]
    network: NetworkSpec = field(default_factory=NetworkSpec)
    scaling: str = "minmax"
    training: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        elements = tuple(sorted(dict.fromkeys(self.elements), key=atomic_number))
        object.__setattr__(self, "elements", elements)
        if self.scaling not in SCALINGS:
            raise RecipeError(f"scaling {self.scaling!r}: choose one of {', '.join(SCALINGS)}")
        unknown = sorted({e for f in self.functions for e in (f.center, *f.neighbors)} - set(elements))
        if unknown:
            raise RecipeError(f"symmetry functions name elements outside the recipe's {list(elements)}: {unknown}")
        empty = [e for e in elements if not any(f.center == e for f in self.functions)]
        if empty:
            raise RecipeError(f"no symmetry functions for centre element(s) {empty}")
        order = sorted(self.functions, key=lambda f: (atomic_number(f.center), f.sort_key()))
        object.__setattr__(self, "functions", tuple(order))

    def for_element(self, element: str) -> tuple[SymmetryFunction, ...]:
        """The functions of centre ``element``, in descriptor column order."""
        return tuple(f for f in self.functions if f.center == element)

    @property
    def cutoff(self) -> float:
        """The largest cutoff radius (Å): the neighbour-list radius."""
        return max(f.rc for f in self.functions)

    def n_features(self) -> dict[str, int]:
        """Descriptor length per element."""
        return {e: len(self.for_element(e)) for e in self.elements}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back."""
        return {"name": self.name, "elements": list(self.elements), "scaling": self.scaling,
                "network": {"hidden": list(self.network.hidden), "activation": self.network.activation},
                "training": dict(self.training),
                "functions": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(f).items()}
                              for f in self.functions]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PotentialRecipe":
        """The recipe of :meth:`to_dict` (a recipe file's JSON)."""
        try:
            functions = tuple(SymmetryFunction(**{**f, "neighbors": tuple(f["neighbors"])}) for f in data["functions"])
            net = data.get("network") or {}
            return cls(elements=tuple(data["elements"]), functions=functions,
                       network=NetworkSpec(hidden=tuple(net.get("hidden", (60, 60))), activation=net.get("activation", "tanh")),
                       scaling=data.get("scaling", "minmax"), training=dict(data.get("training") or {}), name=data.get("name"))
        except (KeyError, TypeError) as exc:
            raise RecipeError(f"not a potential recipe: {type(exc).__name__}: {exc}") from exc

    def hash(self) -> str:
        """Content hash of the recipe (name excluded: equal functions and networks hash equal)."""
        from xtalbase.platform.hashing import recipe_hash

        return recipe_hash({k: v for k, v in self.to_dict().items() if k != "name"})

    def with_elements(self, elements: Iterable[str]) -> "PotentialRecipe":
        """The same recipe regenerated for other elements (presets only; see :func:`preset`)."""
        if not self.name or self.name.startswith("mlearn-") or self.name == "custom":
            raise RecipeError(f"recipe {self.name or 'custom'!r} is fixed to its elements {list(self.elements)}")
        return preset(self.name, elements)


def _pairs(elements: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(elements) for b in elements[i:]]


def element_resolved(elements: Sequence[str], *, rc: float, radial: Sequence[tuple[float, float]],
                     angular: Sequence[tuple[float, float, float]], cutoff: str = "cos",
                     wide: bool = False) -> tuple[SymmetryFunction, ...]:
    """One channel per neighbour element (radial ``(eta, rs)``) and per element pair (angular ``(eta, zeta, lambda)``)."""
    out: list[SymmetryFunction] = []
    kind = "angular_wide" if wide else "angular"
    for c in elements:
        out += [SymmetryFunction("radial", c, (n,), eta=eta, rs=rs, rc=rc, cutoff=cutoff) for n in elements for eta, rs in radial]
        out += [SymmetryFunction(kind, c, pair, eta=eta, zeta=zeta, lam=lam, rc=rc, cutoff=cutoff)
                for pair in _pairs(sorted(elements, key=atomic_number)) for eta, zeta, lam in angular]
    return tuple(out)


def sakoda2026(elements: Sequence[str]) -> PotentialRecipe:
    """The study's set: R_c 4 Å; G2 η 0.01/0.05/0.1 Å⁻², R_s 0; G3 η 0.01/0.1, ζ 1/4, λ ±1; nets 2×60 tanh; L-BFGS."""
    funcs = element_resolved(elements, rc=4.0, radial=[(eta, 0.0) for eta in (0.01, 0.05, 0.1)],
                             angular=[(eta, zeta, lam) for eta in (0.01, 0.1) for zeta in (1.0, 4.0) for lam in (-1.0, 1.0)])
    return PotentialRecipe(elements=tuple(elements), functions=funcs, network=NetworkSpec((60, 60), "tanh"),
                           training={"optimizer": "lbfgs"}, name="sakoda2026")


def shifted_default(elements: Sequence[str], rc: float = 5.0, n_radial: int = 8) -> PotentialRecipe:
    """The default: shifted radial Gaussians on a grid from 1 Å to R_c (η = 1/(2Δ²)), plus angular η 0.01, ζ 1/2/4/16.

    Unshifted radial functions with η ≤ 0.1 Å⁻² are nearly flat within 4–5 Å (they underfit bcc metals,
    whose neighbour shells sit close together); centring Gaussians on a grid resolves the shells.
    """
    start = 1.0
    step = (rc - start) / (n_radial - 1)
    eta = 1.0 / (2.0 * step * step)
    radial = [(eta, start + i * step) for i in range(n_radial)]
    angular = [(0.01, zeta, lam) for zeta in (1.0, 2.0, 4.0, 16.0) for lam in (-1.0, 1.0)]
    funcs = element_resolved(elements, rc=rc, radial=radial, angular=angular)
    return PotentialRecipe(elements=tuple(elements), functions=funcs, network=NetworkSpec((30, 30), "tanh"),
                           training={"optimizer": "lbfgs"}, name="default")


def preset(name: str, elements: Sequence[str] | None = None) -> PotentialRecipe:
    """A recipe by name: ``default``, ``sakoda2026`` (both need ``elements``) or ``mlearn-Mo`` / ``mlearn-Si``."""
    if name.startswith("mlearn-"):
        from xtalbase.mlip.n2p2 import vendored_mlearn_recipe

        recipe = vendored_mlearn_recipe(name.removeprefix("mlearn-"))
        if elements is not None and set(elements) - set(recipe.elements):
            raise RecipeError(f"preset {name!r} covers {list(recipe.elements)}; the data holds {sorted(set(elements))}")
        return recipe
    makers = {"default": shifted_default, "sakoda2026": sakoda2026}
    if name not in makers:
        raise RecipeError(f"unknown preset {name!r}: choose one of {', '.join(preset_names())}")
    if not elements:
        raise RecipeError(f"preset {name!r} needs the elements of the training data")
    return makers[name](sorted(set(elements), key=atomic_number))


def preset_names() -> list[str]:
    """Names :func:`preset` accepts."""
    from xtalbase.mlip.n2p2 import VENDORED_MLEARN

    return ["default", "sakoda2026", *(f"mlearn-{e}" for e in VENDORED_MLEARN)]


def renamed(recipe: PotentialRecipe, name: str) -> PotentialRecipe:
    """The recipe under another name (the content hash does not change)."""
    return replace(recipe, name=name)
