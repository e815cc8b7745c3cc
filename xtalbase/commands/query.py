"""``xtalbase query FILTER`` (OPTIMADE filters) and ``xtalbase sql "SELECT ..."`` (read-only SQL)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from xtalbase.commands._common import DbOpt, open_db, print_json, print_table

TABLE_COLUMNS = ["id", "formula_reduced", "spacegroup_symbol", "spacegroup_number", "crystal_system", "nsites",
                 "volume", "density", "source_database", "source_external_id"]
TABLE_MAX_ROWS = 100


class QueryFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    cif = "cif"
    poscar = "poscar"
    extxyz = "extxyz"


class SqlFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def query(
    ctx: typer.Context,
    filter: Annotated[Optional[str], typer.Argument(help='OPTIMADE filter, e.g. \'elements HAS ALL "Fe","O" AND nsites < 20\' (omit for all).')] = None,
    format: Annotated[QueryFormat, typer.Option(
        "--format", "-f", help="Output: table, csv, json (one row per structure) or cif, poscar, extxyz (structures).")] = QueryFormat.table,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=0, help="At most N structures.")] = None,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip the first N matches (with --limit: one page).")] = 0,
    sort: Annotated[Optional[str], typer.Option("--sort", help="Sort by a field (e.g. nsites, _xtalbase_density); prefix - for descending.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write to this file (for poscar with several structures: a folder, one file each).")] = None,
    db: DbOpt = None,
) -> None:
    """Select structures with an OPTIMADE filter and print or export them."""
    q = open_db(ctx, db).query(filter, sort=sort, limit=limit, offset=offset)
    fmt = QueryFormat(format)
    if fmt in (QueryFormat.table, QueryFormat.csv, QueryFormat.json):
        frame = q.frame()
        if fmt is QueryFormat.table and out is None:
            rows = frame.head(TABLE_MAX_ROWS).to_dict("records")
            print_table(rows, TABLE_COLUMNS, title=f"{len(frame)} structure(s)")
            if len(frame) > TABLE_MAX_ROWS:
                sys.stderr.write(f"showing {TABLE_MAX_ROWS} of {len(frame)}; use --limit, --format csv/json or --out\n")
            return
        if fmt is QueryFormat.json:
            text = frame.to_json(orient="records", indent=2, date_format="iso")
        else:
            text = frame.to_csv(index=False)
        _emit(text, out)
        return
    atoms = q.atoms()
    if fmt is QueryFormat.poscar and out is not None and (out.is_dir() or len(atoms) > 1):
        _write_poscar_folder(atoms, out)
        return
    _emit(_structures_text(atoms, fmt.value), out)


def _structures_text(atoms: list[Any], fmt: str) -> str:
    import io

    from ase.io import write

    buf = io.StringIO()
    if fmt == "poscar":
        for a in atoms:
            buf.write(_poscar(a))
    elif fmt == "cif" and atoms:
        raw = io.BytesIO()  # ASE's CIF writer wants a binary file
        write(raw, atoms, format="cif")
        return raw.getvalue().decode()
    elif atoms:
        write(buf, atoms, format="extxyz")
    return buf.getvalue()


def _poscar(atoms: Any) -> str:
    """POSCAR text whose comment line names the structure id and formula."""
    import io

    from ase.io import write

    buf = io.StringIO()
    write(buf, atoms, format="vasp", direct=True)
    body = buf.getvalue().split("\n", 1)[1]
    return f"xtalbase id={atoms.info['structure_id']} {atoms.get_chemical_formula()}\n{body}"


def _write_poscar_folder(atoms: list[Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for a in atoms:
        (folder / f"{a.info['structure_id']}.vasp").write_text(_poscar(a))
    sys.stderr.write(f"wrote {len(atoms)} POSCAR file(s) to {folder}\n")


def _emit(text: str, out: Optional[Path]) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    sys.stderr.write(f"wrote {out}\n")


def sql(
    ctx: typer.Context,
    statement: Annotated[str, typer.Argument(help='One read-only statement, e.g. "SELECT formula_reduced, count(*) FROM v_structures GROUP BY 1".')],
    format: Annotated[SqlFormat, typer.Option("--format", "-f", help="Output: table, csv or json.")] = SqlFormat.table,
    max_rows: Annotated[int, typer.Option("--max-rows", min=0, help="Stop after N rows (a note says when more were there).")] = 100_000,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help="Stop the query after this many seconds.")] = 30.0,
    role: Annotated[str, typer.Option("--role", envvar="XTALBASE_SQL_ROLE",
                                      help="PostgreSQL reader role to run as (see `xtalbase db grant-readonly`).")] = "xtalbase_readonly",
    db: DbOpt = None,
) -> None:
    """Run one read-only SQL statement (SELECT/WITH/VALUES/EXPLAIN) within a time and row budget; anything that writes is refused."""
    from xtalbase.platform.sql import run_readonly

    result = run_readonly(open_db(ctx, db), statement, max_rows=max_rows, timeout=timeout, role=role)
    fmt = SqlFormat(format)
    if fmt is SqlFormat.json:
        print_json([{c: _plain(v) for c, v in zip(result.columns, r)} for r in result.rows])
    elif fmt is SqlFormat.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_plain(v) for v in r] for r in result.rows])
    else:
        print_table([{c: _plain(v, short=True) for c, v in zip(result.columns, r)} for r in result.rows], result.columns,
                    title=f"{len(result.rows)} row(s)")
    if result.truncated:
        sys.stderr.write(f"truncated: showing the first {len(result.rows)} rows; more matched (raise --max-rows "
                         "or add LIMIT/WHERE)\n")


def _plain(value: Any, short: bool = False) -> Any:
    """Binary values as hex (or a size in tables); everything else unchanged."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>" if short else bytes(value).hex()
    return value
