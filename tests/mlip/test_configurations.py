"""MLIP training data: configurations loaded from ingested DFT files, checked against the files read independently.

Real data: the mlearn Mo test set (23 VASP configurations, stress in kBar) and the flare SiC extxyz frames
(stress in eV/Å³), both from ``../shared/data``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import shared
from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.mlip.configurations import (
    calculation_sources,
    choose_calculation,
    load_configurations,
    select_structure_ids,
    training_set_hash,
)

#: 1 eV/Å³ in kBar (160.21766208 GPa, the CODATA 2014 value ASE uses).
KBAR_PER_EV_A3 = 1602.1766208


@pytest.fixture
def mo(db):
    """The mlearn Mo test set ingested, and its JSON entries read with ``json``."""
    path = shared("mlip", "mlearn", "Mo", "test.json")
    report = db.ingest([path])
    assert report.inserted == 23 and report.quarantined == 0, report
    return db, json.loads(path.read_text()), str(path)


def _load(db, ids=None, **options):
    with db.session() as s:
        return load_configurations(s, db.query().ids() if ids is None else ids, **options)


def _entries(db, configs, entries):
    """The JSON entry each configuration was read from, found through its calculation's source record."""
    with db.session() as s:
        sources = calculation_sources(s, [c.calculation_id for c in configs])
    index = {r["calculation_id"]: int(r["record_locator"].removeprefix("index=")) for r in sources}
    return [entries[index[c.calculation_id]] for c in configs]


def _vasp_6_to_3x3(six):
    """The data set's 6-vector (xx, yy, zz, xy, yz, zx: VASP's order, as mlearn's own code reads it) as 3x3."""
    xx, yy, zz, xy, yz, zx = six
    return np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]], dtype=float)


def _add(db, structure_id, *, energy=-1.0, forces=True, converged=None, stress=None, stress_unit=None,
         energy_unit="eV", forces_unit="eV/Å", parameters=None) -> int:
    """A calculation row written directly, as another reader or a rerun would leave it; its id."""
    from xtalbase.schema import Calculation, Structure
    from xtalbase.schema.arrays import pack

    with db.session() as s:
        n_atoms = s.get(Structure, structure_id).nsites
        calc = Calculation(structure_id=structure_id, code="test", energy=energy, converged=converged,
                           forces=None if forces is False else pack(np.full((n_atoms, 3), 0.5) if forces is True else forces),
                           stress=None if stress is None else pack(np.asarray(stress, dtype=float)), stress_unit=stress_unit,
                           energy_unit=energy_unit, forces_unit=forces_unit, parameters=parameters or {})
        s.add(calc)
        s.commit()
        return calc.id


# --------------------------------------------------------------------------- real data, units and signs


def test_mlearn_mo_loads_each_entry_with_its_labels_in_ase_units(mo):
    db, entries, path = mo
    configs = _load(db)
    assert len(configs) == 23 and configs.skipped_ids == []
    for config, entry in zip(configs, _entries(db, configs, entries)):
        n = len(entry["structure"]["sites"])
        assert config.n_atoms == n == entry["num_atoms"] and set(config.numbers.tolist()) == {42}
        lattice = np.array(entry["structure"]["lattice"]["matrix"])
        assert np.allclose(config.cell, lattice, atol=1e-12)
        # stored fractional coordinates may be wrapped into the cell: compare modulo a lattice vector
        frac = np.linalg.solve(lattice.T, config.positions.T).T
        delta = frac - np.array([site["abc"] for site in entry["structure"]["sites"]])
        assert np.allclose(delta, np.round(delta), atol=1e-9)
        assert config.energy == entry["outputs"]["energy"]
        assert config.energy_per_atom == pytest.approx(entry["outputs"]["energy"] / n)
        assert np.array_equal(config.forces, np.array(entry["outputs"]["forces"]))
        # kBar in VASP's sign (positive = compressive) -> eV/Å³ in ASE's (positive = tensile): the sign flips
        expected = -_vasp_6_to_3x3(entry["outputs"]["virial_stress"]) / KBAR_PER_EV_A3
        assert np.allclose(config.stress, expected, rtol=1e-12, atol=1e-15)
        assert config.group == entry["group"] and config.source_file == path
        assert config.pbc == (True, True, True) and not config.forces.flags.writeable
    groups = [c.group for c in configs]
    assert {g: groups.count(g) for g in set(groups)} == {"AIMD-NVT": 12, "Elastic": 6, "Vacancy": 3, "Surface": 2}


