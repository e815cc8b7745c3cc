"""``xtalbase models list`` / ``models show ID``: the model registry with lineage."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json, print_table

app = typer.Typer(help="The model registry: trained models, their metrics and lineage.", no_args_is_help=True)


@app.command("list")
def list_models(
    ctx: typer.Context,
    target: Annotated[Optional[str], typer.Option(help="Only models for this target.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N models.")] = 50,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List models, newest first, with their headline metric and lineage (parent models)."""
    from xtalbase.ml.registry import list_models as registry_list

    rows = registry_list(open_db(ctx, db), target=target, limit=limit)
    if as_json:
        print_json(rows)
        return
    table = []
    for r in rows:
        test = r["metrics"].get("test") or r["metrics"].get("val") or {}
        headline = test.get("accuracy", test.get("r2_a"))
        text = f"{headline:.3f}" if isinstance(headline, float) else ""
        if r["task"] == "potential" and isinstance(test.get("energy_rmse_mev"), float):
            text = f"E {test['energy_rmse_mev']:.1f} meV/at, F {test['force_rmse']:.3f} eV/Å"
        table.append({"id": r["id"], "name": r["name"], "target": r["target"], "algorithm": r["algorithm"],
                      "features": r["feature_recipe"].get("kind") or r["feature_recipe"].get("name"),
                      "trained on": _trained_on(r), "n train": r["metrics"].get("train", {}).get("n"),
                      "test acc/R²": text,
                      "lineage": " <- ".join(map(str, r["lineage"])), "sha256": r["artifact_sha256"][:8]})
    print_table(table, ["id", "name", "target", "algorithm", "features", "trained on", "n train", "test acc/R²", "lineage", "sha256"])


@app.command("show")
def show(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="Model id or name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Everything stored about one model (not the artifact bytes)."""
    from xtalbase.commands.train import print_metrics
    from xtalbase.ml.registry import get_model, summary

    with open_db(ctx, db).session() as s:
        row = summary(s, get_model(s, model_id))
    if as_json:
        print_json(row)
        return
    out = console()
    for key in ("id", "name", "task", "target", "algorithm", "hyperparameters", "seed", "feature_recipe", "xrd_recipe_id",
                "split", "split_hash", "dataset", "dataset_hash", "fold", "training_set_hash", "artifact_format",
                "artifact_sha256", "artifact_bytes", "parent_model_id", "code_version", "library_versions", "run_id",
                "n_predictions", "created_at"):
        out.print(f"{key:>18}: {row[key]}")
    if row["task"] == "potential":
        from xtalbase.commands.train import print_potential_metrics

        print_potential_metrics(row["metrics"])
        return
    print_metrics(row["metrics"])


def _trained_on(row: dict) -> str:
    if row["dataset"]:
        return f"dataset {row['dataset']}"
    return f"{row['split']}/{row['fold']}" if row["split"] else ""
