"""``xtalbase split ...``: reproducible, immutable splits; leakage checks; exports and imports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json, print_table, progress
from xtalbase.ml.splitters import strategy_help

app = typer.Typer(help="Create, inspect, check, export and import reproducible splits.", no_args_is_help=True)

EXPORT_FORMATS = ("cdvae-csv", "parquet", "extxyz", "poscar")


def read_id_file(path: Path) -> dict[int, float | None]:
    """Structure ids (and optional scores) from a text/CSV file: one id per line, optionally ``id,score``.

    Blank lines, ``#`` comments and a header line whose first field is not a number are skipped.
    """
    from xtalbase.errors import XtalbaseError

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise XtalbaseError(f"cannot read id file {path}: {exc.strerror or exc}") from exc
    found: dict[int, float | None] = {}
    for number, line in enumerate(lines, 1):
        fields = [f for f in line.split("#", 1)[0].replace(",", " ").replace("\t", " ").split(" ") if f]
        if not fields:
            continue
        try:
            sid = int(fields[0])
        except ValueError:
            if number == 1 or not found:
                continue  # header
            raise XtalbaseError(f"{path}:{number}: {fields[0]!r} is not a structure id") from None
        try:
            found[sid] = float(fields[1]) if len(fields) > 1 else None
        except ValueError:
            raise XtalbaseError(f"{path}:{number}: score {fields[1]!r} is not a number") from None
    if not found:
        raise XtalbaseError(f"{path}: no structure ids found (one id per line, optionally 'id,score')")
    return found


def _cut(value: Optional[str]) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.strip().lstrip("-").isdigit() else value


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique name of the split.")],
    strategy: Annotated[str, typer.Option(help=strategy_help())] = "random",
    by: Annotated[Optional[str], typer.Option(help="Group/stratum column: formula_reduced, chemical_system, prototype, "
                                                   "spacegroup_number, crystal_system, ... or a source property name.")] = None,
    fractions: Annotated[tuple[float, float, float], typer.Option(help="train val test fractions (sum 1; kfold ignores them).")] = (0.6, 0.2, 0.2),
    k: Annotated[Optional[int], typer.Option("--k", help="Number of folds (kfold).")] = None,
    seed: Annotated[int, typer.Option(help="Seed keying the hash; same seed, same folds.")] = 0,
    filter: Annotated[Optional[str], typer.Option("--filter", help="OPTIMADE filter selecting the structures.")] = None,
    ids: Annotated[Optional[Path], typer.Option("--ids", help="File of structure ids (one per line) to split.")] = None,
    mode: Annotated[str, typer.Option(help="stable (growth never moves a structure) | exact (exact fractions).")] = "stable",
    cut: Annotated[Optional[str], typer.Option(help="time: a run id (later runs are the test side) or an ISO timestamp.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a split (or return the stored one when the same recipe was created under NAME before)."""
    handle = open_db(ctx, db)
    split = handle.splits.create(
        name, strategy=strategy, by=by, fractions=fractions, k=k, seed=seed,
        filter=filter, ids=list(read_id_file(ids)) if ids else None, mode=mode, cut=_cut(cut),
    )
    if as_json:
        print_json(split.summary())
        return
    console().print(f"split {split.name}  id {split.id}  " + "  ".join(f"{f}={n}" for f, n in split.counts.items()))


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Split name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a split: id (content hash), recipe and fold counts."""
    info = open_db(ctx, db).splits.get(name).summary()
    if as_json:
        print_json(info)
        return
    out = console()
    for key in ("name", "id", "strategy", "mode", "seed", "n_members", "created_at", "run_id"):
        out.print(f"{key + ':':11} {info[key]}")
    out.print("counts:     " + "  ".join(f"{f}={n}" for f, n in info["counts"].items()))
    recipe = {k: v for k, v in info["recipe"].items() if v not in (None, {}, [])}
    out.print(f"recipe:     {recipe}")


@app.command("list")
def list_splits(ctx: typer.Context, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List every split with its id and counts."""
    rows = open_db(ctx, db).splits.list()
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["id"] = r["id"][:16]
        r["counts"] = " ".join(f"{f}={n}" for f, n in r["counts"].items())
    print_table(rows, ["name", "id", "strategy", "mode", "seed", "counts", "created_at"])


