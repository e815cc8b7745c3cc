"""Key-motif data expansion: gap report, surrogate design and selection, labelling, the extended dataset.

``gap_report`` compares the environments of a training and a target dataset (:mod:`xtalbase.mlip.coverage`)
and, given a potential, flags the target's outlier atoms: atoms with a symmetry function outside their
element's training range (the model's min–max, exactly the extrapolation count of ``potential evaluate``;
or a quantile range of the training descriptors with ``quantile=q``, e.g. 0.01 for the 1–99 % range).
``design`` scores surrogate candidates (:mod:`xtalbase.mlip.surrogates`) or a pool of stored structures
under one strategy and keeps the top N. ``expand`` labels them with an oracle (:mod:`xtalbase.mlip.oracles`)
through a labelling folder (:mod:`xtalbase.mlip.labelling`) and stores the child dataset, each added member
with its reason: strategy, score, top motif, generator and parameters, oracle and version.

The energy penalty's ``E_atom`` is ``(E − Σ_e n_e μ_e) / N``: ``E`` from the current potential
(``energy="potential"``, the default when a model is given) or the oracle (``energy="oracle"``), and μ_e
the per-element references of a least-squares fit of the training set's energies to its composition; so
``E_atom > 0`` means above the training set's composition-linear energy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.ml.datasets import DatasetStore
from xtalbase.mlip.coverage import STRATEGIES

if TYPE_CHECKING:
    from ase import Atoms

    from xtalbase.ml.datasets import DatasetHandle
    from xtalbase.mlip.configurations import Configuration
    from xtalbase.mlip.coverage import Environments, Histogram
    from xtalbase.platform.database import Database

#: Cutoff (Å) of the distributions when no potential gives one.
DEFAULT_RC = 6.0
ENERGY_SOURCES = ("potential", "oracle", "none")
#: The random baseline draws candidates with ``E_atom`` below this (eV/atom) when an energy source is set, so
#: that it compares with the other strategies on plausible cells rather than on compressed ones.
RANDOM_MAX_E_ATOM = 0.5


class ExpansionError(XtalbaseError):
    """An expansion request cannot be carried out (the message says which input and why)."""


def dataset_configurations(db: "Database", name: str, *, labelled: bool = False) -> list["Configuration"]:
    """The configurations of dataset ``name`` (with energy and forces when ``labelled``)."""
    from xtalbase.mlip.potentials import selected_configurations

    return selected_configurations(db, dataset=name, require_energy=labelled, require_forces=labelled)[0]


def descriptor_ranges(model: Any, configs: Sequence["Configuration"], quantile: float
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per element, the ``quantile`` and ``1 − quantile`` of each symmetry function over ``configs``."""
    from xtalbase.mlip import acsf

    if not 0.0 <= quantile < 0.5:
        raise ExpansionError(f"quantile {quantile}: give a value in [0, 0.5), e.g. 0.01 for the 1-99 % range")
    values: dict[str, list[np.ndarray]] = {}
    for c in configs:
        desc = acsf.compute(model.recipe, c.numbers, c.positions, c.cell, c.pbc, jacobian=False,
                            what=f"structure {c.structure_id}")
        for element, block in desc.blocks.items():
            values.setdefault(element, []).append(block.values.detach().cpu().numpy())
    out = {}
    for element, blocks in values.items():
        stacked = np.concatenate(blocks)
        out[element] = (np.quantile(stacked, quantile, axis=0), np.quantile(stacked, 1.0 - quantile, axis=0))
    return out


