"""Predictions made elsewhere, read into ``{(structure id, sample): structure}`` for a CSP run.

Formats (:func:`read_predictions` picks by what ``path`` is):

- **folder** of structure files named ``<material_id>__<sample>.<ext>`` (CIF, POSCAR/``.vasp``, extxyz; read by ASE);
- **CSV** with columns ``material_id, sample, cif``;
- **JSON** interchange ``{"format": "xtalbase-csp-samples/v1", "samples": [{"material_id", "sample", "lattice"
  (3×3 Å, rows are vectors), "species" (symbols or atomic numbers), "frac_coords"}]}``;
- **npz** interchange (read with ``allow_pickle=False``): ``material_id`` (S,) text, ``sample`` (S,), ``num_atoms``
  (S,), ``lattice`` (S, 3, 3), ``atomic_numbers`` (Σ num_atoms,), ``frac_coords`` (Σ num_atoms, 3);
- **CDVAE/DiffCSP** ``eval_recon.pt``/``eval_diff.pt``: a pickle, so read only with ``trust_pickle=True`` (loading it
  runs whatever code it holds). Its crystals carry no ids: crystal i is the i-th row of the test CSV it was made
  from (``order``: the material ids in that order), and every row's atoms must equal its target's, or nothing is read.

``material_id`` is matched to a target by its source id (e.g. Perov-5's ``material_id``) or its structure id.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xtalbase.csp.tasks import CspTask, Target
from xtalbase.errors import XtalbaseError
from xtalbase.platform.convert import StructureArrays

FORMAT = "xtalbase-csp-samples/v1"
PICKLE_WARNING = ("loading {path} with pickle: it can run any code it contains; only do this for files you made or "
                  "trust (prefer the npz/JSON interchange: `xtalbase csp import --help`)")
_NAME = re.compile(r"^(?P<id>.+)__(?P<sample>\d+)$")


class PredictionsError(XtalbaseError):
    """Predictions that cannot be read or do not fit the task; the message names the record and the reason."""


def _target(names: dict[str, Target], material_id: Any, where: str) -> Target:
    key = str(material_id).strip()
    if key not in names:
        raise PredictionsError(f"{where}: material_id {key!r} is not a structure of the fold")
    return names[key]


def _check(target: Target, arrays: StructureArrays, where: str) -> StructureArrays:
    if sorted(arrays.numbers.tolist()) != sorted(target.numbers.tolist()):
        raise PredictionsError(f"{where}: atoms {_formula(arrays.numbers)} differ from the target's {_formula(target.numbers)} "
                           f"(structure {target.structure_id})")
    return arrays


def _formula(numbers: Sequence[int]) -> str:
    from collections import Counter

    from pymatgen.core import Composition
    from pymatgen.core.periodic_table import Element

    return Composition(Counter(Element.from_Z(int(z)).symbol for z in numbers)).formula.replace(" ", "")


def _arrays(cell: Any, species: Sequence[Any], frac: Any, where: str) -> StructureArrays:
    from pymatgen.core.periodic_table import Element

    try:
        numbers = np.array([int(s) if isinstance(s, (int, np.integer)) or str(s).isdigit() else Element(str(s)).Z for s in species],
                           dtype=np.int64)
        cell = np.asarray(cell, dtype=float).reshape(3, 3)
        frac = np.asarray(frac, dtype=float).reshape(-1, 3)
    except (ValueError, TypeError, KeyError) as exc:
        raise PredictionsError(f"{where}: {exc}") from None
    if len(numbers) != len(frac):
        raise PredictionsError(f"{where}: {len(numbers)} species but {len(frac)} coordinates")
    return StructureArrays(cell, numbers, frac)


def _from_atoms(atoms: Any) -> StructureArrays:
    return StructureArrays(np.asarray(atoms.cell[:], float), np.asarray(atoms.numbers, np.int64), atoms.get_scaled_positions(wrap=False))


def read_folder(folder: Path, names: dict[str, Target]) -> dict[tuple[int, int], StructureArrays]:
    """Files ``<material_id>__<sample>.<ext>`` of ``folder``."""
    import ase.io

    out: dict[tuple[int, int], StructureArrays] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stem = path.name.split(".")[0] if path.suffix else path.name
        m = _NAME.match(stem)
        if m is None:
            raise PredictionsError(f"{path}: name is not <material_id>__<sample>.<ext>")
        target = _target(names, m["id"], str(path))
        fmt = {".cif": "cif", ".vasp": "vasp", ".poscar": "vasp", ".extxyz": "extxyz", ".xyz": "extxyz"}.get(path.suffix.lower(), "vasp")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                atoms = ase.io.read(path, format=fmt)
        except Exception as exc:  # any parser error is this file's fault: name it
            raise PredictionsError(f"{path}: cannot read as {fmt}: {exc}") from None
        _put(out, target, int(m["sample"]), _check(target, _from_atoms(atoms), str(path)), str(path))
    return out


def read_csv(path: Path, names: dict[str, Target]) -> dict[tuple[int, int], StructureArrays]:
    """Rows ``material_id, sample, cif``."""
    from pymatgen.core import Structure

    csv.field_size_limit(1 << 30)
    out: dict[tuple[int, int], StructureArrays] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"material_id", "sample", "cif"} - set(reader.fieldnames or ())
        if missing:
            raise PredictionsError(f"{path}: missing columns {', '.join(sorted(missing))} (need material_id, sample, cif)")
        for line, row in enumerate(reader, start=2):
            where = f"{path} line {line}"
            target = _target(names, row["material_id"], where)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s = Structure.from_str(row["cif"], fmt="cif")
            except Exception as exc:  # the CIF parser raises many types; each is a bad record
                raise PredictionsError(f"{where}: cannot parse the CIF: {exc}") from None
            arrays = StructureArrays(s.lattice.matrix, np.array(s.atomic_numbers, np.int64), s.frac_coords)
            _put(out, target, _int(row["sample"], where), _check(target, arrays, where), where)
    return out


def read_json(path: Path, names: dict[str, Target]) -> dict[tuple[int, int], StructureArrays]:
    """The JSON interchange file."""
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise PredictionsError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PredictionsError(f"{path}: 'format' must be {FORMAT!r}")
    out: dict[tuple[int, int], StructureArrays] = {}
    for i, rec in enumerate(doc.get("samples") or []):
        where = f"{path} samples[{i}]"
        try:
            target = _target(names, rec["material_id"], where)
            arrays = _arrays(rec["lattice"], rec["species"], rec["frac_coords"], where)
            sample = _int(rec["sample"], where)
        except KeyError as exc:
            raise PredictionsError(f"{where}: missing key {exc}") from None
        _put(out, target, sample, _check(target, arrays, where), where)
    return out


def read_npz(path: Path, names: dict[str, Target]) -> dict[tuple[int, int], StructureArrays]:
    """The npz interchange file (no pickle)."""
    try:
        data = np.load(path, allow_pickle=False)
        ids, samples, counts = data["material_id"], data["sample"], data["num_atoms"]
        lattice, numbers, frac = data["lattice"], data["atomic_numbers"], data["frac_coords"]
    except (KeyError, ValueError, OSError) as exc:
        raise PredictionsError(f"{path}: not an xtalbase CSP npz (material_id, sample, num_atoms, lattice, atomic_numbers, "
                           f"frac_coords): {exc}") from None
    if int(np.sum(counts)) != len(numbers) or len(numbers) != len(frac) or not (len(ids) == len(samples) == len(counts) == len(lattice)):
        raise PredictionsError(f"{path}: array lengths disagree (num_atoms sums to {int(np.sum(counts))}, {len(numbers)} atomic numbers, "
                           f"{len(frac)} coordinates, {len(ids)} ids, {len(lattice)} lattices)")
    offsets = np.concatenate([[0], np.cumsum(counts)])
    out: dict[tuple[int, int], StructureArrays] = {}
    for i in range(len(ids)):
        where = f"{path} entry {i}"
        target = _target(names, ids[i], where)
        arrays = _arrays(lattice[i], numbers[offsets[i]:offsets[i + 1]].tolist(), frac[offsets[i]:offsets[i + 1]], where)
        _put(out, target, int(samples[i]), _check(target, arrays, where), where)
    return out


def read_pt(path: Path, targets: Sequence[Target], *, trust_pickle: bool) -> dict[tuple[int, int], StructureArrays]:
    """A CDVAE/DiffCSP ``eval_*.pt`` mapped by position to ``targets`` (the test CSV's order); see the module docstring."""
    if not trust_pickle:
        raise PredictionsError(f"{path}: a .pt file is a pickle and loading it runs any code it contains; pass --trust-pickle "
                           "(trust_pickle=True) if you made it or trust it, or convert it to the npz/JSON interchange")
    import torch

    warnings.warn(PICKLE_WARNING.format(path=path), UserWarning, stacklevel=3)
    data = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict) or "frac_coords" not in data or "num_atoms" not in data or "atom_types" not in data:
        raise PredictionsError(f"{path}: expected a dict with frac_coords, atom_types, num_atoms and lengths/angles or lattices")

    def batched(name: str, dims: int) -> np.ndarray:
        value = data[name].detach().cpu().numpy() if hasattr(data[name], "detach") else np.asarray(data[name])
        return value[None] if value.ndim == dims - 1 else value

    frac, types, counts = batched("frac_coords", 3), batched("atom_types", 2), batched("num_atoms", 2)
    if "lattices" in data:
        lattices = batched("lattices", 4)
    else:
        from pymatgen.core import Lattice

        lengths, angles = batched("lengths", 3), batched("angles", 3)
        lattices = np.array([[Lattice.from_parameters(*lengths[s, i], *angles[s, i]).matrix for i in range(lengths.shape[1])]
                             for s in range(lengths.shape[0])])
    k, m = counts.shape
    if m != len(targets):
        raise PredictionsError(f"{path}: {m} crystals per sample but the fold has {len(targets)} structures; the file is aligned "
                           "with the test CSV by position, so its rows must be exactly the fold's")
    out: dict[tuple[int, int], StructureArrays] = {}
    for s in range(k):
        offsets = np.concatenate([[0], np.cumsum(counts[s])])
        for i, target in enumerate(targets):
            where = f"{path} sample {s} crystal {i}"
            a, b = offsets[i], offsets[i + 1]
            arrays = StructureArrays(lattices[s, i].astype(float), types[s, a:b].astype(np.int64), frac[s, a:b].astype(float))
            if sorted(arrays.numbers.tolist()) != sorted(target.numbers.tolist()):
                raise PredictionsError(f"{where}: atoms {_formula(arrays.numbers)} are not those of row {i} of the test order "
                                   f"({target.name}: {_formula(target.numbers)}); the file is not aligned with this fold, "
                                   "nothing was imported")
            out[(target.structure_id, s)] = arrays
    return out


