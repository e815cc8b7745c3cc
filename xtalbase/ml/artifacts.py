"""Model artifacts as bytes that never execute code when loaded, with a stable sha256.

Each algorithm's format and its dump/load live in its :class:`~xtalbase.ml.algorithms.AlgorithmSpec`:

* XGBoost: the booster's own UBJSON (``xgboost-ubj``); labels and parameters ride in a booster attribute.
* ExtraTrees (scikit-learn): skops (``skops``), loaded with an explicit allow-list of trusted types; any
  other type in the file is refused before anything is constructed.

Neither path calls :mod:`pickle`. skops writes object ids and timestamps into its zip, so the bytes are
canonicalised here (ids renumbered in order of appearance, fixed timestamps): the same fitted model always
gives the same bytes and hash, which is what makes "train twice, same hash" a testable promise.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from xtalbase.ml.algorithms import ArtifactError, spec_for_format, spec_for_model
from xtalbase.platform.hashing import sha256_bytes

__all__ = ["ArtifactError", "canonical_skops", "dump", "load", "sha256"]


sha256 = sha256_bytes  # the artifact digest stored as ``models.artifact_sha256``


def dump(model: Any) -> tuple[bytes, str]:
    """Serialise a fitted estimator of a registered algorithm (``ExtraTreesModel``, ``XGBoostModel``, ...).

    Returns ``(bytes, format)``; the bytes are identical for identical fitted models.
    """
    spec = spec_for_model(model)
    return spec.dump(model), spec.artifact_format


def load(data: bytes, fmt: str, expected_sha256: str | None = None, algorithm: str | None = None) -> Any:
    """Rebuild a fitted model from artifact bytes, checking the hash first; never unpickles.

    ``algorithm`` picks the reader when several algorithms share ``fmt`` (else the first registered).
    Raises :class:`ArtifactError` when the hash differs, the format is unknown, or a skops file names a type
    outside the algorithm's allow-list.
    """
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise ArtifactError(f"artifact sha256 {sha256(data)[:12]} does not match the registry's {expected_sha256[:12]}: refusing to load")
    spec = spec_for_format(fmt, algorithm)
    return spec.load(data, spec)


_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops zip so equal models give equal bytes: renumber object ids, fix timestamps."""
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    ids: dict[str, str] = {}

    def new_id(old: Any) -> str:
        key = str(old)
        if key not in ids:
            ids[key] = str(len(ids) + 1)
        return ids[key]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "__id__":
                    out[k] = int(new_id(v))
                elif k == "file" and isinstance(v, str) and re.fullmatch(r"\d+\.npy", v):
                    out[k] = new_id(v[:-4]) + ".npy"
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    members = {}
    for info in src.infolist():
        name = info.filename
        if name == "schema.json":
            continue
        stem = name[:-4] if name.endswith(".npy") else None
        if stem is None or stem not in ids:
            raise ArtifactError(f"unexpected member {name!r} in skops file")
        members[ids[stem] + ".npy"] = src.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(members, key=lambda n: int(n[:-4])):
            _write(dst, name, members[name])
        _write(dst, "schema.json", json.dumps(schema, indent=2).encode())
    return out.getvalue()


def _write(dst: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    dst.writestr(info, payload)
