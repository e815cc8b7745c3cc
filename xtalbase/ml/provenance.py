"""The provenance chain of a model or prediction, as one JSON-ready dict, walked along stored run links.

prediction → its predict run → the model linked as that run's input → the train run that output the model →
that run's linked inputs: XRD recipe, split or dataset (hash, recipe, lineage) → training structures (count and
set hash, re-computed from the stored members and compared with the hash recorded at training time) → the
ingest runs that wrote them (with their linked input paths) → their source files (count, hash over the file
hashes, examples). Rows written before runs were linked fall back to the ids the model row holds.

A potential (``task == "potential"``) trains on stored calculations, not only structures: its chain adds
``calculations``, the calculation ids its train run recorded (``params["calculation_ids"]``), their count and
the source files they were read from (path, sha256, how many of the calculations each holds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xtalbase.errors import NotFound
from xtalbase.ml.registry import get_model, lineage
from xtalbase.ml.targets import TARGETS
from xtalbase.platform.hashing import lines_hash, set_hash
from xtalbase.platform.repositories import runs as run_repo
from xtalbase.platform.repositories import structures as structure_repo
from xtalbase.platform.repositories.calculations import sources_of_calculations
from xtalbase.schema import Dataset, Prediction, Run, Split, Structure, XrdPattern, XrdRecipe
from xtalbase.schema.runs import Direction, LinkKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EXAMPLES = 5
#: ``models.task`` of interatomic potentials (trained on calculations; see :func:`_calculations`).
POTENTIAL_TASK = "potential"


def model_chain(session: "Session", model_id: int | str) -> dict[str, Any]:
    """Everything a model was made from, back to the source files."""
    model = get_model(session, model_id)
    producers = run_repo.runs_linking(session, LinkKind.MODEL, model.id, Direction.OUTPUT)
    train_run_id = producers[0].id if producers else model.run_id
    inputs = _inputs(session, train_run_id)
    split_id = inputs[LinkKind.SPLIT].split_id if LinkKind.SPLIT in inputs else model.split_id
    dataset_id = inputs[LinkKind.DATASET].dataset_id if LinkKind.DATASET in inputs else model.dataset_id
    recipe_id = inputs[LinkKind.XRD_RECIPE].xrd_recipe_id if LinkKind.XRD_RECIPE in inputs else model.xrd_recipe_id
    members = structure_repo.member_structures(session, dataset_id=dataset_id, split_id=split_id, fold=model.fold)
    out: dict[str, Any] = {
        "model": {
            "id": model.id, "name": model.name, "task": model.task, "target": model.target, "algorithm": model.algorithm,
            "hyperparameters": model.hyperparameters, "seed": model.seed, "feature_recipe": model.feature_recipe,
            "fold": model.fold, "metrics": {f: {k: v for k, v in m.items() if not k.startswith("confusion")}
                                            for f, m in (model.metrics or {}).items()},
            "artifact_format": model.artifact_format, "artifact_sha256": model.artifact_sha256,
            "code_version": model.code_version, "library_versions": model.library_versions,
            "created_at": model.created_at, "lineage": [m.id for m in lineage(session, model)],
        },
        "train_run": _run(session, train_run_id),
        "xrd_recipe": _recipe(session, recipe_id),
        "split": _split(session, split_id),
        "dataset": _dataset(session, dataset_id),
    }
    if members is not None:
        # the target decides which members it trained on (cubic_a: the cubic ones); an unknown one used them all
        target = TARGETS.get(model.target)
        members = target.training_rows(members) if target is not None else members
        if (model.feature_recipe or {}).get("kind") == "descriptor":
            # a property model trained on the members carrying its target property (``n_without_target`` left out)
            have = structure_repo.source_property_values(session, [m.id for m in members], model.target)
            members = [m for m in members if m.id in have and have[m.id][1] is not None]
        ids = [m.id for m in members]
        hashes = [m.exact_hash for m in members]
        current = set_hash(hashes)
        linked = inputs.get(LinkKind.TRAINING_SET)
        out["training_structures"] = {"count": len(hashes), "set_hash": current, "recorded_hash": model.training_set_hash,
                                      "linked_hash": linked.sha256 if linked is not None else None,
                                      "matches_recorded": current == model.training_set_hash}
        if model.task == POTENTIAL_TASK:
            # a potential records the hash of (structure, chosen calculation) pairs, not of structures alone
            out["training_structures"].update(matches_recorded=None, recorded_hash_kind="labelled set")
        out["ingest_runs"] = _ingest_runs(session, ids)
        out["source_files"] = _source_files(session, ids)
    if model.task == POTENTIAL_TASK:
        out["calculations"] = _calculations(session, train_run_id)
    return out


def prediction_chain(session: "Session", prediction_id: int) -> dict[str, Any]:
    """A prediction, the structure or pattern it was made for (with its sources), and its model's chain."""
    pred = session.get(Prediction, int(prediction_id))
    if pred is None:
        raise NotFound(f"no prediction {prediction_id}")
    used = _inputs(session, pred.run_id).get(LinkKind.MODEL)
    out: dict[str, Any] = {
        "prediction": {"id": pred.id, "target": pred.target, "label": pred.label, "value": pred.value,
                       "payload": pred.payload, "created_at": pred.created_at},
        "predict_run": _run(session, pred.run_id),
    }
    if pred.structure_id is not None:
        st = session.get(Structure, pred.structure_id)
        sources = structure_repo.sources_of(session, st.id)
        out["structure"] = {
            "id": st.id, "formula": st.formula_reduced, "exact_hash": st.exact_hash, "canonical_hash": st.canonical_hash,
            "spacegroup_number": st.spacegroup_number, "crystal_system": st.crystal_system,
            "ingest_run": _run(session, st.run_id),
            "sources": [{"database": s.database, "external_id": s.external_id, "file_path": s.file_path,
                         "file_hash": s.file_hash, "record": s.record_locator, "licence": s.licence, "run_id": s.run_id}
                        for s in sources],
        }
    if pred.pattern_id is not None:
        pat = session.get(XrdPattern, pred.pattern_id)
        out["pattern"] = {"id": pat.id, "kind": pat.kind, "name": pat.name, "file_path": pat.file_path,
                          "file_hash": pat.file_hash, "wavelength": pat.wavelength, "npeaks": pat.npeaks,
                          "import_run": _run(session, pat.run_id)}
    out["model_chain"] = model_chain(session, used.model_id if used is not None and used.model_id else pred.model_id)
    return out


