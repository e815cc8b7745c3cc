"""What a model learns to predict: a registry of small :class:`Target` objects.

A target names its task, its output columns, which stored structures it trains on, how their labels are
read and which metrics describe it. Training, prediction and the ``train`` command's help all read this
table, so a new target is one entry here plus its test.

>>> get_target("cubic_a").outputs
('a',)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    import numpy as np

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Target:
    """One learnable property of a stored structure.

    ``rows`` below are structure rows with ``id``, ``crystal_system``, ``spacegroup_number``, ``symprec``
    and the cell arrays (as :func:`xtalbase.ml.xrd_inputs.load_fold` selects them).

    Attributes
    ----------
    name : the stored ``models.target``.
    task : ``"classification"`` or ``"regression"``.
    outputs : names of the predicted columns (a classifier has one).
    description : one line for the command-line help.
    label : rows -> labels, (n,) for one output else (n, n_outputs); regression values in Å.
    train_filter : rows -> whether each row belongs to the target's domain (``None``: every row). Applied
        when training and evaluating, never when predicting: a model is asked about any structure.
    metrics : the headline metric names printed per fold.
    cubic_subset : also report the outputs' first column on the cubic structures as ``*_cubic_a``.
    confusion : store the confusion matrix with a classifier's metrics (few classes only).
    """

    name: str
    task: str
    outputs: tuple[str, ...]
    description: str
    label: Callable[[Sequence[Any]], "np.ndarray"]
    train_filter: Callable[[Any], bool] | None = None
    metrics: tuple[str, ...] = ()
    cubic_subset: bool = False
    confusion: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise XtalbaseError(f"target {self.name!r}: task must be one of {TASKS}, got {self.task!r}")

    def training_rows(self, rows: Sequence[Any]) -> list[Any]:
        """The rows this target trains and evaluates on."""
        return list(rows) if self.train_filter is None else [r for r in rows if self.train_filter(r)]


def _symmetry_label(attribute: str, what: str) -> Callable[[Sequence[Any]], "np.ndarray"]:
    def label(rows: Sequence[Any]) -> "np.ndarray":
        import numpy as np

        values = [getattr(r, attribute) for r in rows]
        unlabelled = [r.id for r, v in zip(rows, values) if v is None]
        if unlabelled:
            raise XtalbaseError(f"{len(unlabelled)} structures have no {what} (symmetry not determined), e.g. structure {unlabelled[0]}")
        return np.asarray(values)

    return label


def _lattice(rows: Sequence[Any]) -> "np.ndarray":
    from xtalbase.ml.xrd_inputs import conventional_lattice

    return conventional_lattice(rows)


def _lattice_a(rows: Sequence[Any]) -> "np.ndarray":
    return _lattice(rows)[:, 0]


_CLASSIFIER_METRICS = ("accuracy", "top5_accuracy", "macro_f1", "majority_accuracy")

#: The registry: name -> target. Order is the order of the help text.
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("crystal_system", "classification", ("crystal_system",), "crystal system (7 classes)",
           _symmetry_label("crystal_system", "crystal_system"), metrics=_CLASSIFIER_METRICS, confusion=True),
    Target("space_group", "classification", ("space_group",), "space-group number",
           _symmetry_label("spacegroup_number", "space_group"), metrics=_CLASSIFIER_METRICS),
    Target("lattice", "regression", ("a", "b", "c"), "conventional a, b, c (Å)", _lattice,
           metrics=("r2_a", "mae_a", "r2_b", "mae_b", "r2_c", "mae_c", "r2_cubic_a", "mae_cubic_a"), cubic_subset=True),
    Target("cubic_a", "regression", ("a",), "conventional a (Å) of cubic structures", _lattice_a,
           train_filter=lambda r: r.crystal_system == "cubic", metrics=("r2_a", "mae_a")),
)}


def get_target(name: str) -> Target:
    """The registered target ``name``; raises naming the known targets."""
    target = TARGETS.get(name)
    if target is None:
        raise XtalbaseError(f"unknown target {name!r}; choose one of {sorted(TARGETS)}")
    return target


def metric_names() -> list[str]:
    """Every target's headline metrics, each once, in registry order (the columns of a metrics table)."""
    return list(dict.fromkeys(m for t in TARGETS.values() for m in t.metrics))


def targets_help() -> str:
    """``name: description | ...`` for command-line help."""
    return " | ".join(f"{t.name}: {t.description}" for t in TARGETS.values())
