"""``xtalbase ingest PATH...`` and ``xtalbase quarantine list|show``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json, print_table, progress

quarantine_app = typer.Typer(help="Inspect records rejected by ingest, with their reason codes.", no_args_is_help=True)


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (recursed) to read.", show_default=False)],
    db: DbOpt = None,
    format: Annotated[Optional[str], typer.Option("--format", help="Force a reader: cif, poscar, pmg_json, extxyz, cdvae_csv, vasprun, outcar, mlip_json.")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Source database name (MP, COD, ICSD, perov5, ...); inferred when omitted.")] = None,
    licence: Annotated[Optional[str], typer.Option("--licence", help="Licence text stored with every source.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes for parsing and symmetry.")] = 1,
    symprec: Annotated[float, typer.Option("--symprec", min=1e-6, help="Symmetry tolerance in Å for space groups and canonical hashes (> 0).")] = 0.01,
    symmetry_engine: Annotated[str, typer.Option("--symmetry-engine", help="spglib (the reference) or moyo (moyopy: about twice the MP ingest rate; another group for 0.1% of MP and 3.6% of Perov-5 cells).")] = "spglib",
    allow_disorder: Annotated[bool, typer.Option("--allow-disorder", help="Store partially occupied sites instead of quarantining them.")] = False,
    all_steps: Annotated[bool, typer.Option("--all-steps", help="VASP: store every ionic step, not only the last.")] = False,
    require_converged: Annotated[bool, typer.Option("--require-converged", help="Quarantine unconverged DFT results (reason 'unconverged').")] = False,
    poscar_species: Annotated[Optional[str], typer.Option("--poscar-species", help="Element names for POSCARs that name none: 'Si,O' (atom-type order) or 'placeholder' (type i -> element Z=i, flagged).")] = None,
    xrd: Annotated[bool, typer.Option("--xrd", help="Afterwards compute XRD patterns of the new structures.")] = False,
    max_sites: Annotated[int, typer.Option("--max-sites", help="Quarantine cells with more sites (too_many_sites).")] = 1000,
    min_coord_decimals: Annotated[int, typer.Option("--min-coord-decimals", help="Decimals a non-special fractional coordinate needs (low_precision).")] = 3,
    min_special_decimals: Annotated[int, typer.Option("--min-special-decimals", help="Decimals a coordinate near a special value such as 1/3 needs unless written exactly (low_precision).")] = 4,
    min_cell_decimals: Annotated[int, typer.Option("--min-cell-decimals", help="Decimals a cell length needs (low_precision).")] = 2,
    overlap_fraction: Annotated[float, typer.Option("--overlap-fraction", help="overlapping_atoms below this fraction of the summed covalent radii.")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Read, validate, deduplicate and store structure and DFT files; print read/inserted/duplicates/quarantined."""
    handle = open_db(ctx, db)
    with progress() as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the report's notes are printed below, once
        task = bar.add_task("ingest", total=None)
        report = handle.ingest(
            paths, format=format, source=source, licence=licence, workers=workers, symprec=symprec,
            symmetry_engine=symmetry_engine,
            allow_disorder=allow_disorder, all_steps=all_steps, require_converged=require_converged,
            poscar_species=poscar_species, xrd=xrd,
            max_sites=max_sites, min_coord_decimals=min_coord_decimals, min_special_decimals=min_special_decimals,
            min_cell_decimals=min_cell_decimals,
            overlap_fraction=overlap_fraction, on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for note in report.notes:
        sys.stderr.write(f"note: {note}\n")
    summary = report.to_dict()
    if as_json:
        print_json(summary)
        return
    out = console()
    out.print(f"run {summary['run_id']}: read {summary['read']}, inserted {summary['inserted']}, "
              f"duplicates {summary['duplicates']}, quarantined {summary['quarantined']} in {summary['seconds']:.1f} s")
    if summary["quarantined_by_reason"]:
        print_table([{"reason": k, "records": v} for k, v in summary["quarantined_by_reason"].items()], ["reason", "records"],
                    title="quarantined by reason (xtalbase quarantine list --reason CODE)")


@quarantine_app.command("list")
def list_quarantine(
    ctx: typer.Context,
    db: DbOpt = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Only this reason code (e.g. low_precision).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N rows, newest first (a note on stderr says when more match).")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List quarantined records: id, reason, file, record and message."""
    from xtalbase.ingest.records import REASONS
    from xtalbase.platform.repositories.structures import quarantine_count, quarantine_rows

    if reason and reason not in REASONS:
        raise typer.BadParameter(f"{reason!r} is not a reason code; choose one of {', '.join(REASONS)}", param_hint="--reason")
    with open_db(ctx, db).session() as s:
        rows = [{"id": q["id"], "reason": q["reason"], "file": q["file_path"], "record": q["record_locator"], "run": q["run_id"],
                 "message": q["message"]} for q in quarantine_rows(s, reason or None, limit)]
        total = quarantine_count(s, reason or None) if len(rows) == limit else len(rows)
    if total > len(rows):
        sys.stderr.write(f"{len(rows)} of {total} quarantined records shown (newest first); --limit {total} shows all\n")
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["message"] = r["message"][-90:]
    print_table(rows, ["id", "reason", "file", "record", "message"])


@quarantine_app.command("show")
def show_quarantine(
    ctx: typer.Context,
    quarantine_id: Annotated[int, typer.Argument(metavar="ID", help="Quarantine row id (from `quarantine list`).")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one quarantined record in full, with its raw text when it was kept."""
    from xtalbase.platform.repositories.structures import quarantine_record

    with open_db(ctx, db).session() as s:
        row = quarantine_record(s, quarantine_id)
    if as_json:
        print_json(row)
        return
    out = console()
    for key, value in row.items():
        if key != "raw_text":
            out.print(f"{key}: {value}", markup=False, highlight=False)
    if row["raw_text"]:
        out.print("raw_text:")
        out.print(row["raw_text"], markup=False, highlight=False)
