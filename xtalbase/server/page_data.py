"""What the curator pages show, read from the database into plain dicts (the templates only format them).

Reads go through the repositories and the library (``db.query``, :func:`~xtalbase.xrd.plot.load_pattern`,
:func:`~xtalbase.ml.provenance.prediction_chain`); nothing here writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from xtalbase.errors import NotFound, XtalbaseError

if TYPE_CHECKING:
    from xtalbase.api import Database

#: Page sizes offered by the search page; a request for another size gets the nearest offered one.
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25

#: Filters the search page offers as examples (clicking one fills the box).
EXAMPLE_FILTERS = (
    'elements HAS ALL "Sr","Ti"',
    'nelements >= 4 AND nsites <= 5',
    '_xtalbase_crystal_system = "cubic"',
    'elements HAS "Si" AND NOT elements HAS "O"',
    '_xtalbase_density > 8',
    '_xtalbase_xrd_peak_2theta >= 28 AND _xtalbase_xrd_peak_2theta <= 29 AND _xtalbase_xrd_peak_intensity > 50',
)

#: Fields the search results can be sorted by (``-`` in front: descending).
SORT_FIELDS = ("id", "nsites", "nelements", "_xtalbase_density", "_xtalbase_volume", "_xtalbase_space_group_number")

#: Most quarantine rows listed on one page (newest first).
QUARANTINE_LIST_LIMIT = 500

#: Most predictions shown (with their provenance) on a structure page.
PREDICTIONS_SHOWN = 10

_POSITION = re.compile(r"at position (\d+)")


@dataclass
class SearchResult:
    """One page of search results, or the error that stopped the search (``error``, ``position`` 1-based)."""

    filter: str
    sort: str
    page: int
    size: int
    total: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: Optional[str] = None
    position: Optional[int] = None

    @property
    def pages(self) -> int:
        """How many pages the whole result fills (at least 1)."""
        return max(1, -(-self.total // self.size))

    @property
    def caret(self) -> tuple[str, str]:
        """The line of the filter that holds the error's position, and what goes before the caret under it: a space
        per character, a tab per tab (a tab is wider than a space in ``<pre>``), so the caret lines up."""
        at = (self.position or 1) - 1
        start = self.filter.rfind("\n", 0, at) + 1
        end = self.filter.find("\n", at)
        line = self.filter[start:end if end >= 0 else len(self.filter)].rstrip("\r")
        return line, "".join(c if c == "\t" else " " for c in self.filter[start:at])


def page_size(value: Optional[int]) -> int:
    """The offered page size nearest ``value`` (the default for ``None``)."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    return min(PAGE_SIZES, key=lambda s: (abs(s - value), s))


def search(db: "Database", filter: str, sort: str, page: int, size: int) -> SearchResult:
    """Page ``page`` (1-based) of the structures matching ``filter``; a bad filter or sort gives the error and its position."""
    from xtalbase.platform.optimade_filter import FilterError

    result = SearchResult(filter=filter, sort=sort, page=max(1, page), size=size)
    try:
        # the filter as typed (not stripped): the error's position counts the characters the curator sees
        query = db.query(filter if filter.strip() else None, sort=sort or None)
        result.total = query.count()
        result.page = min(result.page, result.pages)
        frame = query.page((result.page - 1) * size, size).frame()
    except FilterError as exc:
        result.error = str(exc)
        found = _POSITION.search(result.error)
        result.position = int(found.group(1)) if found else None
        return result
    except XtalbaseError as exc:
        result.error = str(exc)
        return result
    result.rows = [_row(r) for r in frame.to_dict("records")]
    return result


def _row(r: dict[str, Any]) -> dict[str, Any]:
    r = {k: _missing(v) for k, v in r.items()}
    source = r["source_database"] or ""
    if r["source_external_id"]:
        source += f":{r['source_external_id']}"
    return {"id": int(r["id"]), "formula": r["formula_reduced"], "spacegroup_symbol": r["spacegroup_symbol"],
            "spacegroup_number": _int(r["spacegroup_number"]), "crystal_system": r["crystal_system"], "nsites": int(r["nsites"]),
            "density": r["density"], "source": source, "nsources": _int(r["nsources"])}


