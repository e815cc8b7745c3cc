"""``xtalbase provenance prediction ID`` / ``provenance model ID``: the chain back to source files."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json

app = typer.Typer(help="Trace a prediction or model back to its data, code and parameters.", no_args_is_help=True)


@app.command("model")
def model(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="Model id or name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Model → split/dataset → training structures → ingest runs → source files, with versions."""
    from xtalbase.ml.provenance import model_chain

    with open_db(ctx, db).session() as s:
        chain = model_chain(s, model_id)
    print_json(chain) if as_json else print_model_chain(chain)


@app.command("prediction")
def prediction(
    ctx: typer.Context,
    prediction_id: Annotated[int, typer.Argument(help="Prediction id.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Prediction → input structure or pattern → model → split/dataset → structures → ingest runs → files."""
    from xtalbase.ml.provenance import prediction_chain

    with open_db(ctx, db).session() as s:
        chain = prediction_chain(s, prediction_id)
    if as_json:
        print_json(chain)
        return
    out = console()
    p = chain["prediction"]
    out.print(f"prediction {p['id']}: {p['target']} = {p['label'] if p['label'] is not None else p['value']}"
              f"  (predict run {_rid(chain['predict_run'])}, {p['created_at']:%Y-%m-%d %H:%M:%S})")
    if p.get("payload", {}).get("top_k"):
        out.print("  top-k: " + ", ".join(f"{c} {v:.3f}" for c, v in p["payload"]["top_k"]))
    if "structure" in chain:
        st = chain["structure"]
        out.print(f"└ structure {st['id']} {st['formula']} (stored: {st['crystal_system']}, SG {st['spacegroup_number']}), "
                  f"exact hash {st['exact_hash'][:16]}, ingest run {_rid(st['ingest_run'])}")
        for src in st["sources"]:
            out.print(f"  └ source {src['database']} {src['external_id'] or ''}: {src['file_path']} (sha256 {src['file_hash'][:16]})")
    if "pattern" in chain:
        pt = chain["pattern"]
        out.print(f"└ {pt['kind']} pattern {pt['id']} {pt['name'] or ''}: {pt['file_path'] or ''} "
                  f"(sha256 {(pt['file_hash'] or '')[:16]}, {pt['npeaks']} peaks, import run {_rid(pt['import_run'])})")
    print_model_chain(chain["model_chain"], indent="")


def print_model_chain(chain: dict[str, Any], indent: str = "") -> None:
    """The model chain as indented lines."""
    out = console()
    m = chain["model"]
    out.print(f"{indent}model {m['id']}{' ' + m['name'] if m['name'] else ''}: {m['algorithm']} {m['task']} of {m['target']}, "
              f"seed {m['seed']}, trained {m['created_at']:%Y-%m-%d %H:%M:%S}, lineage {' <- '.join(map(str, m['lineage']))}")
    out.print(f"{indent}  hyperparameters: {m['hyperparameters']}")
    out.print(f"{indent}  features: {m['feature_recipe']}")
    out.print(f"{indent}  artifact: {m['artifact_format']} sha256 {m['artifact_sha256']}")
    out.print(f"{indent}  code: {m['code_version']}; libraries: " + ", ".join(f"{k} {v}" for k, v in m["library_versions"].items()))
    tr = chain.get("train_run")
    if tr:
        out.print(f"{indent}  train run {tr['id']} on {tr['host']} by {tr['user']}, git {tr['git_revision'] or 'unknown'}")
    for fold, values in m["metrics"].items():
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items() if k in
                 ("n", "accuracy", "top5_accuracy", "macro_f1", "r2_a", "mae_a", "r2_cubic_a")}
        out.print(f"{indent}  metrics {fold}: {shown}")
    r = chain.get("xrd_recipe")
    if r:
        out.print(f"{indent}└ XRD recipe {r['id']} {r['name'] or ''}: λ = {r['wavelength']} Å, 2θ {r['two_theta'][0]}-{r['two_theta'][1]}°, "
                  f"merge tol {r['merge_tol']}°, hash {r['hash'][:16]}")
    sp = chain.get("split")
    if sp:
        out.print(f"{indent}└ split {sp['name']} (id {sp['id']}): {sp['strategy']}, seed {sp['seed']}, mode {sp['mode']}, "
                  f"hash {sp['hash'][:16]}, counts {sp['counts']}")
        out.print(f"{indent}    recipe {sp['recipe']}")
    ds = chain.get("dataset")
    if ds:
        out.print(f"{indent}└ dataset {ds['name']} (id {ds['id']}), hash {ds['hash'][:16]}, {ds['n_members']} members; lineage "
                  + " <- ".join(f"{d['name']}({d['n_members']})" for d in ds["lineage"]))
    ts = chain.get("training_structures")
    if ts:
        ok = ("matches" if ts["matches_recorded"] else "DIFFERS FROM") + " the hash recorded at training"
        if ts["matches_recorded"] is None:
            ok = "the recorded hash covers the structures with their calculations"
        out.print(f"{indent}  └ training structures ({m['fold']}): {ts['count']}, set hash {ts['set_hash'][:16]} ({ok})")
        for run in chain["ingest_runs"]:
            out.print(f"{indent}    └ {run['kind']} run {run['id']} ({run['status']}) {run['started_at']:%Y-%m-%d %H:%M:%S}, "
                      f"xtalbase {run['package_version']} git {(run['git_revision'] or 'unknown')[:12]}, params {run['params']}")
        sf = chain["source_files"]
        out.print(f"{indent}      └ source files: {sf['n_files']} ({sf['n_sources']} source records; {sf['databases']}), "
                  f"files sha256 {sf['files_sha256'][:16]}")
        for ex in sf["examples"]:
            out.print(f"{indent}        {ex['file_path']} (sha256 {ex['file_hash'][:16]})")
    calcs = chain.get("calculations")
    if calcs:
        out.print(f"{indent}  └ calculations: {calcs.get('count')} from {len(calcs.get('source_files', []))} file(s)")
        for f in calcs.get("source_files", [])[:5]:
            out.print(f"{indent}      {f.get('file_path')} (sha256 {(f.get('file_hash') or '')[:16]}, "
                      f"{f.get('n_calculations')} calculations)")


def _rid(run: dict[str, Any] | None) -> str:
    return str(run["id"]) if run else "-"
