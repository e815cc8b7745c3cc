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
        import torch

        from xtalbase.mlip import acsf

        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(np.all(atoms.pbc))
        dtype = next(iter(self.model.parameters())).dtype
        # one structure at a time: autograd through the descriptor beats building the Jacobian (bench/mlip.py)
        positions = torch.as_tensor(np.array(atoms.positions), dtype=dtype).requires_grad_(True)
        strain = torch.zeros((3, 3), dtype=dtype, requires_grad=True)
        desc = acsf.compute(self.model.recipe, atoms.numbers, positions, np.array(atoms.cell), atoms.pbc, jacobian=False,
                            dtype=dtype, strain=strain, what="ASE atoms")
        energies = torch.zeros(len(atoms), dtype=dtype)
        for element, block in desc.blocks.items():
            energies = energies.index_add(0, block.atoms, self.model.atomic_energies(element, block.values))
        total = energies.sum()
        grad_pos, grad_strain = torch.autograd.grad(total, (positions, strain))
        self.results["energy"] = self.results["free_energy"] = float(total.detach())
        self.results["energies"] = energies.detach().cpu().numpy()
        self.results["forces"] = -grad_pos.cpu().numpy()
        if periodic:
            stress = (grad_strain / atoms.get_volume()).cpu().numpy()
            self.results["stress"] = full_3x3_to_voigt_6_stress(0.5 * (stress + stress.T))
