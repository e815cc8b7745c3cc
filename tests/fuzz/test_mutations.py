"""Mutation fuzzing of every reader: broken copies of real files never crash, hang or store wrong values.

Each example takes a seed of one reader (``tests/data/fuzz_seeds``), applies 1-3
mutations (:mod:`tests.fuzz.mutations`: truncation, flipped and deleted bytes, duplicated
and deleted lines, NaN/inf/1e308/huge numbers, lower-cased symbols, non-UTF-8 bytes,
empty, binary, deeply nested JSON, cut gzip), ingests the result into one shared SQLite
database under a time and memory budget and checks :mod:`tests.fuzz.invariants`.

The default suite runs :data:`DEFAULT_EXAMPLES` seeded examples per reader (derandomized,
so every run tries the same files); ``pytest -m fuzz tests/fuzz`` runs
``XTALBASE_FUZZ_EXAMPLES`` (default 300) per reader. Each example is ingested in a forked child
(:func:`tests.fuzz.invariants.isolated_ingest_and_check`), so a hang or a runaway allocation fails one example.
"""

from __future__ import annotations

import itertools
import os
import warnings

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_DATA
from tests.fuzz.invariants import ingest_and_check, isolated_ingest_and_check
from tests.fuzz.mutations import Op, mutate, ops, seed_bytes

SEEDS_DIR = TEST_DATA / "fuzz_seeds"
#: Seed files per reader; every registered format has at least one.
SEEDS: dict[str, tuple[str, ...]] = {
    "cif": ("cod_164.cif", "mp-91.cif"),
    "poscar": ("POSCAR-221-2",),
    "extxyz": ("sic_2frames.xyz",),
    "outcar": ("OUTCAR.gz",),
    "vasprun": ("vasprun.xml.gz",),
    "cdvae_csv": ("perov5_4rows.csv",),
    "mlip_json": ("mlearn_Mo_test_first2.json",),
    "pmg_json": ("mp-91.pmg.json",),
}
#: Examples per reader in the default suite (25 took 173 s for the 8 readers on 2 cores; 6 keep CI's share under a minute).
DEFAULT_EXAMPLES = 6
#: Examples per reader behind the ``fuzz`` marker.
LONG_EXAMPLES = int(os.environ.get("XTALBASE_FUZZ_EXAMPLES", "300"))
#: Wall time and extra address space one example (two ingests of one small file, in a forked child) may take.
SECONDS_PER_EXAMPLE = 20.0
BYTES_PER_EXAMPLE = 2 << 30

#: Readers whose default-suite examples hit a defect of the fuzz campaign (issue 25) on the code this test landed on;
#: the marks go when the fixes are merged.
KNOWN_FAILING: dict[str, str] = {}  # none since the hardening fixes (deep JSON in detection, far coordinates)

_SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=False,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# the default run reports its first failing example as drawn: shrinking it re-ingests dozens of files
_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
_counter = itertools.count()


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory):
    """One SQLite database for every example of the module (checks use per-run deltas)."""
    import xtalbase

    folder = tmp_path_factory.mktemp("fuzz")
    db = xtalbase.connect(f"sqlite:///{folder / 'fuzz.db'}")
    db.init()
    yield db, folder
    db.close()


def _params(examples_note: str) -> list:
    return [pytest.param(reader, marks=pytest.mark.xfail(strict=False, reason=KNOWN_FAILING[reader]))
            if reader in KNOWN_FAILING and examples_note == "default" else reader for reader in SEEDS]


def check_mutant(fuzz_db, seed_name: str, mutation: list[Op]) -> None:
    """Write the mutated seed under its own name in a new folder, ingest it twice in a limited child, assert every invariant."""
    db, root = fuzz_db
    data, compressed = seed_bytes(SEEDS_DIR / seed_name)
    folder = root / f"example{next(_counter)}"
    folder.mkdir()
    path = folder / seed_name
    path.write_bytes(mutate(data, mutation, compressed=compressed))
    db.engine.dispose()  # no pooled SQLite connection crosses the fork
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = isolated_ingest_and_check(db.url, path, SECONDS_PER_EXAMPLE, BYTES_PER_EXAMPLE)
    how = f"{seed_name} after {', '.join(map(str, mutation))}"
    assert outcome.error is None, f"{how}: {outcome.error}"
    assert outcome.problems == [], f"{how}: {outcome.problems}"


@pytest.mark.parametrize("reader", list(SEEDS))
def test_seeds_ingest_cleanly(fuzz_db, reader: str) -> None:
    """Every seed is a valid file of its reader: read, stored or already stored, and every invariant holds."""
    from xtalbase.ingest.formats import detect_format

    for name in SEEDS[reader]:
        path = SEEDS_DIR / name
        assert detect_format(path) == reader
        report, problems = ingest_and_check(fuzz_db[0], path)
        assert report.read > 0 and report.quarantined == 0 and problems == [], (name, report, problems)


def test_every_reader_has_a_seed() -> None:
    """A new reader gets seeds here, or its files go unfuzzed."""
    from xtalbase.ingest.formats import READERS

    assert set(SEEDS) == set(READERS)


@pytest.mark.parametrize("reader", _params("default"))
@settings(max_examples=DEFAULT_EXAMPLES, phases=_NO_SHRINK, **_SETTINGS)
@given(data=st.data())
def test_mutations_keep_invariants(fuzz_db, reader: str, data: st.DataObject) -> None:
    """A few seeded mutants per reader: no unhandled exception, no hang, nothing wrong stored, re-ingest adds nothing."""
    check_mutant(fuzz_db, data.draw(st.sampled_from(SEEDS[reader]), label="seed"), data.draw(ops(), label="ops"))


@pytest.mark.fuzz
@pytest.mark.parametrize("reader", _params("long"))
@settings(max_examples=LONG_EXAMPLES, **_SETTINGS)
@given(data=st.data())
def test_many_mutations_keep_invariants(fuzz_db, reader: str, data: st.DataObject) -> None:
    """The long run of :func:`test_mutations_keep_invariants` (``pytest -m fuzz tests/fuzz``)."""
    check_mutant(fuzz_db, data.draw(st.sampled_from(SEEDS[reader]), label="seed"), data.draw(ops(), label="ops"))