def test_kbar_data_is_in_vasp_sign_checked_against_the_energy_of_strained_cells(mo):
    # Which sign does the file's kBar use? Mo cells stretched along x by 4 % and 6 % (Elastic mode 1): the
    # energy rises with the strain, so the cell pulls back: tension, positive in ASE's convention. The
    # file's xx values are negative (-161 and -226 kBar), so the data are in VASP's sign (positive =
    # compressive), and the loader must flip them. With ASE's sign, sigma_xx = (dE/d strain) / V0 (V0 the
    # unstrained volume): the finite difference of the two energies and the loaded stress at the midpoint agree.
    db, entries, _ = mo
    configs = _load(db)
    by_strain = {}
    for config, entry in zip(configs, _entries(db, configs, entries)):
        found = re.search(r"mode 1, strain (\S+)", entry["description"])
        if found:
            by_strain[float(found[1])] = (config, entry)
    low, high = by_strain[0.04], by_strain[0.06]
    assert low[1]["outputs"]["virial_stress"][0] < 0 and high[1]["outputs"]["virial_stress"][0] < 0
    v0 = abs(np.linalg.det(low[0].cell)) / 1.04
    from_energy = (high[0].energy - low[0].energy) / 0.02 / v0
    loaded = (low[0].stress[0, 0] + high[0].stress[0, 0]) / 2
    assert from_energy > 0.05 and loaded > 0.05  # tensile, about 19 GPa
    assert loaded == pytest.approx(from_energy, rel=0.05)
    assert high[0].to_ase().get_stress()[0] == pytest.approx(high[0].stress[0, 0])  # ASE reads the same value


def test_extxyz_stress_in_ev_per_cubic_angstrom_is_kept_as_ase_reads_it(db):
    from ase.io import read

    path = shared("extxyz", "sic_dft.xyz")
    assert db.ingest([path]).inserted == 8
    configs = _load(db, require_forces=True)
    frames = read(path, index=":")
    with db.session() as s:
        sources = calculation_sources(s, [c.calculation_id for c in configs])
    assert [r["sha256"] for r in sources] == [sources[0]["sha256"]] * 8 and sources[0]["format"] == "extxyz"
    frame_of = {r["calculation_id"]: int(r["record_locator"].removeprefix("frame=")) for r in sources}
    for config in configs:
        atoms = frames[frame_of[config.calculation_id]]
        assert np.array_equal(config.stress, atoms.get_stress(voigt=False))  # eV/Å³, ASE sign: unchanged
        assert np.array_equal(config.forces, atoms.get_forces())
        assert config.energy == atoms.get_potential_energy() and config.group is None


@pytest.mark.parametrize("unit, factor", [("kBar", -1 / KBAR_PER_EV_A3), ("kB", -1 / KBAR_PER_EV_A3),
                                          ("eV/Å^3", 1.0), ("eV/A^3", 1.0), ("GPa", 1 / 160.21766208)])
def test_each_stored_stress_unit_converts_to_ase(mo, unit, factor):
    db, _, _ = mo
    sid = db.query().ids()[0]
    tensor = np.array([[1.0, 0.5, 0.25], [0.5, 2.0, 0.125], [0.25, 0.125, 3.0]])
    calc = _add(db, sid, energy=-100.0, stress=tensor, stress_unit=unit)
    (config,) = _load(db, [sid])
    assert config.calculation_id == calc and np.allclose(config.stress, tensor * factor, rtol=1e-12)


@pytest.mark.parametrize("field, unit", [("stress_unit", "atm"), ("stress_unit", None), ("energy_unit", "Ry"),
                                         ("forces_unit", "eV/bohr")])
def test_an_unknown_unit_names_structure_calculation_and_unit(mo, field, unit):
    db, _, _ = mo
    sid = db.query().ids()[0]
    units = {"stress_unit": "kBar", "energy_unit": "eV", "forces_unit": "eV/Å", field: unit}
    calc = _add(db, sid, energy=-100.0, stress=np.eye(3), **units)
    with pytest.raises(XtalbaseError, match=rf"structure {sid}, calculation {calc}: \w+ in unit {re.escape(repr(unit))}"):
        _load(db, [sid])


