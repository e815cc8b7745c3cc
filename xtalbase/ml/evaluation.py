"""Metrics for XRD models, as plain JSON-ready dicts stored on the ``models`` row.

Classification: accuracy, top-5 accuracy (top-k over the model's classes; a true class the model never
saw counts as wrong), macro-F1 over the classes present in truth or prediction, majority-class baseline,
and the confusion matrix with its labels. Regression: R² and MAE (Å for lattice constants) per output.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def top_k_accuracy(y_true: Sequence[Any], proba: np.ndarray, classes: Sequence[Any], k: int = 5) -> float:
    """Share of samples whose true label is among the ``k`` most probable ``classes``.

    ``proba`` is (n_samples, n_classes) with columns in the order of ``classes``.
    """
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        return float("nan")
    k = min(k, proba.shape[1])
    top = np.asarray(classes)[np.argsort(-proba, axis=1, kind="stable")[:, :k]]
    return float(np.mean(np.any(top == y_true[:, None], axis=1)))


def top_k(proba: np.ndarray, classes: Sequence[Any], k: int = 5) -> list[list[tuple[Any, float]]]:
    """The ``k`` most probable (class, probability) pairs per sample, most probable first."""
    order = np.argsort(-proba, axis=1, kind="stable")[:, : min(k, proba.shape[1])]
    classes = np.asarray(classes)
    return [[(_plain(classes[j]), float(proba[i, j])) for j in row] for i, row in enumerate(order)]


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any], proba: np.ndarray | None = None,
                           classes: Sequence[Any] | None = None, *, top: int = 5,
                           confusion: bool = True, train_labels: Sequence[Any] | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, top-``top`` accuracy (when ``proba`` is given), majority baseline, confusion matrix.

    ``train_labels`` gives the majority class for the baseline (the class a constant model would predict).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    out: dict[str, Any] = {"n": int(len(y_true))}
    if len(y_true) == 0:
        return out
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    out["macro_f1"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    if proba is not None and classes is not None:
        out[f"top{top}_accuracy"] = top_k_accuracy(y_true, proba, classes, top)
    reference = np.asarray(train_labels) if train_labels is not None else y_true
    values, counts = np.unique(reference, return_counts=True)
    majority = values[np.argmax(counts)]
    out["majority_class"] = _plain(majority)
    out["majority_accuracy"] = float(np.mean(y_true == majority))
    if confusion:
        labels = np.unique(np.concatenate([y_true, y_pred]))
        out["confusion_labels"] = [_plain(v) for v in labels]
        out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """R² and MAE per output column named by ``names``; ``y_*`` are (n_samples, n_outputs) or (n_samples,)."""
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)
    out: dict[str, Any] = {"n": int(len(y_true))}
    for j, name in enumerate(names):
        if len(y_true) >= 2:
            out[f"r2_{name}"] = float(r2_score(y_true[:, j], y_pred[:, j]))
        if len(y_true):
            out[f"mae_{name}"] = float(mean_absolute_error(y_true[:, j], y_pred[:, j]))
    return out


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars, so metrics serialise as JSON."""
    return value.item() if hasattr(value, "item") else value
