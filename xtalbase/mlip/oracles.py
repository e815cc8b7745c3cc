"""Oracles: who labels surrogate structures with energies, forces and stress.

An oracle is either an ASE calculator (``emt``: ASE's EMT, for tests; ``chgnet``: a pretrained universal
potential, the documented stand-in for DFT where none is at hand) or a file exchange (``files``: inputs are
written, the user runs DFT, the outputs are ingested). Every label an oracle makes is written with its name
and version as the calculation's ``code``/``code_version`` (``emt``, ``chgnet``; never ``vasp``), so an
oracle label is never mistaken for DFT. Single points by default; :func:`relax` follows the BFGS path of
one structure where a protocol calls for relaxed cells (every step is kept: a relaxation trajectory is
training data).

A new oracle is one :class:`Oracle` entry in :data:`ORACLES`; ``chgnet`` is the optional extra
``pip install 'xtalbase[oracle]'`` (its weights ship in the wheel: nothing is downloaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    from ase import Atoms

#: Elements ASE's EMT has parameters for.
EMT_ELEMENTS = frozenset({"Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au", "H", "C", "N", "O"})


class OracleError(XtalbaseError):
    """An oracle is unknown, not installed, or cannot label a structure (the message names it)."""


@dataclass(frozen=True)
class Oracle:
    """One labelling source: ``name``, its ``package`` (for the version), a calculator factory (None: files)."""

    name: str
    description: str
    package: str | None
    factory: Callable[[str], Any] | None
    elements: frozenset[str] | None = None

    @property
    def is_calculator(self) -> bool:
        """True when the oracle labels in-process (an ASE calculator), False for the file exchange."""
        return self.factory is not None

    def version(self) -> str | None:
        """The installed version of the package behind the oracle (None for ``files``)."""
        if self.package is None:
            return None
        try:
            return metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return None

    def calculator(self, device: str = "cpu") -> Any:
        """A fresh ASE calculator; :class:`OracleError` for ``files`` or when the package is missing."""
        if self.factory is None:
            raise OracleError(f"oracle {self.name!r} writes inputs for an external code; it has no calculator")
        return self.factory(device)

    def check(self, symbols: Sequence[str], what: str) -> None:
        """Refuse a structure with elements the oracle has no parameters for, naming ``what``."""
        if self.elements is None:
            return
        missing = sorted(set(symbols) - self.elements)
        if missing:
            raise OracleError(f"{what}: oracle {self.name!r} has no parameters for {', '.join(missing)} "
                              f"(it knows {', '.join(sorted(self.elements))})")


def _emt(device: str) -> Any:
    from ase.calculators.emt import EMT

    return EMT()


def _chgnet(device: str) -> Any:
    try:
        from chgnet.model import CHGNet, CHGNetCalculator
    except ImportError as exc:
        raise OracleError("oracle 'chgnet' needs the optional extra: pip install 'xtalbase[oracle]' "
                          f"({type(exc).__name__}: {exc})") from exc
    return CHGNetCalculator(model=CHGNet.load(verbose=False), use_device=device)


ORACLES: dict[str, Oracle] = {
    "emt": Oracle("emt", "ASE's effective-medium theory (tests; Al Ni Cu Pd Ag Pt Au)", "ase", _emt, EMT_ELEMENTS),
    "chgnet": Oracle("chgnet", "CHGNet pretrained universal potential (stand-in for DFT; xtalbase[oracle])",
                     "chgnet", _chgnet),
    "files": Oracle("files", "write POSCAR/extxyz inputs, ingest the user's DFT outputs", None, None),
}


def get_oracle(name: str) -> Oracle:
    """The oracle called ``name``; :class:`OracleError` naming the known ones otherwise."""
    try:
        return ORACLES[name]
    except KeyError:
        raise OracleError(f"unknown oracle {name!r}; choose one of {', '.join(ORACLES)}") from None


def _results(atoms: "Atoms", calc: Any, stress: bool) -> dict[str, Any]:
    atoms = atoms.copy()
    atoms.calc = calc
    out = {"energy": float(atoms.get_potential_energy()), "forces": np.array(atoms.get_forces(), dtype=float)}
    if stress:
        out["stress"] = np.array(atoms.get_stress(voigt=True), dtype=float)
    return out


def _labelled(atoms: "Atoms", results: dict[str, Any], oracle: Oracle, info: dict[str, Any]) -> "Atoms":
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.info.update(info)
    out.info.update(code=oracle.name, code_version=oracle.version() or "unknown", oracle=oracle.name)
    out.calc = SinglePointCalculator(out, **results)
    return out


def label(oracle: Oracle | str, structures: Sequence["Atoms"], *, stress: bool = True, device: str = "cpu",
          on_progress: Callable[[int], None] | None = None, calculator: Any = None) -> list["Atoms"]:
    """Single points: copies of ``structures`` with the oracle's energy (eV), forces (eV/Å) and stress.

    ``info`` gains ``code``, ``code_version`` and ``oracle``; a structure the oracle cannot label raises
    :class:`OracleError` naming it (``info["candidate"]`` or its index) and the reason. ``calculator`` reuses
    one the caller already made (loading CHGNet's weights takes seconds).
    """
    oracle = get_oracle(oracle) if isinstance(oracle, str) else oracle
    calc = calculator if calculator is not None else oracle.calculator(device)
    out = []
    for k, atoms in enumerate(structures):
        what = f"structure {atoms.info.get('candidate', k)} ({atoms.get_chemical_formula()})"
        oracle.check(atoms.get_chemical_symbols(), what)
        try:
            results = _results(atoms, calc, stress)
        except Exception as exc:  # noqa: BLE001 - a calculator's own failure is this structure's problem
            raise OracleError(f"{what}: oracle {oracle.name!r} failed: {type(exc).__name__}: {exc}") from exc
        if not np.isfinite(results["energy"]) or not np.isfinite(results["forces"]).all():
            raise OracleError(f"{what}: oracle {oracle.name!r} returned a non-finite energy or force")
        out.append(_labelled(atoms, results, oracle, {}))
        if on_progress:
            on_progress(1)
    return out


def relax(oracle: Oracle | str, atoms: "Atoms", *, fmax: float = 0.05, steps: int = 200, cell: bool = False,
          device: str = "cpu", calculator: Any = None) -> list["Atoms"]:
    """Every step of a BFGS relaxation of ``atoms`` (positions; the cell too with ``cell=True``), labelled.

    The last frame is the relaxed structure; ``info["relax_step"]`` numbers the frames from 0.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    oracle = get_oracle(oracle) if isinstance(oracle, str) else oracle
    oracle.check(atoms.get_chemical_symbols(), f"structure {atoms.get_chemical_formula()}")
    calc = calculator if calculator is not None else oracle.calculator(device)
    work = atoms.copy()
    work.calc = calc
    frames: list["Atoms"] = []

    def keep() -> None:
        frames.append(_labelled(work, _results(work, calc, True), oracle, {"relax_step": len(frames)}))

    target = FrechetCellFilter(work) if cell else work
    opt = BFGS(target, logfile=None)
    opt.attach(keep, interval=1)
    opt.run(fmax=fmax, steps=steps)
    return frames
