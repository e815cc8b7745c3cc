"""CSP runs in the database: train a model on a split, sample it, store imported predictions, evaluate, list.

A CSP run is model + split hash + fold + k + seed + code and library versions; its samples are written and the
run sealed in one transaction (nothing half-written, nothing changed later). An evaluation matches every sample
once per matcher settings and stores the per-pair results; metrics are then computed from those rows, so
evaluating again, in another mode, at a smaller k or with a new metric runs neither the model nor the matcher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from xtalbase.csp.matching import MatchSettings, MatchTask, match_all
from xtalbase.csp.metrics import PairTable, compute
from xtalbase.csp.models.base import CspModel, get_model_class
from xtalbase.csp.tasks import CspTask, fold_structures, load_task
from xtalbase.errors import XtalbaseError
from xtalbase.platform.convert import StructureArrays
from xtalbase.platform.hashing import json_ready
from xtalbase.platform.repositories import csp as repo
from xtalbase.platform.repositories.models import get_model
from xtalbase.schema import CspEvaluation, CspRun
from xtalbase.schema.arrays import U1, pack, unpack

if TYPE_CHECKING:
    from xtalbase.ml.splits import SplitHandle
    from xtalbase.platform.database import Database

#: Libraries whose versions can change samples or their evaluation; recorded on runs and evaluations.
CSP_LIBRARIES = ("numpy", "torch", "pymatgen", "spglib", "smact")
TASK = "csp"
TARGET = "structure"


class CspError(XtalbaseError):
    """A CSP request that cannot be served (wrong fold, samples for structures outside it, a k past the run's)."""


#: ``(structure id, sample index) -> predicted structure``.
Samples = Mapping[tuple[int, int], StructureArrays]


@dataclass
class CspRunInfo:
    """What a stored CSP run is, for reports and JSON."""

    id: int
    name: str
    model: str
    origin: str
    model_id: int | None
    split: str
    split_hash: str
    fold: str
    k: int
    seed: int | None
    n_structures: int
    n_samples: int
    seconds: float | None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _versions() -> dict[str, str]:
    from xtalbase.ml.registry import library_versions

    return library_versions(CSP_LIBRARIES)


def _info(row: CspRun, split_name: str) -> CspRunInfo:
    return CspRunInfo(row.id, row.name, row.model, row.origin, row.model_id, split_name, row.split_hash, row.fold, row.k,
                      row.seed, row.n_structures, row.n_samples, row.seconds, dict(row.params))


class CspStore:
    """``db.csp``: CSP models, runs, evaluations and the leaderboard of one database."""

    def __init__(self, db: "Database") -> None:
        self.db = db

    # ------------------------------------------------------------------ models
    def train(self, split: "SplitHandle", model: str, *, seed: int = 0, name: str | None = None,
              params: dict[str, Any] | None = None) -> int:
        """Fit ``model`` on the split's ``train`` fold (``val`` for model selection) and register it; returns the model id."""
        import inspect

        from xtalbase.ml.registry import library_versions
        from xtalbase.platform.hashing import set_hash, sha256_bytes
        from xtalbase.platform.provenance import code_version
        from xtalbase.schema import Model

        cls = get_model_class(model)
        known = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "random_state")]
        unknown = sorted(set(params or {}) - set(known))
        if unknown:
            raise CspError(f"model {model!r} has no parameter {', '.join(unknown)}; its parameters: {', '.join(known) or 'none'}")
        estimator = cls(**{**(params or {}), "random_state": seed})
        train_rows = list(split.rows("train"))
        val = fold_structures(split, "val") if "val" in split.folds else None
        with self.db.run("csp-train", {"split": split.name, "split_hash": split.id, "model": model, "seed": seed,
                                       "params": estimator.get_params()}) as run:
            run.link_input("split", split.pk, label=split.name)
            started = time.perf_counter()
            from xtalbase.platform.convert import row_arrays

            estimator.fit([row_arrays(r) for r in train_rows], val)
            seconds = time.perf_counter() - started
            blob = estimator.to_bytes()
            metrics = {"fit_seconds": round(seconds, 3), "n_train": len(train_rows), "n_val": len(val or ())}
            metrics.update(estimator.fit_summary())
            row = Model(name=name or f"csp-{model}-{split.name}-s{seed}", task=TASK, target=TARGET, algorithm=model,
                        hyperparameters=json_ready(estimator.get_params()), seed=seed, split_id=split.pk, fold="train",
                        training_set_hash=set_hash(r.exact_hash for r in train_rows), metrics=json_ready(metrics),
                        library_versions=library_versions(CSP_LIBRARIES), code_version=code_version(), artifact=blob,
                        artifact_format=cls.artifact_format, artifact_sha256=sha256_bytes(blob), run_id=run.id)
            run.session.add(row)
            run.session.flush()
            run.link_output("model", row.id, label=row.name)
            run.summary = {"model_id": row.id, **metrics}
            return row.id

    def load_model(self, model_id: int | str, device: str = "cpu") -> tuple[CspModel, Any]:
        """The fitted model of a registered CSP model (sha256 checked) and its ``models`` row."""
        from xtalbase.platform.hashing import sha256_bytes

        with self.db.session() as s:
            row = get_model(s, model_id)
            s.expunge(row)
        if row.task != TASK:
            raise CspError(f"model {row.id} is a {row.task!r} model, not a CSP model")
        blob = bytes(row.artifact or b"")
        if sha256_bytes(blob) != row.artifact_sha256:
            raise CspError(f"model {row.id}: artifact does not match its sha256; refusing to load it")
        return get_model_class(row.algorithm).from_bytes(blob, device=device), row

    # ------------------------------------------------------------------ runs
    def sample(self, model_id: int | str, split: "SplitHandle", *, fold: str = "test", k: int = 1, seed: int = 0,
               name: str | None = None, device: str = "cpu", params: dict[str, Any] | None = None) -> CspRunInfo:
        """Sample ``k`` structures per structure of ``fold`` from a registered model and store them as a CSP run.

        ``params`` change sampling parameters of the loaded model (e.g. DiffCSP ``timesteps``); they are stored
        with the run.
        """
        model, row = self.load_model(model_id, device)
        model.set_params(**(params or {}))
        task = load_task(self.db, split, fold)
        started = time.perf_counter()
        drawn = model.sample([t.numbers for t in task.targets], k, seed)
        seconds = time.perf_counter() - started
        samples = {(t.structure_id, i): s for t, per in zip(task.targets, drawn) for i, s in enumerate(per)}
        return self.store(task, samples, name=name or f"{row.algorithm}-m{row.id}-{split.name}-{fold}-k{k}-s{seed}",
                          model=row.algorithm, origin="sampled", k=k, seed=seed, model_id=row.id, seconds=seconds,
                          params={"device": device, **(params or {})})

    def store(self, task: CspTask, samples: Samples, *, name: str, model: str, origin: str, k: int, seed: int | None = None,
              model_id: int | None = None, seconds: float | None = None, params: dict[str, Any] | None = None) -> CspRunInfo:
        """Write ``samples`` of ``task`` as one sealed CSP run (every sample or none)."""
        from xtalbase.platform.provenance import code_version

        if k < 1:
            raise CspError(f"k must be at least 1 (got {k})")
        known = {t.structure_id for t in task.targets}
        outside = sorted({sid for sid, _ in samples if sid not in known})
        if outside:
            raise CspError(f"CSP run {name!r}: samples for structures outside fold {task.fold!r} of split "
                           f"{task.split.name!r}: {outside[:10]}")
        beyond = sorted({i for _, i in samples if not 0 <= i < k})
        if beyond:
            raise CspError(f"CSP run {name!r}: sample indices {beyond[:10]} outside 0..{k - 1}")
        for (sid, i), s in samples.items():
            if len(s.numbers) != len(s.frac_coords) or np.shape(s.cell) != (3, 3):
                raise CspError(f"CSP run {name!r}: sample {i} of structure {sid}: {len(s.numbers)} species but "
                               f"{len(s.frac_coords)} coordinates, cell shape {np.shape(s.cell)}")
        params = {**(params or {})}
        with self.db.session() as s:
            if repo.csp_run_named(s, name):
                raise CspError(f"a CSP run named {name!r} exists already (runs are immutable); choose another --name")
        with self.db.run("csp-sample" if origin == "sampled" else "csp-import",
                         {"name": name, "model": model, "split": task.split.name, "split_hash": task.split_hash,
                          "fold": task.fold, "k": k, "seed": seed, **params}) as run:
            run.link_input("split", task.split.pk, label=task.split.name)
            if model_id is not None:
                run.link_input("model", model_id)
            row = CspRun(name=name, model=model, origin=origin, model_id=model_id, split_id=task.split.pk,
                         split_hash=task.split_hash, fold=task.fold, k=k, seed=seed, params=json_ready(params),
                         code_version=code_version(), library_versions=_versions(), run_id=run.id)
            run.session.add(row)
            run.session.flush()
            n = repo.add_samples(run.session, ({"csp_run_id": row.id, "structure_id": sid, "sample": i, "nsites": len(s.numbers),
                                                "cell": pack(s.cell), "numbers": pack(s.numbers, U1), "frac_coords": pack(s.frac_coords)}
                                               for (sid, i), s in sorted(samples.items())))
            repo.seal(run.session, row, n_structures=len({sid for sid, _ in samples}), n_samples=n,
                      seconds=None if seconds is None else round(seconds, 3))
            run.summary = {"csp_run_id": row.id, "n_samples": n}
            return _info(row, task.split.name)

    def import_predictions(self, split: "SplitHandle", path: str | Any, *, name: str, fold: str = "test", k: int | None = None,
                           model: str | None = None, trust_pickle: bool = False, order: str | None = None) -> CspRunInfo:
        """Store predictions made elsewhere (see :mod:`xtalbase.csp.interchange`) as a sealed CSP run.

        ``k`` defaults to the largest sample index + 1; ``order``: the test CSV a ``.pt`` file was made from.
        """
        from pathlib import Path

        from xtalbase.csp.interchange import read_order, read_predictions
        from xtalbase.platform.hashing import file_sha256

        task = load_task(self.db, split, fold)
        samples = read_predictions(path, task, trust_pickle=trust_pickle, order=read_order(order) if order else None)
        if not samples:
            raise CspError(f"{path}: no predictions found")
        k = k or max(i for _, i in samples) + 1
        path = Path(path)
        origin = {"path": str(path), "sha256": file_sha256(path) if path.is_file() else None, "trust_pickle": trust_pickle,
                  "order": str(order) if order else None}
        return self.store(task, samples, name=name, model=model or name, origin="imported", k=k, params={"source": origin})

    def leaderboard(self, split: "SplitHandle", *, mode: str = "reference", ks: Any = None, fold: str = "test",
                    runs: Any = None, **match_options: Any) -> dict[str, Any]:
        """Every run (or the named ``runs``) on ``split``'s hash, one row per (run, k); see
        :func:`xtalbase.csp.leaderboard.leaderboard`."""
        from xtalbase.csp.leaderboard import leaderboard

        return leaderboard(self, split, mode=mode, ks=ks, fold=fold, runs=runs, **match_options)

    def get(self, ref: int | str) -> CspRunInfo:
        """A stored CSP run by id or name."""
        with self.db.session() as s:
            row = repo.get_csp_run(s, ref)
            return _info(row, _split_name(s, row.split_id))

    def runs(self, split_hash: str | None = None) -> list[CspRunInfo]:
        """Stored CSP runs (on ``split_hash`` only, when given), oldest first."""
        with self.db.session() as s:
            return [_info(r, _split_name(s, r.split_id)) for r in repo.csp_runs(s, split_hash)]

    def samples(self, ref: int | str) -> dict[tuple[int, int], StructureArrays]:
        """The stored samples of a run."""
        with self.db.session() as s:
            row = repo.get_csp_run(s, ref)
            rows = repo.samples_of(s, row.id)
        return {(sid, i): StructureArrays(unpack(cell, shape=(3, 3)), unpack(nums, U1).astype(np.int64), unpack(frac, shape=(n, 3)))
                for sid, i, n, cell, nums, frac in rows}

    # ------------------------------------------------------------------ evaluation
    def pair_table(self, ref: int | str, *, settings: MatchSettings | None = None, workers: int = 1, scheduler: str | None = None,
                   timeout: float | None = 60.0, progress: Callable[[int], None] | None = None) -> tuple[CspRunInfo, PairTable]:
        """The run's per-pair results with ``settings``: read when stored, else matched now and stored."""
        settings = settings or MatchSettings()
        digest = settings.hash()
        info = self.get(ref)
        split = self._split(info)
        targets = split.ids(info.fold)
        with self.db.session() as s:
            found = repo.get_evaluation(s, info.id, digest)
            if found is not None:
                return info, PairTable(repo.pair_results(s, found.id), targets, info.k, settings.stol)
        task = load_task(self.db, split, info.fold)  # the references are read only when something is to be matched
        samples = self.samples(info.id)
        tasks = (MatchTask(t.structure_id, t.reference, tuple((i, samples[(t.structure_id, i)]) for i in range(info.k)
                                                               if (t.structure_id, i) in samples), settings)
                 for t in task.targets)
        started = time.perf_counter()
        rows = match_all(tasks, workers=workers, scheduler=scheduler, timeout=timeout, progress=progress)
        seconds = time.perf_counter() - started
        have = {(r["structure_id"], r["sample"]) for r in rows}
        rows += [_missing(t, i, settings) for t in task.targets for i in range(info.k) if (t.structure_id, i) not in have]
        from sqlalchemy.exc import IntegrityError

        try:
            with self.db.run("csp-evaluate", {"csp_run": info.name, "settings": settings.to_dict(), "workers": workers}) as run:
                run.link_input("split", split.pk, label=split.name)
                row = CspEvaluation(csp_run_id=info.id, settings=settings.to_dict(), settings_hash=digest,
                                    library_versions=_versions(), run_id=run.id)
                run.session.add(row)
                run.session.flush()
                repo.add_pair_results(run.session, [{**_clean(r), "evaluation_id": row.id} for r in rows])
                repo.seal(run.session, row, seconds=round(seconds, 3))
                run.summary = {"evaluation_id": row.id, "pairs": len(rows), "seconds": round(seconds, 3)}
        except IntegrityError:
            # another process stored this evaluation meanwhile: the matcher is deterministic, read theirs
            pass
        with self.db.session() as s:
            found = repo.get_evaluation(s, info.id, digest)
            if found is None:
                raise CspError(f"CSP run {info.name!r}: the evaluation could not be stored")
            return info, PairTable(repo.pair_results(s, found.id), targets, info.k, settings.stol)

    def evaluate(self, ref: int | str, *, mode: str = "reference", k: int | None = None, gating: str = "diffcsp",
                 volume_tol: float = 0.1, **match_options: Any) -> dict[str, Any]:
        """Metrics of a run at ``k`` (default: the run's k) in ``mode``; see :mod:`xtalbase.csp.metrics`."""
        info, table = self.pair_table(ref, **match_options)
        out = compute(table, k or info.k, mode, gating=gating, volume_tol=volume_tol)
        return {"run": info.name, "run_id": info.id, "model": info.model, "split": info.split, "split_hash": info.split_hash,
                "fold": info.fold, "seed": info.seed, **out}

    def _split(self, info: CspRunInfo) -> "SplitHandle":
        from xtalbase.ml.splits import SplitStore

        return SplitStore(self.db).get(info.split)


def _missing(target: Any, index: int, settings: MatchSettings) -> dict[str, Any]:
    from xtalbase.csp import validity

    ref = validity.build_structure(target.reference)
    return {"structure_id": target.structure_id, "sample": index, "status": "missing", "struct_valid": False,
            "comp_valid": False, "ref_struct_valid": validity.structure_validity(ref, settings.min_distance, settings.min_volume),
            "ref_comp_valid": validity.composition_validity(target.numbers, settings.oxidation_states), "rms": None, "volume_ratio": None,
            "spacegroup_pred": None, "spacegroup_ref": None, "seconds": None}


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("rms", "volume_ratio", "seconds"):
        value = out.get(key)
        out[key] = None if value is None or not np.isfinite(value) else float(value)
    return out


def _split_name(session: Any, split_id: int) -> str:
    from xtalbase.schema import Split

    split = session.get(Split, split_id)
    return split.name if split is not None else str(split_id)
