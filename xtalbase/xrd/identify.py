"""Phase identification against the database: candidates by chemistry, the search, and stored results.

:func:`identify_scan` reads a scan, picks the candidates (elements all within ``elements``, containing every
one of ``require``, matching an OPTIMADE ``filter``), and runs :func:`xtalbase.xrd.phase_search.search_phases`
on the recipe's :class:`~xtalbase.xrd.peak_index.PeakIndex`. :func:`identify_scans` does it for a folder and,
with ``store=True``, records each result as a prediction (``target='phases'``) of a ``phase_identification``
model row, one per (search settings, recipe, code version), inside an ``xrd-identify`` run that links the
scan's stored pattern and the recipe.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.xrd.peak_index import PeakIndex, load_index, parse_elements
from xtalbase.xrd.phase_search import Identification, Reflections, SearchSettings, search_phases
from xtalbase.xrd.scan_profile import prepare_scan
from xtalbase.xrd.scans import Scan, check_scan, read_scan, with_wavelength

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

ALGORITHM = "xrd-profile-search"


@dataclass
class CandidateFilter:
    """Which stored phases may explain a scan: ``elements`` (superset of each candidate's elements), ``require``
    (elements each candidate must contain), ``filter`` (OPTIMADE filter text)."""

    elements: list[str] | None = None
    require: list[str] | None = None
    filter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"elements": self.elements, "require": self.require, "filter": self.filter}


@dataclass
class ScanResult:
    """One scan's identification with where it came from and, when stored, its pattern and prediction ids."""

    path: str
    identification: Identification | None
    candidates: CandidateFilter
    seconds: float
    pattern_id: int | None = None
    prediction_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"file": self.path, "pattern_id": self.pattern_id, "prediction_id": self.prediction_id,
               "candidate_filter": self.candidates.to_dict(), "seconds": round(self.seconds, 3)}
        if self.error is not None:
            return {**out, "error": self.error}
        return {**out, **self.identification.to_dict(), **self.extra}


def candidate_positions(db: "Database", index: PeakIndex, candidates: CandidateFilter) -> np.ndarray:
    """Positions in ``index`` of the stored phases ``candidates`` allows."""
    ids = None
    if candidates.filter:
        from xtalbase.platform.query import Query

        ids = Query(db, candidates.filter).ids()
    return index.select(candidates.elements, candidates.require, ids)


def search_range(scan: Scan, index: PeakIndex, settings: SearchSettings) -> tuple[float, float]:
    """The 2θ range (scan wavelength) where every candidate's reflections are stored, even at the largest strain."""
    lam = float(scan.wavelength)
    lo = 2 * np.degrees(np.arcsin(min(1.0, lam / index.wavelength * np.sin(np.radians(index.two_theta_range[0] / 2)))))
    s = lam / (2 * index.d_min * (1 + settings.max_strain))
    hi = 180.0 if s >= 1 else 2 * np.degrees(np.arcsin(s))
    return float(lo), float(hi)


def identify_scan(db: "Database", scan: str | Path | Scan, *, elements: Iterable[str] | str | None = None,
                  require: Iterable[str] | str | None = None, filter: str | None = None, recipe: str | int | None = None,
                  wavelength: float | None = None, settings: SearchSettings | None = None, kalpha2: bool | None = None,
                  weight_fractions: bool = True, axis_strain: bool = False) -> ScanResult:
    """The phases among the stored patterns of ``recipe`` that explain ``scan`` (a path or a read :class:`Scan`).

    ``axis_strain``: the best few candidates of each step are also fitted with a strain per cell axis (their Miller
    indices recomputed from the stored structure), for DFT cells with anisotropic errors; off by default (on the
    tuning set it cost precision and 8× the time, see docs/xrd.md)."""
    import time

    from xtalbase.xrd.recipe import resolve_recipe

    settings = settings or SearchSettings()
    started = time.perf_counter()
    scan = read_scan(scan) if not isinstance(scan, Scan) else check_scan(scan)
    scan = with_wavelength(scan, wavelength)
    rec = resolve_recipe(db, recipe)
    index = load_index(db, rec.id)
    chosen = CandidateFilter(parse_elements(elements), parse_elements(require), filter)
    positions = candidate_positions(db, index, chosen)
    if not len(positions):
        raise XtalbaseError(f"{scan.path}: no stored pattern of recipe {rec.id} matches the candidate filter {chosen.to_dict()}")
    prepared = prepare_scan(scan, search_range(scan, index, settings), kalpha2=kalpha2)
    raw_max = _raw_max_function(db, rec) if weight_fractions else None
    result = search_phases(prepared, index, positions, settings, raw_max=raw_max,
                           reflections=_reflections_function(db, rec) if axis_strain else None)
    return ScanResult(str(scan.path), result, chosen, time.perf_counter() - started,
                      extra={"recipe_id": rec.id, "wavelength": scan.wavelength, "index_fingerprint": index.fingerprint})


