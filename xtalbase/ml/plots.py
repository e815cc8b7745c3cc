"""PNG figures of a model: confusion matrix, feature importances, peak3-vs-peak-count with a surrogate tree."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xtalbase.platform.figures import new_figure, save_figure

if TYPE_CHECKING:
    from xtalbase.platform.database import Database


def confusion_png(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (true class rows, predicted class columns) with counts in the cells."""
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig = new_figure((6.5, 5.5))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    return save_figure(fig, path)


def importances_png(ranked: Sequence[tuple[str, float]], path: Path, title: str) -> Path:
    """Horizontal bar chart of (feature, importance) pairs, largest on top."""
    names = [n for n, _ in ranked][::-1]
    values = [v for _, v in ranked][::-1]
    fig = new_figure((6, max(3, 0.3 * len(names) + 1)))
    ax = fig.subplots()
    ax.barh(names, values, color="tab:blue")
    ax.set_xlabel("importance")
    ax.set_title(title)
    return save_figure(fig, path)


def surrogate_scatter_png(peak3: np.ndarray, npeaks: np.ndarray, is_cubic: np.ndarray, tree: Any, accuracy: float,
                          path: Path) -> Path:
    """Third-peak 2θ against peak count, cubic vs rest, with the decision regions of a tree fit on those two."""
    fig = new_figure((6.5, 5))
    ax = fig.subplots()
    xs = np.linspace(0, max(90.0, float(peak3.max()) + 1), 300)
    ys = np.linspace(0, float(npeaks.max()) * 1.05 + 1, 300)
    gx, gy = np.meshgrid(xs, ys)
    zz = tree.predict(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape).astype(float)
    ax.contourf(gx, gy, zz, levels=[-0.5, 0.5, 1.5], colors=["#f3e3e3", "#e0ecf8"], alpha=0.9)
    ax.contour(gx, gy, zz, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(peak3[~is_cubic], npeaks[~is_cubic], s=6, c="tab:red", alpha=0.5, label="not cubic")
    ax.scatter(peak3[is_cubic], npeaks[is_cubic], s=8, c="tab:blue", alpha=0.7, label="cubic")
    ax.set_xlabel("2θ of the third peak (degrees)")
    ax.set_ylabel("number of peaks (2θ ≤ 90°)")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_title(f"depth-2 tree, cubic vs rest: test accuracy {accuracy:.3f}")
    ax.legend(loc="upper right")
    return save_figure(fig, path)


def plots_for_model(db: "Database", model_id: int, folder: Path) -> list[Path]:
    """Write the model's PNGs into ``folder``: confusion matrix (crystal system), importances, surrogate scatter."""
    from xtalbase.ml.features import FeatureRecipe
    from xtalbase.ml.interpret import ranked_importances, surrogate_tree
    from xtalbase.ml.registry import get_model, load_estimator
    from xtalbase.ml.xrd_inputs import load_fold, split_fold_ids
    from xtalbase.schema import Split

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with db.session() as s:
        model = get_model(s, model_id)
        estimator = load_estimator(model)
        recipe = FeatureRecipe.from_dict(model.feature_recipe)
        names = recipe.names()
        tag = f"model{model.id}_{model.algorithm}_{model.target}"
        for fold in ("test", "val"):
            m = (model.metrics or {}).get(fold, {})
            if "confusion_matrix" in m:
                written.append(confusion_png(m["confusion_matrix"], [str(x) for x in m["confusion_labels"]],
                                             folder / f"{tag}_confusion.png", f"model {model.id} {model.algorithm}: {fold} fold"))
                break
        if hasattr(estimator, "feature_importances_"):  # trees have them; the CNN has none
            ranked = ranked_importances(estimator.feature_importances_, names)
            written.append(importances_png(ranked, folder / f"{tag}_importances.png", f"model {model.id} {model.algorithm} feature importances"))
        split = s.get(Split, model.split_id) if model.split_id else None
        if recipe.kind == "peaks11" and model.target == "crystal_system" and split is not None:
            train = load_fold(s, split_fold_ids(s, split, model.fold or "train"), "crystal_system", model.xrd_recipe_id, recipe)
            test_ids = split_fold_ids(s, split, "test")
            if test_ids:
                test = load_fold(s, test_ids, "crystal_system", model.xrd_recipe_id, recipe)
                cols = [names.index("peak3"), names.index("npeaks")]
                sur = surrogate_tree(train.X[:, cols], train.y, test.X[:, cols], test.y, ["peak3", "npeaks"])
                written.append(surrogate_scatter_png(test.X[:, cols[0]], test.X[:, cols[1]], test.y == "cubic", sur["tree"],
                                                     sur["accuracy"], folder / f"{tag}_surrogate_peak3_npeaks.png"))
    return written