def outlier_masks(model: Any, configs: Sequence["Configuration"],
                  ranges: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> list[np.ndarray]:
    """Per configuration, a boolean mask of its outlier atoms (model min–max, or ``ranges``)."""
    from xtalbase.mlip import acsf
    from xtalbase.mlip.evaluation import outlier_atoms

    out = []
    for c in configs:
        desc = acsf.compute(model.recipe, c.numbers, c.positions, c.cell, c.pbc, jacobian=False,
                            what=f"structure {c.structure_id}")
        if ranges is None:
            out.append(outlier_atoms(model, desc))
            continue
        mask = np.zeros(desc.n_atoms, dtype=bool)
        for element, block in desc.blocks.items():
            if element in ranges:
                lo, hi = ranges[element]
                values = block.values.detach().cpu().numpy()
                mask[block.atoms.cpu().numpy()[((values < lo) | (values > hi)).any(axis=1)]] = True
            else:  # an element the training set lacks is outside any range
                mask[block.atoms.cpu().numpy()] = True
        out.append(mask)
    return out


@dataclass
class GapReport:
    """Gap histograms, the target's environments and outlier atoms, and what they were computed from."""

    train: str
    target: str
    model_id: int | None
    rc: float
    histograms: dict[str, "Histogram"]
    target_envs: list["Environments"]
    outliers: list[np.ndarray]
    outliers_by_element: dict[str, dict[str, int]]
    elements: list[str]
    quantile: float | None = None
    references: dict[str, float] = field(default_factory=dict)
    rc_angle: float | None = None

    def scores(self, strategy: str, seed: int = 0) -> dict[str, np.ndarray]:
        """Motif scores S(m) of ``strategy`` (:func:`xtalbase.mlip.coverage.motif_scores`)."""
        from xtalbase.mlip.coverage import motif_scores

        if strategy in ("key-motif", "outlier") and self.model_id is None:
            raise ExpansionError(f"strategy {strategy!r} needs a potential (--model) to find outlier atoms")
        return motif_scores(self.histograms, self.target_envs, self.outliers, strategy, seed)

    def top(self, strategy: str = "key-motif", n: int = 10, seed: int = 0) -> list[dict[str, Any]]:
        """The ``n`` best motifs under ``strategy``."""
        from xtalbase.mlip.coverage import top_motifs

        return top_motifs(self.scores(strategy, seed), self.histograms, n)

    def to_dict(self, n: int = 10) -> dict[str, Any]:
        """The ``mlip gap --json`` shape: inputs, per-type bins and gap area, top motifs, outliers per element."""
        types = [{"type": k, "kind": h.kind, "bins": len(h.gap), "width": float(np.mean(np.diff(h.edges))),
                  "gap_area": float(np.sum(h.gap * np.diff(h.edges)))} for k, h in sorted(self.histograms.items())]
        strategy = "key-motif" if self.model_id is not None else "gap"
        return {"train": self.train, "target": self.target, "model_id": self.model_id, "rc": self.rc,
                "rc_angle": self.rc_angle,
                "quantile": self.quantile, "types": types, "strategy": strategy, "top_motifs": self.top(strategy, n),
                "outliers": self.outliers_by_element,
                "n_outlier_atoms": int(sum(int(m.sum()) for m in self.outliers))}


def _references(configs: Sequence["Configuration"]) -> dict[str, float]:
    """μ_e: least-squares per-element energies of the labelled ``configs`` (eV/atom)."""
    from xtalbase.mlip.acsf import element_symbols

    labelled = [c for c in configs if c.energy is not None]
    if not labelled:
        return {}
    elements = sorted({str(s) for c in labelled for s in element_symbols(c.numbers)})
    counts = np.array([[np.sum(element_symbols(c.numbers) == e) for e in elements] for c in labelled], dtype=float)
    mu, *_ = np.linalg.lstsq(counts, np.array([c.energy for c in labelled], dtype=float), rcond=None)
    return {e: float(m) for e, m in zip(elements, mu)}


def gap_report(db: "Database", *, train: str, target: str, model_id: int | str | None = None, rc: float | None = None,
               quantile: float | None = None, angles: bool = True, rc_angle: float | None = None) -> GapReport:
    """The coverage gap of dataset ``target`` against dataset ``train`` (see the module docstring)."""
    from xtalbase.mlip.acsf import element_symbols
    from xtalbase.mlip.coverage import angle_cutoff, coverage_gap, local_environments, pooled_environments
    from xtalbase.mlip.potentials import load_potential

    train_cfgs = dataset_configurations(db, train)
    target_cfgs = dataset_configurations(db, target)
    model = load_potential(db, model_id) if model_id is not None else None
    if rc is None:
        rc = max(f.rc for f in model.recipe.functions) if model is not None else DEFAULT_RC
    rc_angle = angle_cutoff(rc, rc_angle)
    target_envs = [local_environments(c.numbers, c.positions, c.cell, c.pbc, rc, angles, rc_angle) for c in target_cfgs]
    pooled_target = pooled_environments(target_cfgs, rc, angles, rc_angle)
    histograms = coverage_gap(pooled_environments(train_cfgs, rc, angles, rc_angle), pooled_target)
    if model is not None:
        ranges = descriptor_ranges(model, train_cfgs, quantile) if quantile is not None else None
        outliers = outlier_masks(model, target_cfgs, ranges)
    else:
        outliers = [np.zeros(len(c.numbers), dtype=bool) for c in target_cfgs]
    by_element: dict[str, dict[str, int]] = {}
    for c, mask in zip(target_cfgs, outliers):
        for symbol, flag in zip(element_symbols(c.numbers), mask):
            row = by_element.setdefault(str(symbol), {"atoms": 0, "outliers": 0})
            row["atoms"] += 1
            row["outliers"] += int(flag)
    elements = sorted({str(s) for c in [*train_cfgs, *target_cfgs] for s in element_symbols(c.numbers)})
    return GapReport(train=train, target=target, model_id=None if model is None else int(model_id),  # type: ignore[arg-type]
                     rc=float(rc), histograms=histograms, target_envs=target_envs, outliers=outliers,
                     outliers_by_element=by_element, elements=elements, quantile=quantile,
                     references=_references(train_cfgs), rc_angle=rc_angle)


@dataclass
class Selected:
    """One chosen surrogate: its ``key`` in the labelling folder, structure, score, top motif, generator."""

    key: str
    atoms: "Atoms"
    score: float
    top_motif: str | None
    generator: dict[str, Any]
    label: str


def top_motif_of(atoms: "Atoms", report: GapReport, scores: dict[str, np.ndarray]) -> str | None:
    """The motif (type and bin) contributing most to ``atoms``' score, as text."""
    from xtalbase.mlip.coverage import local_environments

    env = local_environments(atoms.numbers, atoms.positions, np.asarray(atoms.cell), atoms.pbc, report.rc, True,
                             report.rc_angle)
    best: tuple[float, str] | None = None
    for key, values in env.values.items():
        hist = report.histograms.get(key)
        if hist is None:
            continue
        contribution = np.histogram(values, bins=hist.edges)[0] * scores[key]
        m = int(np.argmax(contribution))
        if contribution[m] > 0 and (best is None or contribution[m] > best[0]):
            unit = "Å" if hist.kind == "pair" else "°"
            best = (float(contribution[m]),
                    f"{key} {hist.edges[m]:.2f}–{hist.edges[m + 1]:.2f} {unit} (S = {scores[key][m]:.3g})")
    return None if best is None else best[1]


def energy_function(source: str, report: GapReport, *, model: Any = None, oracle: Any = None,
                    calculator: Any = None) -> Callable[["Atoms"], float] | None:
    """``E_atom(atoms)`` for the energy penalty from ``source`` (``potential``, ``oracle`` or ``none``)."""
    if source not in ENERGY_SOURCES:
        raise ExpansionError(f"energy source {source!r}: choose one of {', '.join(ENERGY_SOURCES)}")
    if source == "none":
        return None
    if not report.references:
        raise ExpansionError(f"the energy penalty needs labelled training structures in {report.train!r}")
    if source == "potential":
        if model is None:
            raise ExpansionError("energy source 'potential' needs a model (--model) or use --energy none")
        from xtalbase.mlip.calculator import Calculator

        calc = Calculator(model)
    else:
        if oracle is None or not oracle.is_calculator:
            raise ExpansionError("energy source 'oracle' needs an in-process oracle (emt or chgnet)")
        calc = calculator if calculator is not None else oracle.calculator()
    mu = report.references

    def e_atom(atoms: "Atoms") -> float:
        symbols = atoms.get_chemical_symbols()
        if any(s not in mu for s in symbols):
            return 0.0  # no reference for an element the training set lacks: no penalty rather than a guess
        work = atoms.copy()
        work.calc = calc
        return (float(work.get_potential_energy()) - sum(mu[s] for s in symbols)) / len(work)
    return e_atom


def design(report: GapReport, strategy: str, n: int, *, seed: int = 0, elements: Sequence[str] | None = None,
           prototypes: Sequence[str] | None = None, templates: Sequence[Any] = (), pool: Sequence["Atoms"] | None = None,
           energy: Callable[["Atoms"], float] | None = None, candidate_options: dict[str, Any] | None = None,
           diverse: bool = False) -> list[Selected]:
    """The ``n`` best surrogates under ``strategy``: from the prototype generators (default) or a ``pool``.

    ``random`` draws ``n`` candidates uniformly (seeded) among those with a small distance penalty and, with an
    energy source, ``E_atom`` below :data:`RANDOM_MAX_E_ATOM`, rather than ranking random motif scores: the
    study's random baseline. ``diverse`` picks greedily instead of taking the top N at once: after each pick
    the motifs (bins) the picked structure holds score zero, so the next pick must bring other motifs.
    """
    from xtalbase.mlip import surrogates

    if strategy not in STRATEGIES:
        raise ExpansionError(f"strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise ExpansionError(f"n = {n}: give at least one structure to add")
    scores = report.scores("gap" if strategy == "random" else strategy, seed)
    rng = np.random.default_rng(seed)
    random = strategy == "random"
    rounds = n if diverse and not random else 1
    picked: list[tuple[int, float, dict[str, np.ndarray]]] = []
    if pool is not None:
        table = surrogates.pool_table(pool, report.histograms, report.rc, report.rc_angle)
        current = scores
        for _ in range(rounds):
            values = table.scores(current)
            taken = {i for i, _, _ in picked}
            order = [i for i in _order(values, strategy, rng) if i not in taken][:n - len(picked) if rounds == 1 else 1]
            picked += [(i, float(values[i]), current) for i in order]
            if not order:
                break
            current = _covered(current, table.counts[order[-1]])
        return [Selected(key=f"c{k:03d}", atoms=pool[i], score=value, top_motif=top_motif_of(pool[i], report, used),
                         generator={"pool": pool[i].info.get("structure_id", int(i))},
                         label=f"pool structure {pool[i].info.get('structure_id', int(i))}")
                for k, (i, value, used) in enumerate(picked)]
    cands = surrogates.enumerate_candidates(list(elements or report.elements), prototypes=prototypes, templates=templates,
                                            seed=seed, **(candidate_options or {}))
    energy = _cached(energy) if energy is not None else None
    current = scores
    for _ in range(rounds):
        values = surrogates.score_candidates(cands, current, report.histograms, report.rc, rc_angle=report.rc_angle,
                                             energy=None if random else energy, energy_top=max(2 * n, 10))
        taken = [i for i, _, _ in picked]
        # the random baseline draws plausible cells, not compressed ones
        order = _first_distinct([i for i in _order(values, strategy, rng) if i not in taken], cands,
                                n - len(picked) if rounds == 1 else 1, energy if random else None, exclude=taken)
        picked += [(i, float(values[i]), current) for i in order]
        if not order:
            break
        current = _covered(current, _bin_counts(cands[order[-1]].build(), report))
    out = []
    for k, (i, value, used) in enumerate(picked):
        atoms = cands[i].build()
        out.append(Selected(key=f"c{k:03d}", atoms=atoms, score=value, top_motif=top_motif_of(atoms, report, used),
                            generator=cands[i].params(), label=cands[i].label()))
    return out


def _cached(energy: Callable[["Atoms"], float]) -> Callable[["Atoms"], float]:
    """``energy`` remembered per cell (the diverse rounds rescore the same candidates)."""
    memo: dict[tuple, float] = {}

    def cached(atoms: "Atoms") -> float:
        key = (tuple(atoms.numbers), np.round(atoms.cell.array, 10).tobytes(), np.round(atoms.positions, 10).tobytes())
        if key not in memo:
            memo[key] = energy(atoms)
        return memo[key]
    return cached


def _bin_counts(atoms: "Atoms", report: GapReport) -> dict[str, np.ndarray]:
    """Counts per bin of each type in ``atoms`` (the motifs it holds)."""
    from xtalbase.mlip.surrogates import pool_table

    return pool_table([atoms], report.histograms, report.rc, report.rc_angle).counts[0]


def _covered(scores: dict[str, np.ndarray], counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``scores`` with the bins ``counts`` populates set to zero."""
    out = dict(scores)
    for key, c in counts.items():
        if key in out:
            out[key] = np.where(c > 0, 0.0, out[key])
    return out


def _first_distinct(order: Sequence[int], cands: Sequence[Any], n: int,
                    energy: Callable[["Atoms"], float] | None = None, budget: int = 500,
                    exclude: Sequence[int] = ()) -> list[int]:
    """The first ``n`` of ``order`` that build a cell no earlier one built (sublattices a prototype's symmetry makes
    equivalent, e.g. Y and Z of a Heusler X₂YZ, give equal cells and equal scores) and, with ``energy``, whose
    ``E_atom`` is below :data:`RANDOM_MAX_E_ATOM` (at most ``budget`` energy calls)."""
    seen = {_cell_key(cands[i]) for i in exclude}
    out: list[int] = []
    calls = 0
    for i in order:
        if len(out) == n or calls >= budget:
            break
        atoms = cands[i].build()
        key = _cell_key(cands[i], atoms)
        if key in seen:
            continue
        seen.add(key)
        if energy is not None:
            calls += 1
            if energy(atoms) >= RANDOM_MAX_E_ATOM:
                continue
        out.append(i)
    return out


def _cell_key(cand: Any, atoms: "Atoms | None" = None) -> tuple:
    """What makes two candidates the same crystal: structure type (the ingest canonical hash: space group and
    Wyckoff occupation), reduced formula and volume per atom. Different generators give one crystal (bcc Al, CsCl
    Al–Al and Heusler Al–Al–Al at twice the a are one cell), and so do sublattices a symmetry swaps."""
    from xtalbase.ingest.identity import canonical_hash, symmetry

    atoms = atoms if atoms is not None else cand.build()
    labels = atoms.get_chemical_symbols()
    sym = symmetry(np.asarray(atoms.cell), atoms.get_scaled_positions(), labels)
    return (canonical_hash(labels, sym), atoms.get_chemical_formula(empirical=True),
            round(atoms.get_volume() / len(atoms), 3))


def _order(values: np.ndarray, strategy: str, rng: np.random.Generator) -> list[int]:
    """Indices by descending score (positive, finite ones), or a seeded draw of physical ones for ``random``."""
    if strategy == "random":
        usable = np.flatnonzero(np.isfinite(values) & (values > -1.0))  # physical: small distance penalty
        return [int(i) for i in rng.permutation(usable)]
    order = np.argsort(-values, kind="stable")
    return [int(i) for i in order if np.isfinite(values[i]) and values[i] > 0]


def reason_of(strategy: str, item: Selected, oracle: str, version: str | None) -> str:
    """The text stored with an added dataset member."""
    motif = f"; top motif {item.top_motif}" if item.top_motif else ""
    return (f"{strategy}: score {item.score:.4g}{motif}; generator {item.label}; "
            f"labelled by {oracle}{' ' + version if version else ''}")


@dataclass
class ExpansionReport:
    """What :func:`expand` did: the new dataset (None while a ``files`` oracle awaits labels) and the folder."""

    folder: Path
    selected: list[Selected]
    dataset: "DatasetHandle | None"
    oracle: str
    #: candidate key -> the structure id it was labelled and stored as (empty while labels are awaited)
    structure_ids: dict[str, int] = field(default_factory=dict)


def expand(db: "Database", *, train: str, target: str, strategy: str, n: int, oracle: str, out: str | Path, name: str,
           model_id: int | str | None = None, seed: int = 0, quantile: float | None = None, energy: str | None = None,
           prototypes: Sequence[str] | None = None, template_ids: Sequence[int] = (), pool: str | None = None,
           report: GapReport | None = None, candidate_options: dict[str, Any] | None = None,
           device: str = "cpu", diverse: bool = False) -> ExpansionReport:
    """Gap report → design → labelling folder → oracle labels → child dataset ``name`` of ``train``.

    ``pool`` names a dataset whose structures are the candidates (a retrospective study; their stored
    labels are used, no oracle is called). With ``oracle="files"`` the folder is written and the dataset is
    created later by :func:`finish` once the DFT outputs are in it.
    """
    from xtalbase.mlip import labelling, oracles
    from xtalbase.mlip.potentials import load_potential

    if name in DatasetStore(db):
        raise ExpansionError(f"dataset {name!r} already exists; datasets are immutable: choose a new --name")
    the_oracle = oracles.get_oracle(oracle)
    report = report or gap_report(db, train=train, target=target, model_id=model_id, quantile=quantile)
    model = load_potential(db, model_id) if model_id is not None else None
    source = energy or ("oracle" if the_oracle.is_calculator else "potential" if model is not None else "none")
    templates = _templates(db, template_ids)
    if pool is not None:
        pool_atoms = [c.to_ase() for c in dataset_configurations(db, pool, labelled=True)]
        train_ids = set(DatasetStore(db).get(train).ids())
        pool_atoms = [a for a in pool_atoms if a.info["structure_id"] not in train_ids]
        selected = design(report, strategy, n, seed=seed, pool=pool_atoms, diverse=diverse)
    else:
        calc = the_oracle.calculator(device) if the_oracle.is_calculator else None
        e_fn = energy_function(source, report, model=model, oracle=the_oracle, calculator=calc)
        selected = design(report, strategy, n, seed=seed, prototypes=prototypes, templates=templates, energy=e_fn,
                          candidate_options=candidate_options, diverse=diverse)
    if not selected:
        raise ExpansionError(f"strategy {strategy!r} found no candidate with a positive score "
                             f"(the target {target!r} may hold no environment the training set lacks)")
    version = the_oracle.version() if pool is None else None
    label_by = f"stored labels of {pool}" if pool is not None else the_oracle.name
    how = f"{strategy} (diverse)" if diverse and strategy != "random" else strategy
    entries = [{"key": s.key, "reason": reason_of(how, s, label_by, version), "score": s.score,
                "top_motif": s.top_motif, "generator": s.generator, "formula": s.atoms.get_chemical_formula()}
               for s in selected]
    manifest = {"parent": train, "name": name, "target": target, "strategy": how, "seed": seed, "n": n,
                "oracle": label_by, "oracle_version": version, "model_id": report.model_id, "quantile": quantile,
                "energy_source": source if pool is None else "none"}
    if pool is not None:
        dataset = DatasetStore(db).extend(train, name, ids=[int(s.atoms.info["structure_id"]) for s in selected],
                                     reason={int(s.atoms.info["structure_id"]): e["reason"] for s, e in zip(selected, entries)},
                                     score={int(s.atoms.info["structure_id"]): s.score for s in selected},
                                     description=f"{strategy} selection of {len(selected)} from pool {pool}")
        return ExpansionReport(folder=Path(out), selected=selected, dataset=dataset, oracle=label_by,
                               structure_ids={s.key: int(s.atoms.info["structure_id"]) for s in selected})
    folder = labelling.export(out, [s.atoms for s in selected], entries, manifest)
    if not the_oracle.is_calculator:
        return ExpansionReport(folder=folder, selected=selected, dataset=None, oracle=oracle)
    inputs = []
    for s in selected:
        atoms = s.atoms.copy()
        atoms.info["candidate"] = s.key
        inputs.append(atoms)
    labelling.write_labels(folder, oracles.label(the_oracle, inputs, device=device, calculator=calc))
    dataset, ids = _finish(db, folder, partial=False)
    return ExpansionReport(folder=folder, selected=selected, dataset=dataset, oracle=oracle, structure_ids=ids)


def finish(db: "Database", folder: str | Path, *, partial: bool = False) -> "DatasetHandle":
    """Ingest the labels in a labelling folder and create the child dataset its manifest names.

    ``partial`` creates it from the candidates labelled so far and leaves the others out (listed in the
    dataset's description); by default a candidate without a usable output is an error naming it.
    """
    return _finish(db, folder, partial=partial)[0]


def _finish(db: "Database", folder: str | Path, *, partial: bool) -> tuple["DatasetHandle", dict[str, int]]:
    from xtalbase.mlip import labelling

    manifest = labelling.read_manifest(folder)
    collected = labelling.collect(db, folder, partial=partial)
    if not collected.structure_ids:
        raise ExpansionError(f"{folder}: no candidate is labelled yet")
    entries = {str(e["key"]): e for e in manifest["candidates"]}
    reasons: dict[int, str] = {}
    scores: dict[int, float] = {}
    for key, sid in collected.structure_ids.items():
        entry = entries[key]
        text = f"{entry['reason']}; candidate {key} ({Path(collected.files[key]).name})"
        reasons[sid] = f"{reasons[sid]} | {text}" if sid in reasons else text
        scores[sid] = max(scores.get(sid, -np.inf), float(entry["score"]))
    description = (f"{manifest['strategy']} expansion of {manifest['parent']} towards {manifest['target']}: "
                   f"{len(collected.structure_ids)} surrogates labelled by {manifest['oracle']}; folder {Path(folder).resolve()}")
    if collected.missing:
        description += f"; left out (not labelled): {', '.join(sorted(collected.missing))}"
    handle = DatasetStore(db).extend(manifest["parent"], manifest["name"], ids=sorted(reasons), reason=reasons,
                                     score=scores, description=description)
    return handle, collected.structure_ids


def _templates(db: "Database", structure_ids: Sequence[int]) -> list[Any]:
    """Stored structures as surrogate generators."""
    from xtalbase.mlip.configurations import load_configurations
    from xtalbase.mlip.surrogates import template_prototype

    if not structure_ids:
        return []
    with db.session() as s:
        configs = load_configurations(s, [int(i) for i in structure_ids], require_energy=False, what="template structures")
    return [template_prototype(f"template:{c.structure_id}", c.to_ase()) for c in configs]


def plot_gap(report: GapReport, folder: str | Path, *, max_types: int = 12) -> list[Path]:
    """RDF and ADF panels (training vs target fractions per bin, the gap shaded) of the types with the most gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, unit in (("pair", "distance (Å)"), ("triplet", "angle (°)")):
        hists = sorted((h for h in report.histograms.values() if h.kind == kind),
                       key=lambda h: -float(np.sum(h.gap)))[:max_types]
        if not hists:
            continue
        cols = min(3, len(hists))
        rows = (len(hists) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
        for ax, h in zip(axes.ravel(), hists):
            centres = 0.5 * (h.edges[1:] + h.edges[:-1])
            ax.step(centres, h.train, where="mid", label="train")
            ax.step(centres, h.target, where="mid", label="target")
            ax.fill_between(centres, h.train, h.train + h.gap, step="mid", alpha=0.3, color="red", label="gap")
            ax.set_title(h.key)
            ax.set_xlabel(unit)
        for ax in axes.ravel()[len(hists):]:
            ax.axis("off")
        axes.ravel()[0].legend()
        fig.tight_layout()
        path = folder / ("rdf_gap.png" if kind == "pair" else "adf_gap.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
