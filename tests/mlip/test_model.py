"""The potential artifact: byte-stable, and loaded only when it is what it claims to be.

A stored artifact whose bytes do not match the recorded sha256 is refused; a pickle that would run code when
unpickled is refused without running it (``weights_only`` loading), even when its sha256 is "right" (whoever
can write the artifact can write its hash); a wrong format tag is refused.
"""

from __future__ import annotations

import io
import pathlib
import pickle

import numpy as np
import pytest

from tests.mlip.conftest import mlearn, small_recipe
from xtalbase.errors import XtalbaseError
from xtalbase.mlip.model import FORMAT_TAG, build, from_bytes, to_bytes
from xtalbase.platform.hashing import sha256_bytes


class _WritesAFile:
    """Unpickling this calls ``Path.write_text(path, "ran")``: a visible side effect of running pickled code."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.write_text, (self.path, "ran")


def _model():
    return build(small_recipe(), seed=4)


def _energy(model) -> float:
    from xtalbase.mlip import acsf
    from xtalbase.mlip.model import pack, predict

    cell = 3.16 * np.eye(3)
    positions = np.array([[0.0, 0.0, 0.0], [1.6, 1.5, 1.62]])
    desc = acsf.compute(model.recipe, np.array([42, 42]), positions, cell, True)
    return float(predict(model, pack([desc], [abs(np.linalg.det(cell))]), forces=False).energy[0])


def _torch_save(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_the_artifact_round_trips_byte_for_byte():
    model = _model()
    blob = to_bytes(model)
    assert to_bytes(model) == blob  # the same model writes the same bytes
    loaded = from_bytes(blob, expected_sha256=sha256_bytes(blob))
    assert loaded.recipe == model.recipe and to_bytes(loaded) == blob
    assert _energy(loaded) == _energy(model)


def test_a_tampered_artifact_is_refused():
    blob = bytearray(to_bytes(_model()))
    digest = sha256_bytes(bytes(blob))
    blob[len(blob) // 2] ^= 0x01
    with pytest.raises(XtalbaseError, match="does not match its recorded sha256"):
        from_bytes(bytes(blob), expected_sha256=digest)


@pytest.mark.parametrize("wrapping", ["plain pickle", "inside a torch.save artifact"])
def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path, wrapping):
    marker = tmp_path / "pwned"
    evil = _WritesAFile(marker)
    if wrapping == "plain pickle":
        blob = pickle.dumps(evil, protocol=2)
    else:
        model = _model()
        blob = _torch_save({"format": FORMAT_TAG, "recipe": "{}", "state_dict": model.state_dict(), "extra": evil})
    # the payload is live: plain unpickling runs it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_WritesAFile(probe)))
    assert probe.read_text() == "ran"
    with pytest.raises(XtalbaseError, match="not a potential artifact"):
        from_bytes(blob, expected_sha256=sha256_bytes(blob))
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    lambda m: {"format": "xtalbase-hdnnp/0", "recipe": "{}", "state_dict": m.state_dict()},
    lambda m: {"recipe": "{}", "state_dict": m.state_dict()},
    lambda m: m.state_dict(),
    lambda m: [1, 2, 3],
], ids=["old tag", "no tag", "bare state_dict", "a list"])
def test_a_wrong_format_tag_is_refused(payload):
    blob = _torch_save(payload(_model()))
    with pytest.raises(XtalbaseError, match="not a potential artifact"):
        from_bytes(blob)


def test_not_an_artifact_at_all_is_refused():
    with pytest.raises(XtalbaseError, match="not a potential artifact"):
        from_bytes(b"input.nn is not a zip file")


def test_the_registry_refuses_an_artifact_changed_in_the_database(db):
    from xtalbase.mlip.calculator import Calculator
    from xtalbase.mlip.potentials import import_n2p2, load_potential
    from xtalbase.schema import Model

    report = import_n2p2(db, mlearn("Mo", "nnp"), name="mlearn-Mo")
    assert load_potential(db, report.model_id).recipe.name == "mlearn-Mo"
    with db.session() as s:
        row = s.get(Model, report.model_id)
        blob = bytearray(row.artifact)
        blob[-100] ^= 0xFF
        row.artifact = bytes(blob)
        s.commit()
    with pytest.raises(XtalbaseError, match="does not match its recorded sha256"):
        load_potential(db, report.model_id)
    with pytest.raises(XtalbaseError, match="does not match its recorded sha256"):
        Calculator.from_model(db, report.model_id)
