"""The key-motif comparison loop: strategies × N × seeds, each retrained from scratch and scored on a hold-out.

For each seed: train the parent potential on ``train``; evaluate it on ``holdout`` (the N = 0 row); take the
gap report of ``target`` against ``train`` with that potential; for each strategy (a name, or ``name:diverse``
for the greedy selection that zeroes the motifs each pick holds) select the best ``max(N)``
surrogates (or pool structures), label them once, and for each N store the child dataset holding the first
N (each member with its reason) and train a fresh potential on it with the same seed and options. Selections
are nested (the best N are the first N of the best max(N)), so labelling costs one oracle call per surrogate.
The hold-out set is never seen by the motif analysis, unlike the study's protocol, which picked its additions
against the set it reported on.

The table (mean ± std over seeds of energy RMSE in meV/atom, force RMSE in eV/Å and extrapolating atoms of
the hold-out, per strategy and N) is stored as the ``mlip-loop`` run's summary and written to ``out`` as
``results.json``, ``results.csv``, ``results.md`` and ``error_vs_n.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    import pandas as pd

    from xtalbase.platform.database import Database

METRICS = ("energy_rmse_mev", "force_rmse", "extrapolating_atoms")


@dataclass
class LoopResult:
    """Every (strategy, N, seed) row, the aggregated table, the run id and the files written."""

    rows: list[dict[str, Any]]
    table: list[dict[str, Any]]
    run_id: int | None = None
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def frame(self) -> "pd.DataFrame":
        """The aggregated table as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.table)

    def markdown(self) -> str:
        """The aggregated table as Markdown (mean ± std over seeds)."""
        lines = ["| strategy | N | seeds | energy RMSE (meV/atom) | force RMSE (eV/Å) | extrapolating atoms |",
                 "|---|---|---|---|---|---|"]
        for r in self.table:
            lines.append(f"| {r['strategy']} | {r['n']} | {r['seeds']} | {_pm(r, 'energy_rmse_mev', 2)} | "
                         f"{_pm(r, 'force_rmse', 3)} | {_pm(r, 'extrapolating_atoms', 1)} |")
        return "\n".join(lines)


def _pm(row: dict[str, Any], key: str, digits: int) -> str:
    mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and (population) std over seeds of each metric, per (strategy, N); N = 0 is the parent."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], int(r["n"])), []).append(r)
    out = []
    for (strategy, n), items in sorted(groups.items(), key=lambda kv: (kv[0][0] != "none", kv[0][0], kv[0][1])):
        row: dict[str, Any] = {"strategy": strategy, "n": n, "seeds": len(items)}
        for key in METRICS:
            values = np.array([r[key] for r in items if r.get(key) is not None], dtype=float)
            row[f"{key}_mean"] = float(values.mean()) if len(values) else None
            row[f"{key}_std"] = float(values.std()) if len(values) else None
        out.append(row)
    return out


