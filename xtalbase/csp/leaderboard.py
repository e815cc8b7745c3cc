"""The CSP leaderboard: every run on one split hash, one row per (run, k), from stored pair results.

Runs on other split hashes are listed apart and never ranked beside these: a different split is a different
benchmark. Rows are sorted by k, then match rate (best first).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from xtalbase.csp.metrics import compute

if TYPE_CHECKING:
    from xtalbase.csp.store import CspStore
    from xtalbase.ml.splits import SplitHandle

#: Columns of the leaderboard per mode (the JSON keeps every metric).
COLUMNS = {"reference": ["model", "run", "k", "match_rate", "rmse", "n_matched", "n_test", "seed", "sample_seconds"],
           "strict": ["model", "run", "k", "match_rate", "rmse", "match_rate_strict", "rmse_strict", "volume_error",
                      "spacegroup_agreement", "n_test"]}


def leaderboard(store: "CspStore", split: "SplitHandle", *, mode: str = "reference", ks: Sequence[int] | None = None,
                fold: str = "test", runs: Sequence[str] | None = None, **match_options: Any) -> dict[str, Any]:
    """``{"split", "split_hash", "mode", "rows", "curves", "elsewhere"}``; ``ks`` default: 1 and each run's k;
    ``runs``: only these run names (default every run on the split hash)."""
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[tuple[int, float | None]]] = {}
    for info in store.runs(split.id):
        if info.fold != fold or (runs is not None and info.name not in runs):
            continue
        _, table = store.pair_table(info.id, **match_options)
        wanted = sorted({k for k in (ks or (1, info.k)) if 1 <= k <= info.k})
        for k in wanted:
            m = compute(table, k, mode)
            rows.append({"model": info.model, "run": info.name, "run_id": info.id, "origin": info.origin, "seed": info.seed,
                         "sample_seconds": info.seconds, **{key: v for key, v in m.items() if key not in ("options",)}})
        curves[info.name] = [(k, compute(table, k, "reference")["match_rate"]) for k in range(1, info.k + 1)]
    rows.sort(key=lambda r: (r["k"], -(r["match_rate"] or 0.0), r["run"]))
    elsewhere = [{"run": r.name, "model": r.model, "split": r.split, "split_hash": r.split_hash, "fold": r.fold, "k": r.k}
                 for r in store.runs() if r.split_hash != split.id]
    return {"split": split.name, "split_hash": split.id, "mode": mode, "fold": fold, "rows": rows, "curves": curves,
            "elsewhere": elsewhere}


def to_markdown(board: dict[str, Any]) -> str:
    """The leaderboard as a Markdown table, the split hash above it and the runs of other splits below."""
    cols = COLUMNS[board["mode"]]
    lines = [f"CSP leaderboard: split {board['split']} (hash {board['split_hash'][:16]}), fold {board['fold']}, "
             f"{board['mode']} mode", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in board["rows"]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in cols) + " |")
    if board["elsewhere"]:
        lines += ["", f"Not comparable (another split hash): {len(board['elsewhere'])} run(s): "
                  + ", ".join(f"{r['run']} ({r['split']} {r['split_hash'][:12]})" for r in board["elsewhere"])]
    return "\n".join(lines)


def to_csv(board: dict[str, Any]) -> str:
    """The leaderboard rows as CSV (every metric of the mode)."""
    import csv
    import io

    keys = [k for k in board["rows"][0] if k != "status_counts"] if board["rows"] else COLUMNS[board["mode"]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["split_hash", *keys], extrasaction="ignore")
    writer.writeheader()
    for row in board["rows"]:
        writer.writerow({"split_hash": board["split_hash"], **row})
    return out.getvalue()


def plot(board: dict[str, Any], path: str | Path) -> Path:
    """Match rate (reference mode) against k, one line per run."""
    from xtalbase.platform.figures import new_figure, save_figure

    fig = new_figure((5.5, 4.0))
    ax = fig.add_subplot(111)
    for name, curve in board["curves"].items():
        ks = [k for k, _ in curve]
        ax.plot(ks, [v or 0.0 for _, v in curve], marker="o", ms=3, label=name)
    ax.set_xlabel("k (samples per composition)")
    ax.set_ylabel("match rate (reference)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{board['split']} ({board['split_hash'][:10]})", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, Path(path))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
