"""Model algorithms as registry entries (:data:`ALGORITHMS`): estimator, artifact format, dump/load, trusted types.

Training, artifacts, the model registry and ``xtalbase train --algorithm`` look algorithms up here
by name (or an artifact's format), so adding one is one :func:`register_algorithm` call:

>>> register_algorithm(AlgorithmSpec(                                    # doctest: +SKIP
...     name="randomforest", summary="random forest (scikit-learn)",
...     estimator="mypackage.models:RandomForestModel", artifact_format="skops",
...     dump=dump_skops, load=load_skops,
...     trusted_types=("sklearn.ensemble._forest.RandomForestClassifier", ...)))

This module imports no learning library: estimator classes are named by ``"module:Class"`` and
imported when first used, so the CLI can list algorithms without loading scikit-learn or XGBoost.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from xtalbase.errors import XtalbaseError


class ArtifactError(XtalbaseError):
    """An artifact is corrupt, does not match its hash, or contains types that are not allowed."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """One model algorithm.

    Attributes
    ----------
    name : registry key, stored as ``models.algorithm``.
    summary : one line of CLI help.
    estimator : ``"module:Class"`` of the estimator; built as ``Class(task=..., random_state=seed, **params)``.
    artifact_format : stored as ``models.artifact_format``.
    dump : fitted estimator -> artifact bytes, identical for identical fitted models; never pickle.
    load : (artifact bytes, this spec) -> fitted estimator; must not execute code from the bytes.
    trusted_types : types a skops artifact of this algorithm may contain beyond :data:`SKOPS_BASE_TRUSTED`.
    tasks : the tasks it can learn (``classification``, ``regression``).
    early_stopping : its ``fit`` takes ``eval_set=(X_val, y_val)`` and stops on it; ``train_xrd`` then passes
        the split's val fold (whose metrics are marked ``used_for_early_stopping``).
    """

    name: str
    summary: str
    estimator: str
    artifact_format: str
    dump: Callable[[Any], bytes]
    load: Callable[[bytes, "AlgorithmSpec"], Any]
    trusted_types: tuple[str, ...] = field(default=())
    tasks: tuple[str, ...] = ("classification", "regression")
    early_stopping: bool = False

    def estimator_class(self) -> type:
        """The estimator class (imported on first use)."""
        module, _, name = self.estimator.partition(":")
        return getattr(importlib.import_module(module), name)


#: Algorithm name -> spec, in registration order (the first spec of a format reads format-only artifacts).
ALGORITHMS: dict[str, AlgorithmSpec] = {}

#: Types every skops artifact may contain (numpy containers and scalars, builtins), besides skops' own defaults.
SKOPS_BASE_TRUSTED = (
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.int64",
    "numpy.float64",
    "numpy.str_",
    "numpy.random.mtrand.RandomState",
    "builtins.slice",
)


def register_algorithm(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Make ``spec`` available to training, artifacts and the CLI under ``spec.name``."""
    ALGORITHMS[spec.name] = spec
    return spec


def get_algorithm(name: str) -> AlgorithmSpec:
    """The spec registered as ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}") from None


def spec_for_model(model: Any) -> AlgorithmSpec:
    """The spec whose estimator class is exactly ``type(model)``; :class:`ArtifactError` otherwise."""
    for spec in ALGORITHMS.values():
        if type(model) is spec.estimator_class():
            return spec
    known = ", ".join(s.estimator.partition(":")[2] for s in ALGORITHMS.values())
    raise ArtifactError(f"cannot serialise {type(model).__name__}: no registered algorithm has it (known: {known})")


def spec_for_format(fmt: str, algorithm: str | None = None) -> AlgorithmSpec:
    """The spec reading artifacts of format ``fmt``: ``algorithm``'s when given, else the first with that format."""
    if algorithm is not None and algorithm in ALGORITHMS and ALGORITHMS[algorithm].artifact_format == fmt:
        return ALGORITHMS[algorithm]
    for spec in ALGORITHMS.values():
        if spec.artifact_format == fmt:
            return spec
    raise ArtifactError(f"unknown artifact format {fmt!r}; known: {formats()}")


def formats() -> tuple[str, ...]:
    """Artifact formats of the registered algorithms, without repeats."""
    return tuple(dict.fromkeys(s.artifact_format for s in ALGORITHMS.values()))


def algorithm_help() -> str:
    """``name: summary`` of every registered algorithm, for CLI help."""
    return "; ".join(f"{s.name}: {s.summary}" for s in ALGORITHMS.values())


