"""Exports of a split in the formats models read, each with a ``manifest.json``.

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
from xtalbase.platform.repositories import chunks
from xtalbase.platform.repositories.structures import calculations_of
from xtalbase.schema import Calculation, Source, SourceProperty, Structure

if TYPE_CHECKING:
    from xtalbase.ml.splits import SplitHandle

#: Property column order of the CDVAE/DiffCSP benchmark CSVs (perov_5, carbon_24, mp_20, mpts_52);
#: other properties follow alphabetically.
CDVAE_PROPERTY_ORDER = (
    "formula", "heat_all", "heat_ref", "dir_gap", "ind_gap",  # perov_5
    "energy_per_atom",  # carbon_24
    "formation_energy_per_atom", "band_gap", "pretty_formula", "e_above_hull", "elements", "spacegroup.number",  # mp_20
)


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
    for chunk in chunks(ids):
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
            best = calculations_of(s, chunk) if calculations else {}
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
    """``peaks11`` per structure for the default XRD recipe; ``None`` when no structure has a pattern for it."""
    from xtalbase.ml.features import peaks11_for_structures

    found = peaks11_for_structures(handle.db, ids)
    if not found:
        return None
    return [found.get(i) for i in ids]


def member_atoms(m: Member) -> Any:
    """ASE ``Atoms`` of a member with identity info and, when present, a single-point calculator."""
    from xtalbase.platform.convert import attach_calculation, to_ase

    atoms = to_ase(m.row)
    atoms.info.update({"structure_id": m.row.id, "canonical_hash": m.row.canonical_hash, "fold": m.fold,
                       "formula_reduced": m.row.formula_reduced})
    if m.external_id:
        atoms.info["material_id"] = m.external_id
    calc = m.calculation
    if calc is not None:
        attach_calculation(atoms, calc.energy, calc.forces, calc.stress, calc.stress_unit, calculation_id=calc.id)
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
        run.link_input("split", handle.pk, label=handle.name, sha256=handle.id)
        files = FORMATS[format](handle, directory, progress or (lambda n: None))
        meta = {"format": format, "split": {"name": handle.name, "id": handle.id, "recipe": handle.recipe,
                                            "counts": handle.counts}}
        manifest = write_manifest(directory, meta, files)
        for rel, entry in manifest["files"].items():
            run.link_output("file", path=str((directory / rel).resolve()), sha256=entry["sha256"])
        run.summary.update({"files": len(files), "records": sum(v or 0 for v in files.values())})
    return manifest


def verify_export(directory: str | Path) -> dict[str, Any]:
    """Re-hash an export against its manifest; raises :class:`ExportError` listing every difference."""
    report = verify_manifest(directory)
    if not report["ok"]:
        raise ExportError(f"{directory}: export does not match {MANIFEST}: " + "; ".join(report["problems"]))
    return report
