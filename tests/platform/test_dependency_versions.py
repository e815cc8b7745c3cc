"""Dependency versions are found whichever distribution installed the module (xgboost or xgboost-cpu)."""

from __future__ import annotations

from importlib import metadata

import pytest

from xtalbase.platform import provenance


@pytest.fixture
def only_xgboost_cpu(monkeypatch: pytest.MonkeyPatch):
    """An environment where xgboost came from the ``xgboost-cpu`` distribution, as the dependencies now ask."""
    real = metadata.version

    def version(name: str) -> str:
        if name == "xgboost":
            raise metadata.PackageNotFoundError(name)
        return "3.2.0" if name == "xgboost-cpu" else real(name)

    monkeypatch.setattr(provenance.metadata, "version", version)
    provenance.dependency_versions.cache_clear()
    yield
    provenance.dependency_versions.cache_clear()


def test_xgboost_cpu_is_recorded_as_xgboost(only_xgboost_cpu) -> None:
    found = provenance.dependency_versions()
    assert found["xgboost"] == "3.2.0"
    assert "xgboost-cpu" not in found
    assert found["numpy"] == metadata.version("numpy")
