"""Matching predicted structures to their references: cheap exact pre-checks, then StructureMatcher in workers.

One task is one test structure with its ``k`` samples, so the reference is built, gated and symmetry-analysed once
per task, not once per pair, and its reduced cell stays in pymatgen's own per-process cache
(``StructureMatcher._get_reduced_istructure``) across the k samples, all matched in one worker. Per sample, in order:

1. build the prediction (``invalid`` when it cannot be built or its volume is below the gate: nothing to match);
2. compare reduced compositions (``composition_mismatch``: the species comparator could never match);
3. ``StructureMatcher(ltol, stol, angle_tol, primitive_cell, scale).get_rms_dist(pred, ref)`` — this order, the
   matcher is not symmetric — giving ``matched`` with the normalised RMS, or ``no_match``.

Both gates are stored for every pair instead of skipping gated pairs, so any gating rule (CDVAE's, DiffCSP's per k,
strict) is a metric over the same stored rows. A pair that runs past ``timeout`` seconds (a known hang of the
matcher on degenerate cells) is stopped by killing its worker and stored as ``timeout``; the task is run again
without it. Work goes through :class:`xtalbase.platform.runner.Runner` (processes or Dask).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from xtalbase.csp import validity
from xtalbase.platform.budgets import Budget, BudgetExceeded, mark
from xtalbase.platform.convert import StructureArrays
from xtalbase.platform.hashing import json_sha256

#: Tasks queued per worker (each task is one reference with its k samples).
IN_FLIGHT_PER_WORKER = 8


@dataclass(frozen=True)
class MatchSettings:
    """Matcher tolerances (the CDVAE/DiffCSP values by default) and the gates' thresholds."""

    stol: float = 0.5
    ltol: float = 0.3
    angle_tol: float = 10.0
    primitive_cell: bool = True
    scale: bool = True
    min_distance: float = validity.MIN_DISTANCE
    min_volume: float = validity.MIN_VOLUME
    symprec: float = 0.1
    oxidation_states: str = "installed"

    def to_dict(self) -> dict[str, Any]:
        """The settings with the SMACT version that decides the composition gate."""
        return {**asdict(self), "smact": validity.smact_version()}

    def hash(self) -> str:
        """Content hash of :meth:`to_dict` (an evaluation is stored once per run and hash)."""
        return json_sha256(self.to_dict())


@dataclass(frozen=True)
class MatchTask:
    """One test structure and its samples: what a worker needs (arrays only, no database)."""

    structure_id: int
    reference: StructureArrays
    samples: tuple[tuple[int, StructureArrays], ...]
    settings: MatchSettings
    skipped: tuple[tuple[int, str], ...] = ()


