"""Descriptor recipes as values: the kinds that exist, the named presets, and the content hash a stored recipe has.

A recipe is a frozen object with ``kind``, ``version`` (of the kind's definition), ``input`` (``"composition"``
or ``"structure"``), ``to_dict()``, ``from_dict()``, ``names()`` and ``transform()``. Its stored identity is
the hash of ``{"kind", "version", "params"}``: changing a parameter or bumping a kind's ``version`` makes a new
recipe, so vectors cached under the old definition are never read for the new one.

Adding a kind: write the recipe class (see :class:`~xtalbase.descriptors.compositional.CompositionRecipe`), then
either list its module in :data:`BUILTIN_KINDS` or call :func:`register_kind` on it.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.platform.hashing import json_sha256


class Recipe(Protocol):
    """What every descriptor recipe provides."""

    kind: str
    version: int
    input: str

    def to_dict(self) -> dict[str, Any]: ...

    def names(self) -> list[str]: ...

    def transform(self, items: Sequence[Any], labels: Sequence[Any] | None = None) -> np.ndarray: ...


class RecipeError(XtalbaseError):
    """An unknown recipe kind or preset, or parameters a kind does not accept."""


#: Kind -> module defining its recipe class, imported on first use (pymatgen's local-environment code is heavy).
BUILTIN_KINDS = {"composition": "xtalbase.descriptors.compositional", "crystalnn": "xtalbase.descriptors.structural",
                 "rdf": "xtalbase.descriptors.structural", "adf": "xtalbase.descriptors.structural"}
#: Preset name -> kind; the presets' parameters live beside each kind's code.
PRESETS = {"xenonpy": "composition", "magpie": "composition", "crystalnn": "crystalnn", "rdf": "rdf", "adf": "adf"}
_REGISTERED: dict[str, type] = {}


def register_kind(cls: type) -> type:
    """Class decorator: make a recipe class available by its ``kind`` (e.g. to :func:`from_spec`)."""
    if not getattr(cls, "kind", ""):
        raise TypeError(f"{cls.__name__} needs a class attribute 'kind'")
    _REGISTERED[cls.kind] = cls
    return cls


def kind_class(kind: str) -> type:
    """The recipe class of ``kind``."""
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    if kind not in BUILTIN_KINDS:
        raise RecipeError(f"unknown descriptor kind {kind!r}; known: {', '.join(sorted(set(BUILTIN_KINDS) | set(_REGISTERED)))}")
    module = importlib.import_module(BUILTIN_KINDS[kind])
    for obj in vars(module).values():
        if isinstance(obj, type) and getattr(obj, "kind", None) == kind and hasattr(obj, "transform"):
            return obj
    raise RecipeError(f"module {BUILTIN_KINDS[kind]} defines no recipe class of kind {kind!r}")


def preset(name: str, **overrides: Any) -> Recipe:
    """The preset recipe ``name`` (``xenonpy``, ``magpie``, ``crystalnn``, ``rdf``, ``adf``), with parameters overridden."""
    if name not in PRESETS:
        raise RecipeError(f"unknown descriptor preset {name!r}; choose one of {', '.join(PRESETS)}")
    if PRESETS[name] == "composition":
        from xtalbase.descriptors.compositional import composition_preset

        recipe = composition_preset(name)
    else:
        from xtalbase.descriptors.structural import structural_preset

        recipe = structural_preset(name)
    if overrides:
        recipe = from_spec(recipe.kind, {**recipe.to_dict(), **overrides})
    return recipe


def from_spec(kind: str, params: Mapping[str, Any]) -> Recipe:
    """The recipe of ``kind`` with ``params`` (as :meth:`to_dict` wrote them)."""
    return kind_class(kind).from_dict(dict(params))


def spec(recipe: Recipe) -> dict[str, Any]:
    """What a stored recipe's hash covers: ``{"kind", "version", "params"}``."""
    return {"kind": recipe.kind, "version": int(recipe.version), "params": recipe.to_dict()}


def digest(recipe: Recipe) -> str:
    """The content hash of ``recipe`` (sha256 of its canonical :func:`spec`)."""
    return json_sha256(spec(recipe))


def default_name(recipe: Recipe) -> str:
    """The preset's name when ``recipe`` equals a preset, else ``<kind>-<hash prefix>``."""
    for name, kind in PRESETS.items():
        if kind == recipe.kind:
            try:
                if preset(name) == recipe:
                    return name
            except ImportError:
                continue
    return f"{recipe.kind}-{digest(recipe)[:8]}"