def _missing(value: Any) -> Any:
    """``None`` for a missing value: pandas gives NaN, which is truthy, for a missing one in a text column too
    (its string dtype), so ``value or "–"`` would print "nan" and ``source + ...`` would fail."""
    return None if isinstance(value, float) and value != value else value


def _int(value: Any) -> Optional[int]:
    return None if value is None or value != value else int(value)  # NaN from pandas for a missing value


# --------------------------------------------------------------------------- structure page


def structure_page(db: "Database", structure_id: int) -> dict[str, Any]:
    """Everything the structure page shows; :class:`NotFound` for an unknown id."""
    from xtalbase.platform.repositories.calculations import structures_with_calculations
    from xtalbase.platform.repositories.models import predictions_of_structure
    from xtalbase.platform.repositories.notes import notes_of_structure
    from xtalbase.platform.repositories.structures import sources_of
    from xtalbase.schema import Structure

    with db.session() as s:
        st = s.get(Structure, structure_id)
        if st is None:
            raise NotFound(f"no structure with id {structure_id}")
        out = {"structure": _structure(st), "sites": _sites(st), "lattice": _lattice(st),
               "sources": [_source(src) for src in sources_of(s, structure_id)],
               "calculations": [_calculation(c, st.nsites)
                                for c in structures_with_calculations(s, [structure_id]).calculations.get(structure_id, [])],
               "notes": [{"id": n.id, "created_at": n.created_at, "text": n.text} for n in notes_of_structure(s, structure_id)],
               "predictions": _predictions(s, predictions_of_structure(s, structure_id, PREDICTIONS_SHOWN))}
    out["pattern"] = _pattern(db, structure_id)
    return out


def _structure(st: Any) -> dict[str, Any]:
    return {"id": st.id, "formula": st.formula_reduced, "formula_anonymous": st.formula_anonymous,
            "chemical_system": st.chemical_system, "nsites": st.nsites, "nelements": st.nelements,
            "spacegroup_number": st.spacegroup_number, "spacegroup_symbol": st.spacegroup_symbol,
            "crystal_system": st.crystal_system, "symprec": st.symprec, "volume": st.volume, "density": st.density,
            "exact_hash": st.exact_hash, "canonical_hash": st.canonical_hash, "created_at": st.created_at, "run_id": st.run_id}


def _lattice(st: Any) -> dict[str, Any]:
    from xtalbase.platform.convert import row_arrays

    cell = row_arrays(st).cell
    return {"a": st.a, "b": st.b, "c": st.c, "alpha": st.alpha, "beta": st.beta, "gamma": st.gamma,
            "vectors": [[float(v) for v in row] for row in cell]}


def _sites(st: Any) -> list[dict[str, Any]]:
    from ase.data import chemical_symbols

    from xtalbase.platform.convert import row_arrays

    cell, numbers, frac = row_arrays(st)
    cart = frac @ cell
    occupancies = st.site_occupancies or [None] * len(numbers)
    return [{"index": i, "species": (", ".join(f"{el}:{occ:g}" for el, occ in dict(occ).items()) if occ
                                     else chemical_symbols[int(z)]),
             "frac": [float(v) for v in f], "cart": [float(v) for v in c]}
            for i, (z, f, c, occ) in enumerate(zip(numbers, frac, cart, occupancies))]


def _source(src: Any) -> dict[str, Any]:
    return {"id": src.id, "database": src.database, "external_id": src.external_id, "file_path": src.file_path,
            "file_hash": src.file_hash, "record": src.record_locator, "format": src.format, "licence": src.licence,
            "run_id": src.run_id, "warnings": src.warnings or [],
            "properties": [{"name": p.name, "value": p.value_float if p.value_float is not None else p.value_text}
                           for p in sorted(src.properties, key=lambda p: p.name)]}