def _spacegroup(structure: Any, symprec: float) -> int | None:
    import warnings

    import spglib

    cell = (structure.lattice.matrix, structure.frac_coords, structure.atomic_numbers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's notice about its old error handling
        try:
            data = spglib.get_symmetry_dataset(cell, symprec=symprec)
        except Exception:  # newer spglib raises on degenerate cells where older returned None: undetermined
            return None
    return None if data is None else int(data.number)


def _matcher(settings: MatchSettings) -> Any:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(ltol=settings.ltol, stol=settings.stol, angle_tol=settings.angle_tol,
                            primitive_cell=settings.primitive_cell, scale=settings.scale)


def match_task(task: MatchTask) -> list[dict[str, Any]]:
    """Pair results of one task (module level: it runs in worker processes). See the module docstring."""
    from threadpoolctl import threadpool_limits

    # one BLAS thread per worker: the matcher's 3x3 algebra gains nothing from more, and two workers with two
    # OpenBLAS threads each on two cores ran each pair 1.3x slower (bench/csp.py)
    with threadpool_limits(limits=1, user_api="blas"):
        return _match_task(task)


def _match_task(task: MatchTask) -> list[dict[str, Any]]:
    import warnings

    s = task.settings
    ref = validity.build_structure(task.reference)
    ref_numbers = task.reference.numbers
    base = {"structure_id": task.structure_id,
            "ref_struct_valid": validity.structure_validity(ref, s.min_distance, s.min_volume),
            "ref_comp_valid": validity.composition_validity(ref_numbers, s.oxidation_states),
            "spacegroup_ref": _spacegroup(ref, s.symprec) if ref is not None else None}
    ref_key = validity.reduced_counts(ref_numbers)
    matcher = _matcher(s)
    skipped = dict(task.skipped)
    out = []
    for index, arrays in task.samples:
        row = {**base, "sample": index, "rms": None, "volume_ratio": None, "spacegroup_pred": None, "seconds": None,
               "comp_valid": validity.composition_validity(arrays.numbers, s.oxidation_states)}
        if index in skipped:
            out.append({**row, "status": skipped[index], "struct_valid": False})
            continue
        mark(f"{task.structure_id}/{index}")
        started = time.perf_counter()
        pred = validity.build_structure(arrays)
        row["struct_valid"] = validity.structure_validity(pred, s.min_distance, s.min_volume)
        if pred is None or not pred.volume >= s.min_volume:
            out.append({**row, "status": "invalid"})
            continue
        if ref is not None:
            row["volume_ratio"] = float((pred.volume / len(pred)) / (ref.volume / len(ref)))
        row["spacegroup_pred"] = _spacegroup(pred, s.symprec)
        if validity.reduced_counts(arrays.numbers) != ref_key or ref is None:
            out.append({**row, "status": "composition_mismatch", "seconds": time.perf_counter() - started})
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = matcher.get_rms_dist(pred, ref)
        except Exception:  # the reference code counts a matcher exception as no match; kept apart as "error"
            out.append({**row, "status": "error", "seconds": time.perf_counter() - started})
            continue
        rms = None if found is None else float(found[0])
        out.append({**row, "status": "matched" if rms is not None else "no_match", "rms": rms,
                    "seconds": time.perf_counter() - started})
    return out


def _pass_over(args: tuple, exceeded: BudgetExceeded) -> tuple | None:
    task: MatchTask = args[0]
    sid, _, index = exceeded.label.partition("/")
    if not index.isdigit() or int(sid) != task.structure_id:
        return None
    status = "timeout" if exceeded.reason == "timeout" else "error"
    return (MatchTask(task.structure_id, task.reference, task.samples, task.settings,
                      task.skipped + ((int(index), status),)),)


def match_all(tasks: Iterable[MatchTask], *, workers: int = 1, scheduler: str | None = None, timeout: float | None = 60.0,
              progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Pair results of every task, in task order. ``timeout``: seconds per pair (``None`` or 0: no limit).

    With a timeout, pairs run in supervised worker processes (even for ``workers=1``) so that a hung pair can be
    stopped; without one and with ``workers=1`` they run in this process.
    """
    from xtalbase.platform.runner import Runner

    budget = Budget(timeout=timeout or None)
    done: dict[int, list[dict[str, Any]]] = {}
    # unordered, with a deep queue: pairs take 5 ms to seconds, and in submission order one slow task would idle
    # the other workers; the rows are put back in task order below
    with Runner(match_task, workers=workers, scheduler=scheduler, name="csp-match", progress=progress, ordered=False,
                in_flight=IN_FLIGHT_PER_WORKER * workers, budget=budget if budget.active else None,  # unused on a cluster
                retry=_pass_over) as runner:
        for index, rows in runner.map((i, (t,)) for i, t in enumerate(tasks)):
            done[index] = rows
    return [row for index in sorted(done) for row in done[index]]


def reference_loop(pairs: Sequence[tuple[StructureArrays, StructureArrays]], settings: MatchSettings = MatchSettings()) -> list[float | None]:
    """The reference evaluation's serial loop: per pair, build both crystals and their validity (as the reference
    scripts' ``Crystal`` objects do), then one matcher call; nothing shared between pairs. Returns the raw RMS
    (``None``: no match), ungated.

    Kept as the anchor of ``bench/csp.py`` and of the parallel-equals-serial test.
    """
    matcher = _matcher(settings)
    out: list[float | None] = []
    for pred, ref in pairs:
        p, r = validity.build_structure(pred), validity.build_structure(ref)
        for crystal, arrays in ((p, pred), (r, ref)):
            validity.structure_validity(crystal, settings.min_distance, settings.min_volume)
            validity._smact_valid.__wrapped__(*validity.reduced_counts(arrays.numbers), "oxidation_states")
        if p is None or r is None:
            out.append(None)
            continue
        try:
            found = matcher.get_rms_dist(p, r)
        except Exception:
            found = None
        out.append(None if found is None else float(found[0]))
    return out


def as_arrays(cell: Any, numbers: Any, frac_coords: Any) -> StructureArrays:
    """``StructureArrays`` of plain sequences, with the dtypes stored columns use."""
    return StructureArrays(np.asarray(cell, dtype=float).reshape(3, 3), np.asarray(numbers, dtype=np.int64),
                           np.asarray(frac_coords, dtype=float).reshape(-1, 3))