def _raw_max_function(db: "Database", recipe: Any) -> Callable[[int], float]:
    """structure id → the unscaled maximum intensity of its pattern under ``recipe`` (recomputed; a few phases only)."""
    from xtalbase.platform.convert import to_pymatgen
    from xtalbase.schema import Structure
    from xtalbase.xrd import compute_xrd
    from xtalbase.xrd.recipe import recipe_options

    options = recipe_options(recipe)

    def raw_max(structure_id: int) -> float:
        with db.session() as s:
            row = s.get(Structure, structure_id)
            if row is None:
                return float("nan")
            structure = to_pymatgen(row)
        pattern = compute_xrd(structure, wavelength=options["wavelength"], two_theta=options["two_theta"], merge_tol=options["merge_tol"],
                              scaled_tol=options["scaled_tol"], debye_waller=options["debye_waller"], scaled=False)[0]
        return float(pattern.intensity.max()) if len(pattern) else float("nan")

    return raw_max


def _reflections_function(db: "Database", recipe: Any) -> Callable[[int], Reflections | None]:
    """structure id → its :class:`Reflections` under ``recipe`` (recomputed with Miller indices, cached per id)."""
    from xtalbase.platform.convert import to_pymatgen
    from xtalbase.schema import Structure
    from xtalbase.xrd.recipe import recipe_options

    options = recipe_options(recipe)
    cache: dict[int, Reflections | None] = {}

    def reflections(structure_id: int) -> Reflections | None:
        if structure_id not in cache:
            with db.session() as s:
                row = s.get(Structure, structure_id)
                structure = to_pymatgen(row) if row is not None else None
            cache[structure_id] = None if structure is None else reflections_of(structure, options)
        return cache[structure_id]

    return reflections


def reflections_of(structure: Any, options: dict[str, Any]) -> Reflections | None:
    """The :class:`Reflections` of a pymatgen structure computed with ``options`` (:func:`recipe_options`)."""
    from xtalbase.xrd import compute_xrd

    pattern = compute_xrd(structure, wavelength=options["wavelength"], two_theta=options["two_theta"], merge_tol=options["merge_tol"],
                          scaled_tol=options["scaled_tol"], debye_waller=options["debye_waller"], hkl=True)[0]
    if not len(pattern) or pattern.hkl_families is None:
        return None
    hkl, inten = [], []
    for intensity, families in zip(pattern.intensity, pattern.hkl_families):
        total = sum(f[-1] for f in families) or 1
        for f in families:
            hkl.append((f[0], f[1], f[-2]))  # [h, k, l, m] or hexagonal [h, k, i, l, m]
            inten.append(intensity * f[-1] / total)
    return Reflections(np.asarray(structure.lattice.matrix, float), np.asarray(hkl, float), np.asarray(inten, float))


def read_sample_table(path: str | Path) -> dict[str, CandidateFilter]:
    """A sample table (CSV with columns ``file`` (or ``scan``) and ``elements``; optional ``require`` and ``filter``)
    → {file name: candidate filter}. Element lists use any of ``,;- `` inside the cell."""
    path = Path(path)
    if not path.is_file():
        raise XtalbaseError(f"{path}: no such sample table")
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a byte-order mark
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        key = "file" if "file" in fields else "scan" if "scan" in fields else None
        if key is None or "elements" not in fields:
            raise XtalbaseError(f"{path}: a sample table needs the columns file (or scan) and elements; found {reader.fieldnames}")
        out: dict[str, CandidateFilter] = {}
        for number, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            name = Path(row[key]).name
            if not name:
                raise XtalbaseError(f"{path}: line {number} names no scan file")
            if name in out:
                raise XtalbaseError(f"{path}: line {number}: {name} is listed twice")
            if not row["elements"]:
                raise XtalbaseError(f"{path}: line {number} ({name}) gives no elements")
            try:
                out[name] = CandidateFilter(parse_elements(row["elements"]), parse_elements(row.get("require") or None),
                                            row.get("filter") or None)
            except XtalbaseError as exc:
                raise XtalbaseError(f"{path}: line {number} ({name}): {exc}") from None
    return out


