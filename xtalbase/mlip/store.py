"""Descriptors of a training set, kept in memory up to a budget and spilled to a temporary folder beyond it.

The Jacobian of a configuration is ~(neighbours + 1) × n_features × 3 floats per atom (about 70 kB per atom
for 40 functions at 5 Å), so a large training set does not fit in memory. :class:`DescriptorStore` keeps the
first configurations in memory until ``memory_budget`` bytes, writes the rest with ``torch.save`` to a
private temporary folder (removed by :meth:`close` or when the store is garbage-collected) and reads them back
per batch with ``weights_only=True``; training then streams batches, so peak memory stays near the budget.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xtalbase.mlip.acsf import Descriptors

#: Default bytes of descriptors held in memory (``XTALBASE_MLIP_MEMORY`` in GiB overrides it).
DEFAULT_BUDGET = 4 * 1024 ** 3


def default_budget() -> int:
    """The memory budget: ``$XTALBASE_MLIP_MEMORY`` GiB when set, else 4 GiB."""
    text = os.environ.get("XTALBASE_MLIP_MEMORY")
    return int(float(text) * 1024 ** 3) if text else DEFAULT_BUDGET


class DescriptorStore:
    """A list-like holder of :class:`~xtalbase.mlip.acsf.Descriptors` with a memory budget."""

    def __init__(self, memory_budget: int | None = None) -> None:
        self.memory_budget = default_budget() if memory_budget is None else int(memory_budget)
        self._items: list[Any] = []
        self._in_memory = 0
        self._folder: str | None = None
        self._cleanup: Any = None

    def append(self, desc: "Descriptors") -> None:
        """Keep ``desc`` in memory if it fits the budget, else spill it to disk."""
        size = desc.nbytes()
        if self._in_memory + size <= self.memory_budget:
            self._items.append(desc)
            self._in_memory += size
            return
        import torch

        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="xtalbase-descriptors-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._folder, True)
        path = os.path.join(self._folder, f"{len(self._items)}.pt")
        torch.save({"n_atoms": desc.n_atoms, "blocks": {e: vars(b) for e, b in desc.blocks.items()}}, path)
        self._items.append(path)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> "Descriptors":
        item = self._items[index]
        if not isinstance(item, str):
            return item
        import torch

        from xtalbase.mlip.acsf import Descriptors, ElementBlock

        data = torch.load(item, weights_only=True)
        return Descriptors(n_atoms=int(data["n_atoms"]), blocks={e: ElementBlock(**b) for e, b in data["blocks"].items()})

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    @property
    def spilled(self) -> int:
        """How many configurations live on disk."""
        return sum(isinstance(x, str) for x in self._items)

    @property
    def nbytes_in_memory(self) -> int:
        """Bytes of descriptors held in memory."""
        return self._in_memory

    def close(self) -> None:
        """Remove the spill folder (the store can no longer read spilled items)."""
        if self._cleanup is not None:
            self._cleanup()
