"""Compact binary encoding of the numeric arrays stored in BLOB/bytea columns.

Every array column holds raw little-endian bytes of a fixed dtype, row-major:

=====================  ===========  ==================  =====================
column                 dtype        shape               unit
=====================  ===========  ==================  =====================
``structures.cell``    ``<f8``      (3, 3) rows = a,b,c Å
``structures.numbers`` ``<u1``      (nsites,)           atomic number
``structures.frac_coords`` ``<f8``  (nsites, 3)         fractional
``calculations.forces``  ``<f8``    (nsites, 3)         eV/Å
``calculations.stress``  ``<f8``    (3, 3)              ``stress_unit``
``xrd_patterns.*``     ``<f8``      (npeaks,)           2θ in degrees, Å, a.u.
=====================  ===========  ==================  =====================

Raw bytes decode with one ``numpy.frombuffer`` call, which is what makes loading
thousands of structures fast; plain SQL users read the same data through the
documented views.
"""

from __future__ import annotations

import numpy as np

F8 = np.dtype("<f8")
F4 = np.dtype("<f4")
U1 = np.dtype("<u1")


def pack(array: np.ndarray | list, dtype: np.dtype = F8) -> bytes:
    """Encode ``array`` as contiguous little-endian bytes of ``dtype``."""
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def unpack(blob: bytes | memoryview | None, dtype: np.dtype = F8, shape: tuple[int, ...] = (-1,)) -> np.ndarray | None:
    """Decode bytes written by :func:`pack`; returns ``None`` for ``None``."""
    if blob is None:
        return None
    return np.frombuffer(bytes(blob), dtype=dtype).reshape(shape)
