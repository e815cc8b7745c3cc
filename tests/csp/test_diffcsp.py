"""DiffCSP: a tiny model fitted on real Perov-5 cells samples valid, reproducible structures; artifacts round-trip;
the denoiser is invariant to periodic translations and equivariant to permutations; misuse raises clearly."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TEST_DATA
from xtalbase.csp.models.base import CspModelError, get_model_class
from xtalbase.platform.convert import StructureArrays

torch = pytest.importorskip("torch")

#: 30 Perov-5 rows kept in the repository (tests/data/README.md); the shared CSV is the fallback.
LOCAL_CSV = TEST_DATA / "query" / "perov5" / "test.csv"
SHARED_CSV = Path(__file__).parents[2] / ".." / "shared" / "data" / "perov5" / "test.csv"

TINY = dict(hidden=16, layers=1, timesteps=20, epochs=2, batch_size=8, random_state=0)


def _perov5(n: int = 20) -> list[StructureArrays]:
    from pymatgen.core import Structure

    path = LOCAL_CSV if LOCAL_CSV.exists() else SHARED_CSV
    if not path.exists():
        pytest.skip(f"no Perov-5 data: neither {LOCAL_CSV} nor {SHARED_CSV} exists")
    csv.field_size_limit(10**9)
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            s = Structure.from_str(row["cif"], fmt="cif")
            out.append(StructureArrays(s.lattice.matrix.copy(), np.array(s.atomic_numbers, dtype=np.int64), s.frac_coords.copy()))
            if len(out) == n:
                break
    return out


@pytest.fixture(scope="module")
def data() -> list[StructureArrays]:
    return _perov5(24)


@pytest.fixture(scope="module")
def model(data):
    from xtalbase.csp.models.diffcsp import DiffCSP

    return DiffCSP(**TINY).fit(data[:18], data[18:])


def _same(a: list[list[StructureArrays]], b: list[list[StructureArrays]]) -> bool:
    return all(np.array_equal(x.cell, y.cell) and np.array_equal(x.frac_coords, y.frac_coords) and np.array_equal(x.numbers, y.numbers)
               for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def test_registered_and_lazy():
    cls = get_model_class("diffcsp")
    assert cls.name == "diffcsp" and cls.artifact_format == "diffcsp-torch"
    assert cls().get_params()["hidden"] == 128


def test_fit_records_history(model):
    assert len(model.history_) == TINY["epochs"]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in model.history_)
    assert model.n_parameters_ > 0


def test_sample_shapes_and_validity(model, data):
    comps = [data[0].numbers, data[1].numbers[::-1].copy(), np.array([8, 22, 8, 38, 8])]
    out = model.sample(comps, k=3, seed=1)
    assert len(out) == len(comps)
    for comp, cands in zip(comps, out):
        assert len(cands) == 3
        for s in cands:
            assert np.array_equal(s.numbers, comp)
            assert s.cell.shape == (3, 3) and np.isfinite(s.cell).all() and np.linalg.det(s.cell) > 0
            assert s.frac_coords.shape == (len(comp), 3)
            assert (s.frac_coords >= 0).all() and (s.frac_coords < 1).all()


def test_sampling_is_seeded(model, data):
    comps = [s.numbers for s in data[:4]]
    a, b, c = model.sample(comps, 2, seed=7), model.sample(comps, 2, seed=7), model.sample(comps, 2, seed=8)
    assert _same(a, b)
    assert not _same(a, c)


def test_artifact_round_trip(model, data):
    from xtalbase.csp.models.diffcsp import DiffCSP

    blob = model.to_bytes()
    assert blob == model.to_bytes()
    again = DiffCSP.from_bytes(blob)
    assert again.to_bytes() == blob
    comps = [s.numbers for s in data[:3]]
    assert _same(model.sample(comps, 2, seed=3), again.sample(comps, 2, seed=3))


def test_fit_is_deterministic(model, data):
    from xtalbase.csp.models.diffcsp import DiffCSP

    assert DiffCSP(**TINY).fit(data[:18], data[18:]).to_bytes() == model.to_bytes()


def test_denoiser_invariance(model, data):
    gen = torch.Generator().manual_seed(0)
    net = model.net_
    B, N = 3, 5
    z = torch.as_tensor(np.stack([s.numbers for s in data[:B]]))
    x = torch.rand(B, N, 3, generator=gen)
    L = torch.randn(B, 3, 3, generator=gen)
    mask = torch.ones(B, N, dtype=torch.bool)
    t = torch.tensor([0.1, 0.5, 0.9])
    with torch.no_grad():
        px, pl = net(t, z, x, L, mask)
        # periodic translation of every atom: same scores, same lattice noise
        shift = torch.remainder(x + torch.tensor([0.3, -0.45, 0.7]), 1.0)
        sx, sl = net(t, z, shift, L, mask)
        torch.testing.assert_close(sx, px, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(sl, pl, atol=1e-4, rtol=1e-4)
        # permuting atoms permutes the per-atom scores and leaves the lattice output alone
        perm = torch.tensor([3, 0, 4, 1, 2])
        qx, ql = net(t, z[:, perm], x[:, perm], L, mask)
        torch.testing.assert_close(qx, px[:, perm], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ql, pl, atol=1e-4, rtol=1e-4)
        # rotating the lattice (L -> L R) leaves the scores alone and rotates the lattice output
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen))
        rx, rl = net(t, z, x, L @ q, mask)
        torch.testing.assert_close(rx, px, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(rl, pl @ q, atol=1e-4, rtol=1e-4)


def test_errors(model, data):
    from xtalbase.csp.models.diffcsp import DiffCSP

    with pytest.raises(CspModelError, match="not fitted"):
        DiffCSP().sample([data[0].numbers], 1, seed=0)
    with pytest.raises(CspModelError, match="not fitted"):
        DiffCSP().to_bytes()
    buf = __import__("io").BytesIO()
    torch.save({"format": "other-format", "params": "{}"}, buf)
    with pytest.raises(CspModelError, match="other-format"):
        DiffCSP.from_bytes(buf.getvalue())
    with pytest.raises(CspModelError, match="artifact"):
        DiffCSP.from_bytes(b"not a torch file")
    with pytest.raises(CspModelError, match="atomic number 101"):
        model.sample([np.array([8, 101, 8])], 1, seed=0)
    bad = StructureArrays(data[0].cell, np.array([0, 8, 8, 8, 22]), data[0].frac_coords)
    with pytest.raises(CspModelError, match="atomic number 0"):
        DiffCSP(**TINY).fit([bad])