def _calculation(c: Any, nsites: int) -> dict[str, Any]:
    from xtalbase.schema.arrays import unpack

    forces = unpack(c.forces, shape=(-1, 3)) if c.forces is not None else None
    norms = np.linalg.norm(forces, axis=1) if forces is not None and len(forces) else None
    return {"id": c.id, "energy": c.energy, "energy_unit": c.energy_unit,
            "energy_per_atom": c.energy / nsites if c.energy is not None and nsites else None,
            "forces_max": float(norms.max()) if norms is not None else None,
            "forces_rms": float(np.sqrt((forces ** 2).sum(axis=1).mean())) if norms is not None else None,
            "forces_unit": c.forces_unit, "has_stress": c.stress is not None, "converged": c.converged,
            "ionic_step": c.ionic_step, "source_file": c.source_file}


#: Geometry of the pattern plot (SVG user units).
PLOT = {"width": 760, "height": 280, "left": 50, "right": 15, "top": 15, "bottom": 40}


def _pattern(db: "Database", structure_id: int) -> Optional[dict[str, Any]]:
    """The stored pattern of the default recipe as an SVG stick plot's coordinates, and its strongest peaks."""
    from xtalbase.xrd.plot import load_pattern

    try:
        info = load_pattern(db, structure_id)
    except NotFound:
        return None
    lo, hi = (float(v) for v in info["two_theta_range"])
    tt, inten, d = info["two_theta"], info["intensity"], info["d_spacing"]
    top = float(inten.max()) if len(inten) and inten.max() > 0 else 1.0
    w = PLOT["width"] - PLOT["left"] - PLOT["right"]
    h = PLOT["height"] - PLOT["top"] - PLOT["bottom"]
    base = PLOT["top"] + h

    def x(v: float) -> float:
        return round(PLOT["left"] + (v - lo) / (hi - lo) * w, 2)

    sticks = [{"x": x(t), "y": round(base - i / top * h, 2), "two_theta": float(t), "intensity": float(i)} for t, i in zip(tt, inten)]
    step = 10 if hi - lo > 40 else 5
    ticks = [{"x": x(v), "label": f"{v:g}"} for v in np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)]
    yticks = [{"y": round(base - f * h, 2), "label": f"{f * 100:g}"} for f in (0, 0.25, 0.5, 0.75, 1.0)]
    families = info["hkl_families"] or [None] * len(tt)
    strongest = sorted(range(len(tt)), key=lambda k: -inten[k])[:10]
    peaks = [{"two_theta": float(tt[k]), "d": float(d[k]) if d is not None else None, "intensity": float(inten[k]),
              "hkl": _hkl(families[k])} for k in sorted(strongest, key=lambda k: tt[k])]
    return {"recipe_id": info["recipe_id"], "recipe_name": info["recipe_name"], "wavelength": info["wavelength"],
            "range": (lo, hi), "npeaks": len(tt), "sticks": sticks, "ticks": ticks, "yticks": yticks, "base": base,
            "peaks": peaks, "plot": PLOT}


def _hkl(family: Any) -> str:
    """``(h k l)`` of each ``[h, k, l, multiplicity]`` of a peak's families (empty when none were stored)."""
    return ", ".join("(" + " ".join(str(i) for i in f[:3]) + ")" for f in family or [])


def _predictions(session: Any, predictions: list[Any]) -> list[dict[str, Any]]:
    """Each prediction with the steps of its provenance chain. A model's chain (its training set re-hashed, its
    ingest runs and source files) is read once per page: predictions of one model share it."""
    from xtalbase.ml.provenance import prediction_chain
    from xtalbase.platform.repositories.runs import get_run, run_dict

    model_steps: dict[int, list[dict[str, str]]] = {}
    out = []
    for pred in predictions:
        if pred.model_id in model_steps:
            p = {"id": pred.id, "target": pred.target, "label": pred.label, "value": pred.value, "created_at": pred.created_at}
            run = run_dict(get_run(session, pred.run_id)) if pred.run_id is not None else None
        else:
            chain = prediction_chain(session, pred.id)
            p, run = chain["prediction"], chain.get("predict_run")
            model_steps[pred.model_id] = _model_steps(chain["model_chain"])
        steps = ([{"what": "predict run", "text": _run_text(run)}] if run else []) + model_steps[pred.model_id]
        out.append({"id": p["id"], "target": p["target"], "label": p["label"], "value": p["value"],
                    "created_at": p["created_at"], "model_id": pred.model_id, "steps": steps})
    return out