def test_a_non_finite_force_names_the_record(mo):
    db, _, _ = mo
    sid = db.query().ids()[0]
    forces = np.zeros((_load(db, [sid])[0].n_atoms, 3))
    forces[3, 1] = np.inf
    calc = _add(db, sid, energy=-100.0, forces=forces)
    with pytest.raises(XtalbaseError, match=rf"structure {sid}, calculation {calc}: forces hold a non-finite value \(inf\)"):
        _load(db, [sid])


# --------------------------------------------------------------------------- which calculation


def test_a_calculation_with_forces_beats_a_newer_one_without(mo):
    db, _, _ = mo
    sid = db.query().ids()[0]
    with_forces = _add(db, sid, energy=-1.0, converged=True)
    _add(db, sid, energy=-2.0, forces=False, converged=True)
    (config,) = _load(db, [sid])
    assert config.calculation_id == with_forces and config.energy == -1.0


def test_a_calculation_not_marked_unconverged_beats_a_newer_unconverged_one(mo):
    db, _, _ = mo
    sid = db.query().ids()[0]
    unknown = _add(db, sid, energy=-1.0, converged=None)  # unknown counts as converged
    _add(db, sid, energy=-2.0, converged=False)
    assert _load(db, [sid])[0].calculation_id == unknown


def test_the_newest_wins_among_equals(mo):
    db, _, _ = mo
    sid = db.query().ids()[0]
    _add(db, sid, energy=-1.0, converged=True)
    newest = _add(db, sid, energy=-2.0, converged=True)
    assert _load(db, [sid])[0].calculation_id == newest


@pytest.mark.parametrize("energy", [None, float("nan")])  # SQLite keeps NaN as NULL, PostgreSQL as NaN
def test_a_calculation_without_a_finite_energy_is_never_chosen(mo, energy):
    db, _, _ = mo
    sid = db.query().ids()[0]
    stored = _load(db, [sid])[0].calculation_id
    _add(db, sid, energy=energy, converged=True)
    assert _load(db, [sid])[0].calculation_id == stored


def test_the_rule_on_plain_rows():
    from types import SimpleNamespace as Row

    rows = [Row(id=1, energy=-1.0, forces=b"f", converged=False), Row(id=2, energy=-1.0, forces=None, converged=True),
            Row(id=3, energy=float("inf"), forces=b"f", converged=True)]
    assert choose_calculation(rows).id == 1
    assert choose_calculation(rows[1:2], require_forces=True) is None
    assert choose_calculation(rows[2:], require_energy=False).id == 3
    assert choose_calculation([]) is None


# --------------------------------------------------------------------------- missing labels, order, identity


def _drop_calculations(db, structure_ids):
    from sqlalchemy import delete

    from xtalbase.schema import Calculation

    with db.session() as s:
        s.execute(delete(Calculation).where(Calculation.structure_id.in_(structure_ids)))
        s.commit()


def test_structures_without_a_usable_calculation_are_named_or_skipped(mo):
    db, _, _ = mo
    ids = db.query().ids()
    bare = sorted(ids[:2])
    _drop_calculations(db, bare)
    with pytest.raises(XtalbaseError, match=rf"2 of 23 fold 'train' have no calculation with a finite energy "
                                            rf"\(e\.g\. structures {bare[0]}, {bare[1]}\)"):
        _load(db, what="fold 'train'")
    kept = _load(db, skip_missing=True)
    assert len(kept) == 21 and kept.skipped_ids == bare
    unlabelled = {c.structure_id: c for c in _load(db, require_energy=False)}
    assert len(unlabelled) == 23
    for sid in bare:
        config = unlabelled[sid]
        assert config.calculation_id is None and config.energy is None and config.energy_per_atom is None
        assert config.to_ase().calc is None and config.to_ase().info["structure_id"] == sid
    with pytest.raises(XtalbaseError, match="have no calculation with a finite energy and forces"):
        _load(db, require_forces=True)
    with pytest.raises(NotFound, match=r"1 of the requested structures are not stored \(e\.g\. structure 999999\)"):
        _load(db, ids + [999999])


