"""Databases shared by the potential tests: small subsets of the mlearn Mo and Si sets, stored once per backend.

``n2p2_db``: one Mo training configuration (run 1) and the whole published Mo test set (run 2), then the same
for Si (runs 3 and 4); splits ``mo`` and ``si`` whose test folds are exactly the published test sets, and the
published n2p2 potentials imported as ``mlearn-Mo`` and ``mlearn-Si``.

``mo_db``: :data:`MO_TRAIN` rows of the Mo training set (run 1) and :data:`MO_TEST` rows of its test set (run 2),
the split ``mo`` (time: train = run 1, test = run 2), the dataset ``mo-train`` (its train fold) and a potential
trained on that dataset through ``xtalbase train potential`` with the small recipe :func:`small_recipe`.

The data are the mlearn sets (Zuo et al., J. Phys. Chem. A 124, 731 (2020), BSD-3) under ``../shared/data``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from tests.conftest import BACKENDS, new_database, shared

runner = CliRunner()

#: Rows of ``Mo/training.json``: vacancies (11, 20), AIMD near 300 K (56) and hot (93, 97: ~1 eV/atom higher),
#: surfaces of 6 to 20 atoms (129, 134, 135, 137), strained cells (149, 192: the 2-atom cell).
MO_TRAIN = (11, 20, 56, 93, 97, 129, 134, 135, 137, 149, 192)
#: Rows of ``Mo/test.json``: a vacancy (0), hot and cool AIMD frames (3, 4, 5, 8), both surfaces (15, 16), two
#: strained cells (17, 18).
MO_TEST = (0, 3, 4, 5, 8, 15, 16, 17, 18)
#: Training options of the shared trained potential (L-BFGS epochs of few iterations: seconds, not minutes).
TRAIN_ARGS = ("--epochs", "6", "--lbfgs-iterations", "10", "--seed", "0")


def mlearn(element: str, name: str) -> Path:
    """``mlip/mlearn/<element>/<name>`` under the shared data (the test is skipped when it is absent)."""
    return shared("mlip", "mlearn", element, name)


def write_subset(element: str, which: str, rows: tuple[int, ...] | None, folder: Path) -> Path:
    """The rows of an mlearn JSON file (all when ``rows`` is None) written to ``folder``; its path."""
    source = mlearn(element, f"{which}.json")
    if rows is None:
        return source
    entries = json.loads(source.read_text())
    path = folder / f"{element}-{which}-{len(rows)}.json"
    path.write_text(json.dumps([entries[k] for k in rows]))
    return path


def cli(*args: str) -> Any:
    """``xtalbase ARGS`` through typer's runner; fails the test with the output when the command fails."""
    from xtalbase.cli import app

    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def cli_json(*args: str) -> Any:
    """The parsed ``--json`` output of ``xtalbase ARGS`` (stdout only: warnings go to stderr)."""
    return json.loads(cli(*args, "--json").stdout)


def time_split(db: Any, name: str, first: Path, second: Path, filter: str | None = None) -> tuple[int, int]:
    """Ingest ``first`` then ``second`` and create the time split ``name`` (train = first, test = second).

    Returns the two ingest run ids. ``filter`` restricts the split to matching structures.
    """
    one = db.ingest([first])
    two = db.ingest([second])
    assert one.quarantined == two.quarantined == 0, (one, two)
    extra = ["--filter", filter] if filter else []
    cli("--db", db.url, "split", "create", name, "--strategy", "time", "--cut", str(one.run_id),
        "--fractions", "1", "0", "0", *extra)
    return one.run_id, two.run_id


def small_recipe() -> Any:
    """Mo: seven shifted radial Gaussians to 5 Å, four angular functions to 4 Å (three shells), nets 16-16 tanh."""
    from xtalbase.mlip.recipe import NetworkSpec, PotentialRecipe, SymmetryFunction

    radial = [SymmetryFunction("radial", "Mo", ("Mo",), eta=2.0, rs=2.0 + 0.4 * k, rc=5.0) for k in range(7)]
    angular = [SymmetryFunction("angular", "Mo", ("Mo", "Mo"), eta=0.01, zeta=zeta, lam=lam, rc=4.0)
               for zeta in (1.0, 4.0) for lam in (-1.0, 1.0)]
    return PotentialRecipe(elements=("Mo",), functions=(*radial, *angular), network=NetworkSpec((16, 16), "tanh"),
                           name="small-mo")


@pytest.fixture(scope="package", autouse=True)
def one_thread() -> Iterator[None]:
    """Run torch and BLAS on one thread here: these tests hold small arrays, and on a shared two-core machine a
    second thread competing with other processes made them several times slower (measured: evaluating the mlearn
    Mo test set 3x, a BFGS cell relaxation 10x, its 3x3 LAPACK solves spinning)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@dataclass
class Stored:
    """A populated database and what was made in it."""

    db: Any
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    made: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def stored_database(backend: str, folder: Path) -> Iterator[Stored]:
    """A new initialised database on ``backend`` with ``folder`` for its files (dropped afterwards)."""
    with new_database(backend, folder) as db:
        yield Stored(db, folder)


@pytest.fixture(scope="package", params=BACKENDS)
def n2p2_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """The published Mo and Si test sets in the test folds of ``mo`` and ``si``; both n2p2 potentials imported."""
    with stored_database(request.param, tmp_path_factory.mktemp("n2p2")) as out:
        for element in ("Mo", "Si"):
            out.files[element] = mlearn(element, "test.json")
            time_split(out.db, element.lower(), write_subset(element, "training", (0,), out.folder), out.files[element],
                       filter=f'elements HAS "{element}"')
            out.made[element] = cli_json("--db", out.db.url, "potential", "import-n2p2", str(mlearn(element, "nnp")),
                                         "--name", f"mlearn-{element}")["model_id"]
        yield out


@pytest.fixture(scope="package", params=BACKENDS)
def mo_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """Mo subsets, the split ``mo``, the dataset ``mo-train`` and a potential trained on it through the command
    line (``made["train"]``: its ``--json`` report)."""
    with stored_database(request.param, tmp_path_factory.mktemp("mo")) as out:
        url, folder = out.db.url, out.folder
        out.files["train"] = write_subset("Mo", "training", MO_TRAIN, folder)
        out.files["test"] = write_subset("Mo", "test", MO_TEST, folder)
        time_split(out.db, "mo", out.files["train"], out.files["test"])
        cli("--db", url, "dataset", "create", "mo-train", "--split", "mo", "--fold", "train")
        out.files["recipe"] = folder / "small-mo.json"
        out.files["recipe"].write_text(json.dumps(small_recipe().to_dict()))
        out.made["train"] = cli_json("--db", url, "train", "potential", "--dataset", "mo-train", "--recipe",
                                     str(out.files["recipe"]), "--name", "small-mo", *TRAIN_ARGS)
        yield out