def _model_steps(mc: dict[str, Any]) -> list[dict[str, str]]:
    """The steps of a model's chain: model → training run → XRD recipe → split/dataset → training data → sources."""
    m = mc["model"]
    steps: list[dict[str, str]] = []
    steps.append({"what": "model", "text": f"{m['id']}{' ' + m['name'] if m['name'] else ''}: {m['algorithm']} {m['task']} of "
                  f"{m['target']}, seed {m['seed']}, artifact {m['artifact_format']} sha256 {(m['artifact_sha256'] or '')[:16]}, "
                  f"code {m['code_version']}"})
    if mc.get("train_run"):
        steps.append({"what": "training run", "text": _run_text(mc["train_run"])})
    if mc.get("xrd_recipe"):
        r = mc["xrd_recipe"]
        steps.append({"what": "XRD recipe", "text": f"{r['id']} {r['name'] or ''}: λ {r['wavelength']} Å, hash {r['hash'][:16]}"})
    if mc.get("split"):
        sp = mc["split"]
        steps.append({"what": "split", "text": f"{sp['name']} (id {sp['id']}): {sp['strategy']}, seed {sp['seed']}, fold "
                      f"{m['fold'] or 'all'}, hash {sp['hash'][:16]}, counts {_pairs(sp['counts'])}"})
    if mc.get("dataset"):
        ds = mc["dataset"]
        steps.append({"what": "dataset", "text": f"{ds['name']} (id {ds['id']}), {ds['n_members']} members, hash {ds['hash'][:16]}"})
    ts = mc.get("training_structures")
    if ts:
        check = {True: "matches the hash recorded at training", False: "DIFFERS from the hash recorded at training",
                 None: "recorded over structures with calculations"}[ts["matches_recorded"]]
        steps.append({"what": "training data", "text": f"{ts['count']} structures, set hash {ts['set_hash'][:16]} ({check})"})
        for run in mc.get("ingest_runs", []):
            steps.append({"what": "ingest run", "text": _run_text(run)})
        sf = mc.get("source_files") or {}
        if sf:
            steps.append({"what": "source files", "text": f"{sf['n_files']} files, {sf['n_sources']} source records "
                          f"({_pairs(sf['databases'])}), files sha256 {sf['files_sha256'][:16]}"})
    return steps


def _pairs(values: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) if isinstance(values, dict) else str(values)


def _run_text(run: dict[str, Any]) -> str:
    return (f"{run['kind']} run {run['id']} ({run['status']}), {run['started_at']:%Y-%m-%d %H:%M:%S}, xtalbase "
            f"{run['package_version']}, git {(run['git_revision'] or 'unknown')[:12]}, on {run['host']}")


# --------------------------------------------------------------------------- quarantine


def quarantine_page(db: "Database", reason: Optional[str]) -> dict[str, Any]:
    """Counts by reason and by run, and the newest quarantined records (of ``reason`` when given)."""
    from xtalbase.platform.repositories.structures import QUARANTINE_COLUMNS, quarantine_count, quarantine_counts, quarantine_rows

    # the list links to the record page: its raw text (up to 64 KiB a row) is not read here
    listed = [c for c in QUARANTINE_COLUMNS if c != "raw_text"]
    with db.session() as s:
        by_reason = quarantine_counts(s, "reason")
        by_run = quarantine_counts(s, "run_id")
        total = quarantine_count(s)
        shown_total = quarantine_count(s, reason) if reason else total
        rows = quarantine_rows(s, reason, limit=QUARANTINE_LIST_LIMIT, columns=listed)
    return {"by_reason": by_reason, "by_run": by_run, "total": total, "reason": reason, "rows": rows, "shown_total": shown_total,
            "limit": QUARANTINE_LIST_LIMIT}


def quarantine_detail(db: "Database", quarantine_id: int) -> dict[str, Any]:
    """One quarantined record with its raw text (``{"record": ...}``); :class:`NotFound` for an unknown id."""
    from xtalbase.platform.repositories.structures import quarantine_record

    with db.session() as s:
        return {"record": quarantine_record(s, quarantine_id)}