@app.command("check")
def check(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Split name.")],
    examples: Annotated[int, typer.Option(help="Leaked values to list per key.")] = 5,
    fail_on_leak: Annotated[bool, typer.Option("--fail-on-leak", help="Exit 1 when any key leaks.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Leakage: structures whose canonical hash, reduced formula, chemical system or prototype is in several folds."""
    report = open_db(ctx, db).splits.get(name).check(examples=examples)
    if as_json:
        print_json(report)
    else:
        out = console()
        out.print(f"split {report['split']} ({report['n_members']} structures): "
                  + ("LEAKS" if report["leaked"] else "no leakage on any key"))
        rows = []
        for key, r in report["keys"].items():
            shown = "; ".join(f"{e['value']} ({', '.join(f'{f}:{n}' for f, n in e['folds'].items())})" for e in r["examples"])
            rows.append({"key": key, "leaked values": r["values"], "structures": r["structures"], "examples": shown})
        print_table(rows, ["key", "leaked values", "structures", "examples"])
    if fail_on_leak and report["leaked"]:
        raise typer.Exit(1)


@app.command("export")
def export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Split name.")],
    directory: Annotated[Path, typer.Argument(help="New or empty folder to write.")],
    format: Annotated[str, typer.Option("--format", help=" | ".join(EXPORT_FORMATS))] = "cdvae-csv",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a split (files per fold or one table) with a manifest.json of recipe, counts and sha256s."""
    split = open_db(ctx, db).splits.get(name)
    with progress() as bar:
        task = bar.add_task(f"export {name} ({format})", total=sum(split.counts.values()))
        manifest = split.export(str(directory), format, progress=lambda n: bar.advance(task, n))
    if as_json:
        print_json(manifest)
        return
    console().print(f"wrote {len(manifest['files'])} files + manifest.json to {directory}")


@app.command("verify")
def verify(
    directory: Annotated[Path, typer.Argument(help="An export folder with manifest.json.")],
    as_json: JsonOpt = False,
) -> None:
    """Re-hash an export against its manifest; fails (exit 1) naming every missing, changed or unlisted file."""
    from xtalbase.ml.manifest import ExportError, verify_manifest

    report = verify_manifest(directory)
    if as_json:
        print_json(report)
    if not report["ok"]:
        raise ExportError(f"{directory}: export does not match its manifest: " + "; ".join(report["problems"]))
    if not as_json:
        console().print(f"{directory}: {report['checked']} files match manifest.json (split {report['split']}, {report['format']})")


@app.command("import")
def import_split(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name for the imported split.")],
    cdvae_dir: Annotated[Path, typer.Option("--cdvae-dir", help="Folder with train.csv, val.csv, test.csv (CDVAE layout).")],
    symprec: Annotated[Optional[float], typer.Option(help="spglib tolerance (Å) for hashing; default: ingest's.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes parsing and hashing the CSV rows.")] = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a published split from CDVAE CSVs by matching canonical hashes; reports unmatched rows."""
    handle = open_db(ctx, db)
    with progress() as bar:
        task = bar.add_task(f"import {cdvae_dir}", total=None)
        split, report = handle.splits.import_cdvae(name, str(cdvae_dir), symprec=symprec, workers=workers,
                                                   progress=lambda n: bar.advance(task, n))
    if as_json:
        print_json(report)
        return
    out = console()
    out.print(f"split {split.name}  id {split.id}  matched {report['matched']} of {report['rows']} rows "
              f"({report['matched_exact']} exact, {report['matched_canonical']} by canonical hash)")
    for problem in ("unmatched", "conflicts"):
        if report[problem]:
            out.print(f"{len(report[problem])} {problem} rows, e.g.:")
            for row in report[problem][:10]:
                out.print(f"  {row}")