def test_order_is_by_exact_hash_whatever_the_order_asked(mo):
    db, _, _ = mo
    ids = db.query().ids()
    first = _load(db, ids)
    again = _load(db, list(reversed(ids)) + ids[:3])
    hashes = [c.exact_hash for c in first]
    assert hashes == sorted(hashes) and [c.structure_id for c in again] == [c.structure_id for c in first]


def test_training_set_hash_follows_the_chosen_labels(mo):
    db, _, _ = mo
    configs = _load(db)
    digest = training_set_hash(configs)
    assert digest == training_set_hash(reversed(configs)) and len(digest) == 64
    assert training_set_hash(configs[:-1]) != digest
    _add(db, configs[0].structure_id, energy=configs[0].energy + 1e-6)  # a newer rerun
    relabelled = _load(db)
    assert [c.exact_hash for c in relabelled] == [c.exact_hash for c in configs]
    assert training_set_hash(relabelled) != digest


def test_labels_hash_encoding_is_frozen():
    import hashlib

    from xtalbase.platform import hashing

    forces = np.array([[0.5, -1.0, 0.0]]).astype("<f8").tobytes()
    expected = b"energy=-1.5\nforces=24:" + forces + b"\nstress=-\n"
    assert hashing.labels_hash(-1.5, forces, None) == hashlib.sha256(expected).hexdigest()
    assert hashing.labels_hash(-1.5, None, forces) != hashing.labels_hash(-1.5, forces, None)
    pairs = [("h2", "l2"), ("h1", "l1")]
    assert hashing.labelled_set_hash(pairs) == hashlib.sha256(b"h1\tl1\nh2\tl2\n").hexdigest()


def test_calculation_sources_name_the_file_and_its_hash(mo):
    from xtalbase.platform.hashing import file_sha256

    db, _, path = mo
    configs = _load(db)
    with db.session() as s:
        sources = calculation_sources(s, [c.calculation_id for c in configs])
        assert [r["calculation_id"] for r in sources] == sorted(c.calculation_id for c in configs)
        assert {r["file_path"] for r in sources} == {path} and {r["sha256"] for r in sources} == {file_sha256(path)}
        assert sorted(r["record_locator"] for r in sources) == sorted(f"index={i}" for i in range(23))
        with pytest.raises(NotFound, match=r"1 calculation ids are not stored \(e\.g\. calculation 999999\)"):
            calculation_sources(s, [configs[0].calculation_id, 999999])
    hand_made = _add(db, configs[0].structure_id)
    with db.session() as s:
        (row,) = calculation_sources(s, [hand_made])
    assert row["source_id"] is None and row["file_path"] is None and row["sha256"] is None


# --------------------------------------------------------------------------- selecting structures


def test_select_structure_ids_by_split_dataset_or_filter(mo):
    db, _, _ = mo
    db.splits.create("mo", strategy="random", fractions=(0.8, 0.2))
    split = db.splits.get("mo")
    ids, info = select_structure_ids(db, split="mo", fold="test")
    assert ids == sorted(split.ids("test")) and info == {"split": "mo", "split_hash": split.id, "fold": "test",
                                                         "what": "structures of fold 'test' of split 'mo'", "count": len(ids)}
    db.datasets.create("mo-train", split="mo", fold="train")
    ids, info = select_structure_ids(db, dataset="mo-train")
    assert ids == sorted(split.ids("train")) and info["dataset"] == "mo-train" and len(info["dataset_hash"]) == 64
    ids, info = select_structure_ids(db, filter="nsites=53")
    assert len(ids) == 3 and info == {"filter": "nsites=53", "what": "structures matching 'nsites=53'", "count": 3}
    assert {c.group for c in _load(db, ids)} == {"Vacancy"}
    with pytest.raises(XtalbaseError, match="give exactly one of split, dataset or filter"):
        select_structure_ids(db, split="mo", filter="nsites=53")
    with pytest.raises(XtalbaseError, match=r"got none"):
        select_structure_ids(db)
    with pytest.raises(NotFound, match="split 'mo' has no fold 'tran'; its folds are train, test"):
        select_structure_ids(db, split="mo", fold="tran")
