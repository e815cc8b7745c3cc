"""Exports of a split in the formats models read, each with a ``manifest.json``; CDVAE CSV import.

=============  ====================================================================
format         files
=============  ====================================================================
``cdvae-csv``  ``<fold>.csv``: unnamed index (structure id), ``material_id``, ``cif``
               (P1 CIF by pymatgen) and the source property columns, in the layout of
               the CDVAE/DiffCSP benchmark CSVs (Perov-5: ``formula, heat_all,
               heat_ref, dir_gap, ind_gap``), so their loaders read them unchanged.
``parquet``    ``structures.parquet``: one row per member with ``structure_id``,
               ``canonical_hash``, ``fold``, composition, symmetry, lattice, arrays,
               calculation energy, ``prop_<name>`` columns and XRD ``peaks11`` when stored.
``extxyz``     ``<fold>.extxyz``: one frame per member; energy (eV), forces (eV/Å)
               and stress (eV/Å³, ASE sign) when the structure has a calculation.
``poscar``     ``<fold>/<structure_id>.vasp``: one VASP POSCAR per member.
=============  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import select

from xtalbase.ml.manifest import MANIFEST, ExportError, verify_manifest, write_manifest
from xtalbase.schema import Calculation, Source, SourceProperty, Structure

if TYPE_CHECKING:
    from xtalbase.ingest.matching import Matcher
    from xtalbase.ml.splits import SplitHandle, SplitStore

#: Property column order of the CDVAE/DiffCSP benchmark CSVs (perov_5, carbon_24, mp_20, mpts_52);
#: other properties follow alphabetically.
CDVAE_PROPERTY_ORDER = (
    "formula", "heat_all", "heat_ref", "dir_gap", "ind_gap",  # perov_5
    "energy_per_atom",  # carbon_24
    "formation_energy_per_atom", "band_gap", "pretty_formula", "e_above_hull", "elements", "spacegroup.number",  # mp_20
)
_CHUNK = 2_000
_IMPORT_CHUNK = 250  # CSV rows per worker task of an import
#: stress units converted to ASE's eV/Å³ (VASP's kBar has the opposite sign to ASE's convention)
_STRESS_TO_ASE = {"ev/å^3": 1.0, "ev/a^3": 1.0, "ev/å³": 1.0, "ev/ang^3": 1.0, "kbar": -0.1, "kb": -0.1}


@dataclass
class Member:
    """One exported structure: its row, fold, first external id, properties and chosen calculation."""

    row: Structure
    fold: str
    external_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    calculation: Calculation | None = None


def members(handle: "SplitHandle", fold: str | None = None, *, calculations: bool = False) -> Iterator[Member]:
    """Members of ``fold`` (all when ``None``) in structure-id order, loaded in chunks with sources and properties."""
    fold_of = handle.members() if fold is None else None
    ids = handle.ids(fold)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        with handle.db.session() as s:
            rows = {r.id: r for r in s.scalars(select(Structure).where(Structure.id.in_(chunk)))}
            external: dict[int, str] = {}
            for sid, ext in s.execute(select(Source.structure_id, Source.external_id)
                                      .where(Source.structure_id.in_(chunk)).order_by(Source.id)):
                if ext and sid not in external:
                    external[sid] = ext
            props: dict[int, dict[str, Any]] = {}
            stmt = (select(Source.structure_id, SourceProperty.name, SourceProperty.value_float, SourceProperty.value_text)
                    .join(SourceProperty, SourceProperty.source_id == Source.id)
                    .where(Source.structure_id.in_(chunk)).order_by(Source.id))
            for sid, name, vf, vt in s.execute(stmt):
                props.setdefault(sid, {}).setdefault(name, vf if vf is not None else vt)
            best: dict[int, Calculation] = {}
            if calculations:
                for calc in s.scalars(select(Calculation).where(Calculation.structure_id.in_(chunk)).order_by(Calculation.id)):
                    current = best.get(calc.structure_id)
                    # prefer the newest calculation that is not known to be unconverged
                    if current is None or calc.converged is not False or current.converged is False:
                        best[calc.structure_id] = calc
        for sid in chunk:
            yield Member(rows[sid], fold_of[sid] if fold_of is not None else fold, external.get(sid),
                         props.get(sid, {}), best.get(sid))


def property_columns(names: set[str]) -> list[str]:
    """Property columns in benchmark order, then the rest alphabetically."""
    known = [n for n in CDVAE_PROPERTY_ORDER if n in names]
    return known + sorted(names - set(known))


def _write_cdvae_csv(handle: "SplitHandle", directory: Path, progress: Callable[[int], None]) -> dict[str, int]:
    import pandas as pd
    from pymatgen.io.cif import CifWriter

    from xtalbase.platform.convert import to_pymatgen

    written = {}
    for fold in handle.folds:
        records, index = [], []
        for m in members(handle, fold):
            index.append(m.row.id)
            records.append({"material_id": m.external_id or f"xtalbase-{m.row.id}",
                            "cif": str(CifWriter(to_pymatgen(m.row))), **m.properties})
            progress(1)
        names = {k for r in records for k in r} - {"material_id", "cif"}
        frame = pd.DataFrame.from_records(records, index=index, columns=["material_id", "cif", *property_columns(names)])
        frame.to_csv(directory / f"{fold}.csv")
        written[f"{fold}.csv"] = len(frame)
    return written


def _write_parquet(handle: "SplitHandle", directory: Path, progress: Callable[[int], None]) -> dict[str, int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from xtalbase.ml.split_strategies import prototype_key
    from xtalbase.platform.convert import row_arrays

    scalar = ("canonical_hash", "exact_hash", "formula_reduced", "formula_anonymous", "chemical_system", "nelements",
              "nsites", "spacegroup_number", "spacegroup_symbol", "crystal_system", "symprec", "a", "b", "c",
              "alpha", "beta", "gamma", "volume", "density")
    records = []
    for m in members(handle, calculations=True):
        r = m.row
        arrays = row_arrays(r)
        rec = {"structure_id": r.id, "fold": m.fold, "material_id": m.external_id, **{c: getattr(r, c) for c in scalar}}
        rec["prototype"] = prototype_key(r.formula_anonymous, r.spacegroup_number)
        rec["elements"] = sorted(r.chemical_system.split("-"))
        rec["cell"] = arrays.cell.ravel().tolist()
        rec["numbers"] = arrays.numbers.tolist()
        rec["frac_coords"] = arrays.frac_coords.ravel().tolist()
        calc = m.calculation
        rec["energy"] = calc.energy if calc else None
        rec["energy_per_atom"] = calc.energy_per_atom if calc else None
        rec.update({f"prop_{k}": v for k, v in m.properties.items()})
        records.append(rec)
        progress(1)
    props = {k for rec in records for k in rec if k.startswith("prop_")}
    for rec in records:
        for k in props:
            rec.setdefault(k, None)
    # a property column mixing numbers and text is written as text
    for k in props:
        kinds = {type(rec[k]) for rec in records if rec[k] is not None}
        if str in kinds and len(kinds) > 1:
            for rec in records:
                rec[k] = None if rec[k] is None else str(rec[k])
    columns = ["structure_id", "canonical_hash", "fold"] + [c for c in (records[0] if records else {})
                                                            if c not in ("structure_id", "canonical_hash", "fold")]
    columns = columns[:3] + [c for c in columns[3:] if not c.startswith("prop_")] + sorted(props)
    table = pa.Table.from_pylist([{c: rec.get(c) for c in columns} for rec in records])
    features = _xrd_features(handle, [rec["structure_id"] for rec in records])
    if features is not None:
        table = table.append_column("peaks11", pa.array([None if f is None else np.asarray(f, dtype=np.float64).tolist()
                                                         for f in features], type=pa.list_(pa.float64())))
    pq.write_table(table, directory / "structures.parquet")
    return {"structures.parquet": table.num_rows}


def _xrd_features(handle: "SplitHandle", ids: list[int]) -> list | None:
    """``peaks11`` per structure from :mod:`xtalbase.ml.features` when that module and stored patterns exist."""
    try:
        from xtalbase.ml import features  # issue 4; absent in builds without XRD features
    except ImportError:
        return None
    loader = getattr(features, "peaks11_for_structures", None)
    if loader is None:
        return None
    found = loader(handle.db, ids)
    if not found:
        return None
    return [found.get(i) for i in ids]


def member_atoms(m: Member) -> Any:
    """ASE ``Atoms`` of a member with identity info and, when present, a single-point calculator."""
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    from xtalbase.platform.convert import to_ase
    from xtalbase.schema.arrays import unpack

    atoms = to_ase(m.row)
    atoms.info.update({"structure_id": m.row.id, "canonical_hash": m.row.canonical_hash, "fold": m.fold,
                       "formula_reduced": m.row.formula_reduced})
    if m.external_id:
        atoms.info["material_id"] = m.external_id
    calc = m.calculation
    if calc is None:
        return atoms
    results: dict[str, Any] = {}
    if calc.energy is not None:
        results["energy"] = calc.energy
    if calc.forces is not None:
        results["forces"] = unpack(calc.forces, shape=(len(atoms), 3))
    if calc.stress is not None:
        stress = unpack(calc.stress, shape=(3, 3))
        factor = _STRESS_TO_ASE.get((calc.stress_unit or "").strip().lower())
        if factor is None:  # unknown unit: keep the numbers as given rather than guess a conversion
            atoms.info["stress_as_given"] = " ".join(repr(float(x)) for x in stress.ravel())
            atoms.info["stress_unit"] = calc.stress_unit or "unknown"
        else:
            from ase.units import GPa

            results["stress"] = stress * (factor * GPa if factor != 1.0 else 1.0)
    atoms.info["calculation_id"] = calc.id
    if results:
        atoms.calc = SinglePointCalculator(atoms, **{k: np.asarray(v) if k != "energy" else v for k, v in results.items()})
    return atoms


def _write_extxyz(handle: "SplitHandle", directory: Path, progress: Callable[[int], None]) -> dict[str, int]:
    from ase.io import write

    written = {}
    for fold in handle.folds:
        frames = []
        for m in members(handle, fold, calculations=True):
            frames.append(member_atoms(m))
            progress(1)
        write(directory / f"{fold}.extxyz", frames, format="extxyz")
        written[f"{fold}.extxyz"] = len(frames)
    return written


def _write_poscar(handle: "SplitHandle", directory: Path, progress: Callable[[int], None]) -> dict[str, int]:
    from ase.io import write

    from xtalbase.platform.convert import to_ase

    written = {}
    for fold in handle.folds:
        (directory / fold).mkdir()
        for m in members(handle, fold):
            rel = f"{fold}/{m.row.id}.vasp"
            write(directory / rel, to_ase(m.row), format="vasp", direct=True, sort=False)
            written[rel] = 1
            progress(1)
    return written


#: format name -> writer(handle, directory, progress) returning {relative file: records}
FORMATS: dict[str, Callable[["SplitHandle", Path, Callable[[int], None]], dict[str, int]]] = {
    "cdvae-csv": _write_cdvae_csv,
    "parquet": _write_parquet,
    "extxyz": _write_extxyz,
    "poscar": _write_poscar,
}


def export_split(handle: "SplitHandle", directory: str | Path, format: str = "cdvae-csv",
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write ``handle`` to a new or empty ``directory`` in ``format`` plus ``manifest.json``; returns the manifest.

    The export is recorded as an ``export`` run linking the split and every file's sha256.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ExportError(f"{directory}: exists and is not an empty folder; exports never overwrite files")
    directory.mkdir(parents=True, exist_ok=True)
    with handle.db.run("export", {"split": handle.name, "split_id": handle.id, "format": format,
                                  "directory": str(directory.resolve())}) as run:
        files = FORMATS[format](handle, directory, progress or (lambda n: None))
        meta = {"format": format, "split": {"name": handle.name, "id": handle.id, "recipe": handle.recipe,
                                            "counts": handle.counts}}
        manifest = write_manifest(directory, meta, files)
        run.link("input", "split", handle.name, sha256=handle.id)
        for rel, entry in manifest["files"].items():
            run.link("output", "file", str((directory / rel).resolve())[-255:], sha256=entry["sha256"])
        run.summary.update({"files": len(files), "records": sum(v or 0 for v in files.values())})
    return manifest


def verify_export(directory: str | Path) -> dict[str, Any]:
    """Re-hash an export against its manifest; raises :class:`ExportError` listing every difference."""
    report = verify_manifest(directory)
    if not report["ok"]:
        raise ExportError(f"{directory}: export does not match {MANIFEST}: " + "; ".join(report["problems"]))
    return report


CDVAE_FOLDS = ("train", "val", "test")


def import_cdvae(store: "SplitStore", name: str, directory: str | Path, *, symprec: float | None = None,
                 workers: int = 1, progress: Callable[[int], None] | None = None) -> tuple["SplitHandle", dict[str, Any]]:
    """Rebuild a published split from ``train.csv``/``val.csv``/``test.csv`` (CDVAE layout) in ``directory``.

    Each row's CIF is read and hashed by the ingest code (:mod:`xtalbase.ingest.prepare`, at ``symprec``;
    default: the tolerance most stored structures were hashed with) and matched to a stored structure: first by exact hash, then among the
    structures sharing its canonical hash, confirmed by pymatgen ``StructureMatcher``
    (:mod:`xtalbase.ingest.matching`). Rows that match nothing, fail to parse, or name a structure already
    placed in another fold are reported, not guessed. ``workers`` processes parse and hash the rows
    (:func:`xtalbase.platform.executors.get_executor`). Returns the stored split and the report.
    """
    from xtalbase.ingest.identity import DEFAULT_SYMPREC
    from xtalbase.ingest.matching import Matcher
    from xtalbase.ingest.prepare import PrepareOptions, WorkUnit, prepare_unit
    from xtalbase.ingest.readers.cdvae_csv import ID_COLUMNS
    from xtalbase.ingest.readers.cdvae_csv import rows as csv_rows
    from xtalbase.ingest.validate import ValidationOptions
    from xtalbase.ml.manifest import sha256_file
    from xtalbase.platform.executors import get_executor

    directory = Path(directory)
    files = [(fold, directory / f"{fold}.csv") for fold in CDVAE_FOLDS if (directory / f"{fold}.csv").is_file()]
    if not files:
        raise ExportError(f"{directory}: no train.csv, val.csv or test.csv to import")
    # matching only: records are read as ingest reads them but not judged for precision or size
    options = PrepareOptions(symprec=symprec or _stored_symprec(store) or DEFAULT_SYMPREC,
                             validation=ValidationOptions(**_lenient_validation(ValidationOptions)))
    by_exact: dict[str, int] = {}
    by_canonical: dict[str, list[int]] = {}
    with store.db.session() as s:
        for sid, exact, canonical in s.execute(select(Structure.id, Structure.exact_hash, Structure.canonical_hash)):
            by_exact[exact] = sid
            by_canonical.setdefault(canonical, []).append(sid)
    exact_of = {sid: exact for exact, sid in by_exact.items()}
    matcher = Matcher()
    fold_of: dict[int, str] = {}
    report: dict[str, Any] = {"directory": str(directory), "rows": 0, "matched": 0, "matched_exact": 0,
                              "matched_canonical": 0, "by_fold": {}, "unmatched": [], "conflicts": [], "duplicates": 0}
    for fold, path in files:
        table = csv_rows(path)
        with get_executor(workers) as pool:
            chunks = [table[i:i + _IMPORT_CHUNK] for i in range(0, len(table), _IMPORT_CHUNK)]
            futures = [pool.submit(prepare_unit, WorkUnit(str(path), "cdvae_csv", rows=chunk), options) for chunk in chunks]
            items = [item for future in futures for item in future.result()]
        ids_of = {f"row={i}": next((r[c].strip() for c in ID_COLUMNS if (r.get(c) or "").strip()), None) for i, r in table}
        report["by_fold"][fold] = {"rows": len(items), "matched": 0}
        for item in items:
            report["rows"] += 1
            if progress:
                progress(1)
            where = {"file": path.name, "row": item.get("locator"), "material_id": ids_of.get(item.get("locator"))}
            if item["kind"] != "record":
                report["unmatched"].append({**where, "reason": f"unreadable: {item.get('reason')}: {item.get('message', '')[:200]}"})
                continue
            row = item["structure"]
            sid = by_exact.get(row["exact_hash"])
            how = "exact"
            if sid is None:
                how = "canonical"
                candidates = by_canonical.get(row["canonical_hash"], [])
                sid = _confirm(store, row, candidates, matcher) if candidates else None
            if sid is None:
                reason = "no stored structure with this canonical hash" if not by_canonical.get(row["canonical_hash"]) \
                    else "canonical hash found but StructureMatcher rejects every candidate"
                report["unmatched"].append({**where, "reason": reason})
                continue
            if sid in fold_of:
                if fold_of[sid] != fold:
                    report["conflicts"].append({**where, "structure_id": sid, "kept_in": fold_of[sid]})
                else:
                    report["duplicates"] += 1
                continue
            fold_of[sid] = fold
            report["matched"] += 1
            report[f"matched_{how}"] += 1
            report["by_fold"][fold]["matched"] += 1
    if not fold_of:
        raise ExportError(f"{directory}: none of the {report['rows']} rows matches a stored structure "
                          "(ingest the structures first)")
    recipe = {"strategy": "imported", "mode": "imported", "seed": 0, "algorithm": "cdvae-csv-import/v1",
              "source": {"format": "cdvae-csv", "files": {p.name: sha256_file(p) for _, p in files},
                         "symprec": options.symprec}}
    ids = sorted(fold_of)
    handle = store.store_imported(name, recipe, ids, [fold_of[i] for i in ids], [exact_of[i] for i in ids],
                                  [f for f, _ in files])
    report["split"] = handle.name
    report["id"] = handle.id
    return handle, report


def _stored_symprec(store: "SplitStore") -> float | None:
    """The spglib tolerance (Å) most stored structures were hashed with (canonical hashes depend on it)."""
    from sqlalchemy import func

    stmt = (select(Structure.symprec).where(Structure.symprec.is_not(None)).group_by(Structure.symprec)
            .order_by(func.count().desc(), Structure.symprec).limit(1))
    with store.db.session() as s:
        return s.scalar(stmt)


def _lenient_validation(options_cls: type) -> dict[str, Any]:
    """Keyword overrides that switch off ingest's precision and size gates, where the options have them."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(options_cls)}
    wanted = {"min_coord_decimals": 0, "min_special_decimals": 0, "min_cell_decimals": 0, "max_sites": 10**9,
              "allow_disorder": True}
    return {k: v for k, v in wanted.items() if k in names}


def _confirm(store: "SplitStore", row: dict[str, Any], candidates: list[int], matcher: "Matcher") -> int | None:
    """The candidate structure id that StructureMatcher confirms as the same structure as ``row``."""
    with store.db.session() as s:
        stored = list(s.scalars(select(Structure).where(Structure.id.in_(candidates)).order_by(Structure.id)))
    return matcher.first_match(row["exact_hash"], row, ((r.id, r) for r in stored))  # decoded as compared