def identify_scans(db: "Database", paths: Sequence[str | Path], *, samples: dict[str, CandidateFilter] | None = None,
                   elements: Iterable[str] | str | None = None, require: Iterable[str] | str | None = None, filter: str | None = None,
                   recipe: str | int | None = None, wavelength: float | None = None, settings: SearchSettings | None = None,
                   store: bool = True, progress: Callable[[int], None] | None = None, axis_strain: bool = False,
                   kalpha2: bool | None = None, on_error: str = "raise") -> list[ScanResult]:
    """:func:`identify_scan` for every path, candidates from ``samples`` (by file name) or the common filter.

    A scan missing from a given sample table is an error naming it (before any work). With ``store=True`` each scan is
    imported as a measured pattern (idempotent) and its result stored as a prediction; the same search of the same
    scan with the same candidates is stored once. ``on_error="collect"``: a scan that cannot be read or searched gets
    a result with ``error`` set and the others go on (``"raise"``, the default, stops at it).
    """
    from xtalbase.xrd.recipe import resolve_recipe

    if on_error not in ("raise", "collect"):
        raise XtalbaseError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
    settings = settings or SearchSettings()
    if store and any(isinstance(p, Scan) and not (p.path and Path(p.path).is_file()) for p in paths):
        raise XtalbaseError("storing a result needs the scan's file: give paths (or Scan objects read from files)")
    paths = [Path(p.path) if isinstance(p, Scan) else Path(p) for p in paths]
    if samples is not None and any(v is not None for v in (elements, require, filter)):
        raise XtalbaseError("give the candidates either per scan (a sample table) or for all scans (elements/require/filter), not both")
    if samples is not None:
        missing = [p.name for p in paths if p.name not in samples]
        if missing:
            raise XtalbaseError(f"no sample-table row for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    rec = resolve_recipe(db, recipe)
    model_id = phase_model(db, rec.id, settings, axis_strain) if store else None
    results = []
    for done, path in enumerate(paths, start=1):
        chosen = samples[path.name] if samples is not None else CandidateFilter(parse_elements(elements), parse_elements(require), filter)
        try:
            result = identify_scan(db, path, elements=chosen.elements, require=chosen.require, filter=chosen.filter, recipe=rec.id,
                                   wavelength=wavelength, settings=settings, axis_strain=axis_strain, kalpha2=kalpha2)
        except XtalbaseError as exc:
            if on_error == "raise":
                raise
            result = ScanResult(str(path), None, chosen, 0.0, error=str(exc))
        if store and result.error is None:
            _store_result(db, model_id, result)
        results.append(result)
        if progress is not None:
            progress(done)
    return results


def phase_model(db: "Database", recipe_id: int, settings: SearchSettings, axis_strain: bool = False) -> int:
    """The ``models`` row standing for this search (settings, recipe, code version), created on first use."""
    from xtalbase.platform.hashing import sha256_bytes
    from xtalbase.platform.provenance import code_version
    from xtalbase.platform.repositories.models import find_model_by_artifact
    from xtalbase.schema import Model

    options = {**settings.to_dict(), "axis_strain": bool(axis_strain)}
    artifact = json.dumps({"algorithm": ALGORITHM, "settings": options, "recipe_id": recipe_id,
                           "code_version": code_version()}, sort_keys=True).encode()
    digest = sha256_bytes(artifact)
    with db.session() as s:
        found = find_model_by_artifact(s, ALGORITHM, digest)
        if found is not None:
            return found
        model = Model(name=f"phase-id recipe {recipe_id}", task="phase_identification", target="phases", algorithm=ALGORITHM,
                      hyperparameters=options, seed=None, feature_recipe={"kind": "profile-fit"}, xrd_recipe_id=recipe_id,
                      metrics={}, library_versions=_library_versions(), code_version=code_version(), artifact=artifact,
                      artifact_format="json", artifact_sha256=digest)
        s.add(model)
        s.commit()
        return model.id


def _library_versions() -> dict[str, str]:
    import numpy
    import scipy

    return {"numpy": numpy.__version__, "scipy": scipy.__version__}


def _store_result(db: "Database", model_id: int, result: ScanResult) -> None:
    """Import the scan (idempotent) and store its phase list as one prediction in an ``xrd-identify`` run."""
    from xtalbase.platform.repositories.models import predictions_of_pattern
    from xtalbase.schema import Prediction
    from xtalbase.xrd.scans import import_scan

    pattern_id = import_scan(db, result.path, wavelength=result.extra.get("wavelength"))["pattern_id"]
    ident = result.identification
    label = " + ".join(p.formula for p in ident.phases) or "none"
    payload = {**ident.to_dict(), "candidate_filter": result.candidates.to_dict(), "file": result.path,
               "index_fingerprint": result.extra.get("index_fingerprint"), "wavelength": result.extra.get("wavelength")}
    with db.session() as s:
        for earlier in predictions_of_pattern(s, model_id, pattern_id):
            same = {k: (earlier.payload or {}).get(k) for k in ("candidate_filter", "index_fingerprint", "wavelength")}
            if same == {k: payload[k] for k in same}:  # this search of this scan is stored already
                result.pattern_id, result.prediction_id = pattern_id, earlier.id
                return
    with db.run("xrd-identify", {"file": result.path, "model_id": model_id, **result.candidates.to_dict()}) as run:
        run.link_input("xrd_pattern", pattern_id, label=Path(result.path).name)
        run.link_input("model", model_id)
        run.link_input("xrd_recipe", result.extra["recipe_id"])
        prediction = Prediction(model_id=model_id, pattern_id=pattern_id, target="phases", value=ident.residual, label=label[:64],
                                payload=payload, run_id=run.id)
        run.session.add(prediction)
        run.session.flush()
        run.link_output("predictions", label=f"{prediction.id}: {label}"[:120])
        run.summary = {"phases": [p.structure_id for p in ident.phases], "residual": ident.residual}
    result.pattern_id, result.prediction_id = pattern_id, prediction.id
