"""An ASE calculator for xtalbase potentials: energy, forces and stress (periodic cells) from a stored model.

>>> calc = Calculator.from_model(db, 3)          # doctest: +SKIP
>>> atoms.calc = calc; atoms.get_potential_energy()   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import all_changes
from ase.stress import full_3x3_to_voigt_6_stress

if TYPE_CHECKING:
    from ase import Atoms

    from xtalbase.platform.database import Database


class Calculator(_AseCalculator):
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign) of an HDNNP; ``model_id`` is kept for provenance."""

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model: Any, *, model_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.model_id = model_id

    @classmethod
    def from_model(cls, db: "Database", model_id: int | str, device: str = "cpu") -> "Calculator":
        """The calculator of a registered potential (artifact sha256-checked, loaded without pickle)."""
        from xtalbase.ml.registry import get_model
        from xtalbase.mlip.potentials import load_potential

        with db.session() as s:
            mid = get_model(s, model_id).id
        return cls(load_potential(db, mid, device=device), model_id=mid)

    def calculate(self, atoms: "Atoms | None" = None, properties: Any = ("energy",), system_changes: Any = all_changes) -> None:
        """Fill ``self.results`` for ``atoms``."""
        from xtalbase.mlip import acsf
        from xtalbase.mlip.model import pack, predict

        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(np.all(atoms.pbc))
        dtype = next(iter(self.model.parameters())).dtype
        desc = acsf.compute(self.model.recipe, atoms.numbers, atoms.positions, np.array(atoms.cell), atoms.pbc, dtype=dtype,
                            what="ASE atoms")
        volume = atoms.get_volume() if periodic else 1.0
        out = predict(self.model, pack([desc], [volume], dtype=dtype), forces=True, stress=periodic)
        energies = np.zeros(len(atoms))
        for element, block in desc.blocks.items():
            values = block.values.to(dtype)
            energies[block.atoms.numpy()] = self.model.atomic_energies(element, values).detach().cpu().numpy()
        self.results["energy"] = self.results["free_energy"] = float(out.energy[0])
        self.results["energies"] = energies
        self.results["forces"] = out.forces.detach().cpu().numpy()
        if periodic:
            self.results["stress"] = full_3x3_to_voigt_6_stress(out.stress[0].detach().cpu().numpy())