def _inputs(session: "Session", run_id: int | None) -> dict[LinkKind, Any]:
    """The input links of a run by kind (the first of each kind)."""
    found: dict[LinkKind, Any] = {}
    for link in run_repo.links_of(session, run_id, Direction.INPUT) if run_id is not None else []:
        found.setdefault(LinkKind(link.kind), link)
    return found


def _run(session: "Session", run_id: int | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    r = session.get(Run, run_id)
    return {"id": r.id, "kind": r.kind, "status": r.status, "started_at": r.started_at, "ended_at": r.ended_at,
            "package_version": r.package_version, "git_revision": r.git_revision, "host": r.host, "user": r.user,
            "params": r.params, "dependency_versions": r.dependency_versions,
            "inputs": [run_repo.link_dict(link) for link in run_repo.links_of(session, r.id, Direction.INPUT)]}


def _recipe(session: "Session", recipe_id: int | None) -> dict[str, Any] | None:
    if recipe_id is None:
        return None
    r = session.get(XrdRecipe, recipe_id)
    return {"id": r.id, "hash": r.hash, "name": r.name, "radiation": r.radiation, "wavelength": r.wavelength,
            "two_theta": [r.two_theta_min, r.two_theta_max], "merge_tol": r.merge_tol, "params": r.params,
            "code_version": r.code_version}


def _split(session: "Session", split_id: int | None) -> dict[str, Any] | None:
    if split_id is None:
        return None
    s = session.get(Split, split_id)
    return {"id": s.id, "name": s.name, "hash": s.hash, "strategy": s.strategy, "recipe": s.recipe, "seed": s.seed,
            "mode": s.mode, "counts": s.counts, "run_id": s.run_id}


def _dataset(session: "Session", dataset_id: int | None) -> dict[str, Any] | None:
    if dataset_id is None:
        return None
    chain = []
    ds = session.get(Dataset, dataset_id)
    while ds is not None and len(chain) < 100:
        chain.append({"id": ds.id, "name": ds.name, "hash": ds.hash, "n_members": ds.n_members, "split_id": ds.split_id,
                      "fold": ds.fold, "run_id": ds.run_id})
        ds = session.get(Dataset, ds.parent_id) if ds.parent_id else None
    return {**chain[0], "lineage": chain}


def _ingest_runs(session: "Session", ids: list[int]) -> list[dict[str, Any]]:
    return [_run(session, rid) for rid in sorted(structure_repo.writing_run_ids(session, ids))]


def _calculations(session: "Session", run_id: int | None) -> dict[str, Any]:
    """The calculations a train run recorded (``params["calculation_ids"]``) and the files they were read from.

    ``missing_ids``: recorded ids no longer stored; ``without_source``: stored without a source record;
    ``source_files``: one entry per distinct file (path, sha256, database, format, calculations read from it);
    ``files_sha256``: :func:`lines_hash` over the sorted file hashes; ``examples``: the first calculations' records.
    An imported potential's run records none.
    """
    run = session.get(Run, run_id) if run_id is not None else None
    ids = sorted({int(i) for i in ((run.params or {}).get("calculation_ids") or [])}) if run is not None else []
    rows = sources_of_calculations(session, ids)
    files: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["file_hash"] is None:
            continue
        entry = files.setdefault(r["file_hash"], {"file_path": r["file_path"], "file_hash": r["file_hash"],
                                                  "database": r["database"], "format": r["format"], "n_calculations": 0})
        entry["n_calculations"] += 1
    return {"count": len(ids), "ids": ids, "n_stored": len(rows),
            "missing_ids": sorted(set(ids) - {r["calculation_id"] for r in rows}),
            "without_source": sum(r["file_hash"] is None for r in rows), "n_files": len(files),
            "files_sha256": lines_hash(sorted(files)),
            "source_files": sorted(files.values(), key=lambda f: (f["file_path"] or "", f["file_hash"])),
            "examples": [{k: r[k] for k in ("calculation_id", "structure_id", "file_path", "file_hash", "record_locator")}
                         for r in rows[:EXAMPLES]]}


def _source_files(session: "Session", ids: list[int]) -> dict[str, Any]:
    rows, n_sources = structure_repo.source_files(session, ids)
    files_hash = lines_hash(r[0] for r in rows)
    databases: dict[str, int] = {}
    for _, _, database in rows:
        databases[database] = databases.get(database, 0) + 1
    return {"n_files": len(rows), "n_sources": n_sources, "files_sha256": files_hash, "databases": databases,
            "examples": [{"file_path": p, "file_hash": h} for h, p, _ in sorted(rows, key=lambda r: r[1])[:EXAMPLES]]}