def run_loop(db: "Database", *, train: str, target: str, holdout: str, out: str | Path, prefix: str,
             strategies: Sequence[str] = ("key-motif", "gap", "outlier", "random"), n_values: Sequence[int] = (1, 2, 4),
             seeds: Sequence[int] = (0, 1, 2), oracle: str = "emt", recipe: str | Path = "default", options: Any = None,
             pool: str | None = None, quantile: float | None = None, energy: str | None = None,
             prototypes: Sequence[str] | None = None, candidate_options: dict[str, Any] | None = None,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> LoopResult:
    """Run the comparison (see the module docstring); ``on_row`` sees each finished (strategy, N, seed) row."""
    from xtalbase.ml.datasets import DatasetStore
    from xtalbase.mlip import training
    from xtalbase.mlip.evaluation import evaluate
    from xtalbase.mlip.expansion import dataset_configurations, expand, gap_report
    from xtalbase.mlip.potentials import load_potential, train_potential

    if oracle == "files":
        raise XtalbaseError("the loop labels as it goes: use an in-process oracle (emt, chgnet) or a --pool")
    n_values = sorted({int(n) for n in n_values})
    if not n_values or n_values[0] < 1:
        raise XtalbaseError(f"N values {n_values}: give positive numbers of structures to add")
    started = time.perf_counter()
    options = options or training.TrainOptions()
    holdout_cfgs = dataset_configurations(db, holdout, labelled=True)
    store = DatasetStore(db)
    root = Path(out)
    rows: list[dict[str, Any]] = []

    def record(strategy: str, n: int, seed: int, model_id: int, dataset: str, seconds: float) -> None:
        summary = evaluate(load_potential(db, model_id), holdout_cfgs).summary()
        row = {"strategy": strategy, "n": n, "seed": seed, "model_id": model_id, "dataset": dataset,
               "seconds": round(seconds, 2), **{k: summary[k] for k in METRICS}}
        rows.append(row)
        if on_row:
            on_row(row)

    params = {"train": train, "target": target, "holdout": holdout, "strategies": list(strategies), "n": n_values,
              "seeds": list(seeds), "oracle": oracle, "pool": pool, "recipe": str(recipe), "options": options.to_dict(),
              "quantile": quantile, "energy": energy, "prefix": prefix}
    with db.run("mlip-loop", params) as run:
        for seed in seeds:
            opts = replace(options, seed=int(seed))
            t0 = time.perf_counter()
            parent = train_potential(db, dataset=train, recipe=recipe, options=opts, name=f"{prefix}-parent-s{seed}")
            record("none", 0, seed, parent.model_id, train, time.perf_counter() - t0)
            report = gap_report(db, train=train, target=target, model_id=parent.model_id, quantile=quantile)
            for label in strategies:
                strategy, _, mode = label.partition(":")
                if mode not in ("", "diverse"):
                    raise XtalbaseError(f"strategy {label!r}: a strategy name, optionally with ':diverse'")
                tag = label.replace(":", "-")
                top = expand(db, train=train, target=target, strategy=strategy, n=n_values[-1], seed=int(seed),
                             oracle=oracle, out=root / f"{tag}-s{seed}", name=f"{prefix}-{tag}-s{seed}-n{n_values[-1]}",
                             model_id=parent.model_id, report=report, pool=pool, energy=energy, prototypes=prototypes,
                             candidate_options=candidate_options, diverse=mode == "diverse")
                reasons = {m["structure_id"]: m["reason"] for m in top.dataset.members() if not m["inherited"]}
                order = [top.structure_ids[s.key] for s in top.selected if s.key in top.structure_ids]
                for n in n_values:
                    ids = list(dict.fromkeys(order[:n]))
                    name = f"{prefix}-{tag}-s{seed}-n{n}"
                    if n != n_values[-1]:
                        store.extend(train, name, ids=ids, reason={i: reasons[i] for i in ids},
                                     description=f"the first {n} of {top.dataset.name}")
                    t0 = time.perf_counter()
                    child = train_potential(db, dataset=name, recipe=recipe, options=opts, name=f"{name}-model",
                                            parent_model_id=parent.model_id)
                    record(label, n, seed, child.model_id, name, time.perf_counter() - t0)
        table = aggregate(rows)
        run.summary.update(table=table, n_models=len(rows))
        run_id = run.id
    result = LoopResult(rows=rows, table=table, run_id=run_id, seconds=time.perf_counter() - started)
    result.files = write_results(result, root)
    return result


def write_results(result: LoopResult, folder: Path) -> list[Path]:
    """``results.json`` (rows and table), ``results.csv``, ``results.md`` and ``error_vs_n.png`` in ``folder``."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "results.json", folder / "results.csv", folder / "results.md"]
    paths[0].write_text(json.dumps({"rows": result.rows, "table": result.table, "run_id": result.run_id,
                                    "seconds": round(result.seconds, 1)}, indent=1))
    pd.DataFrame(result.table).to_csv(paths[1], index=False)
    paths[2].write_text(result.markdown() + "\n")
    paths.append(plot_error_vs_n(result.table, folder / "error_vs_n.png"))
    return paths


def plot_error_vs_n(table: Sequence[dict[str, Any]], path: Path) -> Path:
    """Energy and force RMSE (mean ± std) against N, one line per strategy, the parent at N = 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = [r for r in table if r["strategy"] == "none"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, unit in ((axes[0], "energy_rmse_mev", "energy RMSE (meV/atom)"), (axes[1], "force_rmse", "force RMSE (eV/Å)")):
        for strategy in sorted({r["strategy"] for r in table} - {"none"}):
            pts = base + sorted((r for r in table if r["strategy"] == strategy), key=lambda r: r["n"])
            pts = [r for r in pts if r.get(f"{key}_mean") is not None]
            ax.errorbar([r["n"] for r in pts], [r[f"{key}_mean"] for r in pts], yerr=[r[f"{key}_std"] for r in pts],
                        marker="o", capsize=3, label=strategy)
        ax.set_xlabel("surrogates added N")
        ax.set_ylabel(unit)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
