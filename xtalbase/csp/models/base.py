"""The interface every CSP model implements, and the registry the CLI and the store find models in.

A model maps compositions (the atomic numbers of a cell, so the reduced formula and the atom count) to
structures. ``fit(train, val)`` learns from stored structures; ``sample(compositions, k, seed)`` returns
``k`` candidate structures per composition. Artifacts are bytes that load without running code
(JSON, or a torch state dict read with ``weights_only=True``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.platform.convert import StructureArrays


class CspModelError(XtalbaseError):
    """A CSP model was asked for something it cannot do (unknown name, unfitted, bad artifact)."""


class CspModel:
    """Base class: keyword parameters stored as attributes (scikit-learn style), learned state ends in ``_``.

    Subclasses set ``name``, ``summary`` and ``artifact_format`` and implement :meth:`fit`, :meth:`sample`,
    :meth:`to_bytes` and :meth:`from_bytes`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    artifact_format: ClassVar[str] = ""

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword parameters and their values."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def set_params(self, **params: Any) -> "CspModel":
        """Change constructor parameters (scikit-learn style), e.g. a fitted DiffCSP's sampling ``timesteps``."""
        known = self.get_params()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise CspModelError(f"model {self.name!r} has no parameter {', '.join(unknown)}; its parameters: {', '.join(known)}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit_summary(self) -> dict[str, Any]:
        """Scalar learned attributes (``n_parameters_``, ``best_epoch_``...): stored with the model's metrics."""
        return {k[:-1]: v for k, v in vars(self).items()
                if k.endswith("_") and not k.startswith("_") and isinstance(v, (int, float, str)) and not isinstance(v, bool)}

    def fit(self, train: Sequence[StructureArrays], val: Sequence[StructureArrays] | None = None) -> "CspModel":
        """Learn from the training structures (``val`` for early stopping or checks only); returns ``self``."""
        raise NotImplementedError

    def sample(self, compositions: Sequence[np.ndarray], k: int, seed: int) -> list[list[StructureArrays]]:
        """``k`` structures for each composition (an array of the cell's atomic numbers), in input order.

        The returned structures carry exactly the requested atoms (any order). Same seed, same samples.
        """
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The fitted model as bytes that :meth:`from_bytes` reads without executing code."""
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> "CspModel":
        """The model written by :meth:`to_bytes`."""
        raise NotImplementedError


#: Model name -> class, filled by :func:`register_model`.
MODELS: dict[str, type[CspModel]] = {}


def register_model(cls: type[CspModel]) -> type[CspModel]:
    """Class decorator: make ``cls`` available as ``xtalbase csp train --model <cls.name>``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    MODELS[cls.name] = cls
    return cls


#: Built-in model modules, imported when a model is first looked up (torch only for ``diffcsp``).
BUILTIN = {"random": "xtalbase.csp.models.baselines", "template": "xtalbase.csp.models.baselines",
           "diffcsp": "xtalbase.csp.models.diffcsp", "cspml": "xtalbase.csp.models.cspml"}


def get_model_class(name: str) -> type[CspModel]:
    """The registered class called ``name`` (importing a built-in module on first use)."""
    import importlib

    if name not in MODELS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in MODELS:
        raise CspModelError(f"unknown CSP model {name!r}; choose one of {', '.join(sorted(set(BUILTIN) | set(MODELS)))}")
    return MODELS[name]


def model_names() -> list[str]:
    """Names of the built-in and registered models."""
    return sorted(set(BUILTIN) | set(MODELS))
