"""What an XRD model learned: feature importances and a depth-2 surrogate tree for cubic vs the rest.

The XRD crystal-system study explained its ExtraTrees model with a depth-2 decision tree separating cubic
structures from the rest (third peak position and peak count, 83.4 % accuracy); :func:`surrogate_tree`
fits the same kind of tree on our features so the two can be compared.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def surrogate_tree(X_train: np.ndarray, y_train: Sequence[Any], X_test: np.ndarray, y_test: Sequence[Any],
                   feature_names: Sequence[str], *, positive: str = "cubic", depth: int = 2, seed: int = 0) -> dict[str, Any]:
    """Fit a depth-``depth`` tree for ``positive`` vs rest; return its test accuracy, rules and the tree.

    ``X_*`` are (n, n_features) feature matrices, ``y_*`` crystal-system labels. The result holds
    ``accuracy`` (test), ``baseline`` (always "rest"), ``features_used``, ``rules`` (text) and ``tree``.
    """
    from sklearn.tree import DecisionTreeClassifier, export_text

    ytr = np.asarray(y_train) == positive
    yte = np.asarray(y_test) == positive
    tree = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(X_train, ytr)
    used = sorted({feature_names[i] for i in tree.tree_.feature if i >= 0})
    return {
        "positive": positive,
        "accuracy": float(np.mean(tree.predict(X_test) == yte)) if len(yte) else float("nan"),
        "baseline": float(np.mean(~yte)) if len(yte) else float("nan"),
        "features_used": used,
        "rules": export_text(tree, feature_names=list(feature_names)),
        "tree": tree,
    }


def ranked_importances(importances: np.ndarray, feature_names: Sequence[str], top: int = 20) -> list[tuple[str, float]]:
    """The ``top`` (name, importance) pairs, largest first."""
    order = np.argsort(-np.asarray(importances), kind="stable")[:top]
    return [(feature_names[i], float(importances[i])) for i in order]