def make_estimator(algorithm: str, task: str, params: dict[str, Any] | None = None, seed: int = 0) -> Any:
    """An unfitted estimator for ``algorithm`` with ``params`` over its defaults.

    Unknown parameter names raise ``ValueError`` naming the accepted ones.
    """
    spec = get_algorithm(algorithm)
    if task not in spec.tasks:
        raise ValueError(f"algorithm {algorithm!r} learns {' and '.join(spec.tasks)} targets only, not {task}")
    cls = spec.estimator_class()
    accepted = set(cls().get_params()) - {"task", "random_state"}
    unknown = sorted(set(params or {}) - accepted)
    if unknown:
        raise ValueError(f"unknown {algorithm} parameter(s) {unknown}; accepted: {sorted(accepted)}")
    return cls(task=task, random_state=seed, **(params or {}))


# ----------------------------------------------------------------------------- dump/load of the built-ins
def dump_skops(model: Any) -> bytes:
    """The wrapped scikit-learn estimator (``model.estimator_``) as canonical skops bytes."""
    import skops.io

    from xtalbase.ml.artifacts import canonical_skops

    return canonical_skops(skops.io.dumps(model.estimator_))


def load_skops(data: bytes, spec: AlgorithmSpec) -> Any:
    """Rebuild a wrapper from skops bytes, refusing any type outside the spec's allow-list before loading."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt file
        raise ArtifactError(f"cannot read skops artifact: {exc}") from exc
    refused = sorted(set(untrusted) - set(SKOPS_BASE_TRUSTED) - set(spec.trusted_types))
    if refused:
        raise ArtifactError(f"skops artifact contains types outside the allow-list: {refused}")
    try:
        return spec.estimator_class().from_library(skops.io.loads(data, trusted=list(untrusted)))
    except ValueError as exc:  # e.g. another algorithm's estimator: never hand back the wrong model
        raise ArtifactError(f"skops artifact does not hold a {spec.name} model: {exc}") from exc


def dump_xgboost(model: Any) -> bytes:
    """The booster's own UBJSON; labels and parameters ride in its ``xtalbase_meta`` attribute."""
    return bytes(model.booster_.save_raw(raw_format="ubj"))


def load_xgboost(data: bytes, spec: AlgorithmSpec) -> Any:
    """Rebuild an ``XGBoostModel`` from UBJSON bytes (a data format: nothing is executed)."""
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
        return spec.estimator_class().from_booster(booster)
    except (xgb.core.XGBoostError, ValueError) as exc:
        raise ArtifactError(f"cannot read xgboost-ubj artifact: {str(exc).splitlines()[0]}") from exc


register_algorithm(AlgorithmSpec(
    name="extratrees", summary="Extremely Randomized Trees (scikit-learn)",
    estimator="xtalbase.ml.estimators:ExtraTreesModel", artifact_format="skops", dump=dump_skops, load=load_skops,
    trusted_types=(
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
    ),
))
register_algorithm(AlgorithmSpec(
    name="xgboost", summary="gradient-boosted trees (XGBoost hist)",
    estimator="xtalbase.ml.estimators:XGBoostModel", artifact_format="xgboost-ubj", dump=dump_xgboost,
    load=load_xgboost,
))


def dump_torch_mlp(model: Any) -> bytes:
    """A property network's weights, scalings and parameters (``torch.save`` of tensors and JSON text)."""
    from xtalbase.ml.property_net import to_bytes

    return to_bytes(model)


def load_torch_mlp(data: bytes, spec: AlgorithmSpec) -> Any:
    """Rebuild an ``MLPPropertyRegressor`` with ``torch.load(weights_only=True)`` (no pickle code runs)."""
    from xtalbase.ml.property_net import from_bytes

    try:
        return from_bytes(data)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ArtifactError(f"cannot read torch-mlp artifact: {str(exc).splitlines()[0]}") from exc


register_algorithm(AlgorithmSpec(
    name="mlp", summary="multilayer perceptron (torch; regression targets only)",
    estimator="xtalbase.ml.property_net:MLPPropertyRegressor", artifact_format="torch-mlp", dump=dump_torch_mlp,
    load=load_torch_mlp, tasks=("regression",),
))


def dump_torch_cnn(model: Any) -> bytes:
    """An XRD CNN's weights, input scaling, classes and parameters (``torch.save`` of tensors and JSON text)."""
    from xtalbase.ml.xrd_cnn import to_bytes

    return to_bytes(model)


def load_torch_cnn(data: bytes, spec: AlgorithmSpec) -> Any:
    """Rebuild a ``ProfileCNNClassifier`` with ``torch.load(weights_only=True)`` (no pickle code runs)."""
    from xtalbase.ml.xrd_cnn import from_bytes

    try:
        return from_bytes(data)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ArtifactError(f"cannot read torch-cnn artifact: {str(exc).splitlines()[0]}") from exc


register_algorithm(AlgorithmSpec(
    name="cnn", summary="1-D convolutional network on a profile (torch; classification only; use --features profile_aug)",
    estimator="xtalbase.ml.xrd_cnn:ProfileCNNClassifier", artifact_format="torch-cnn", dump=dump_torch_cnn,
    load=load_torch_cnn, tasks=("classification",), early_stopping=True,
))