def read_predictions(path: str | Path, task: CspTask, *, trust_pickle: bool = False,
                     order: Sequence[str] | None = None) -> dict[tuple[int, int], StructureArrays]:
    """Read ``path`` (folder, ``.csv``, ``.json``, ``.npz`` or ``.pt``) as samples of ``task``'s targets.

    ``order``: material ids of the test CSV a ``.pt`` was made from, in its row order (default: the fold's
    structures by id).
    """
    path = Path(path)
    names = task.by_name()
    if path.is_dir():
        return read_folder(path, names)
    if not path.exists():
        raise PredictionsError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, names)
    if suffix == ".json":
        return read_json(path, names)
    if suffix == ".npz":
        return read_npz(path, names)
    if suffix == ".pt":
        targets = [_target(names, n, f"order entry {j}") for j, n in enumerate(order)] if order is not None else list(task.targets)
        return read_pt(path, targets, trust_pickle=trust_pickle)
    raise PredictionsError(f"{path}: unknown predictions format {suffix!r} (folder, .csv, .json, .npz or .pt)")


def read_order(path: str | Path) -> list[str]:
    """Material ids of a CDVAE-style test CSV, in row order."""
    csv.field_size_limit(1 << 30)
    with open(path, newline="") as fh:
        return [row["material_id"] for row in csv.DictReader(fh)]


def write_json(samples: dict[tuple[int, int], StructureArrays], names: dict[int, str], path: str | Path) -> None:
    """Write samples in the JSON interchange format (``names``: structure id -> material id)."""
    doc = {"format": FORMAT, "samples": [
        {"material_id": names.get(sid, str(sid)), "sample": i, "lattice": np.asarray(s.cell).tolist(),
         "species": [int(z) for z in s.numbers], "frac_coords": np.asarray(s.frac_coords).tolist()}
        for (sid, i), s in sorted(samples.items())]}
    Path(path).write_text(json.dumps(doc))


def _int(value: Any, where: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise PredictionsError(f"{where}: sample {value!r} is not an integer") from None
    if out < 0:
        raise PredictionsError(f"{where}: sample {out} is negative")
    return out


def _put(out: dict, target: Target, sample: int, arrays: StructureArrays, where: str) -> None:
    key = (target.structure_id, sample)
    if key in out:
        raise PredictionsError(f"{where}: sample {sample} of {target.name} given twice")
    out[key] = arrays


__all__ = ["FORMAT", "PredictionsError", "read_order", "read_predictions", "write_json"]
