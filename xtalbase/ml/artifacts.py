"""Model artifacts as bytes that never execute code when loaded, with a stable sha256.

* XGBoost: the booster's own UBJSON (``xgboost-ubj``); labels and parameters ride in a booster attribute.
* ExtraTrees (scikit-learn): skops (``skops``), loaded with an explicit allow-list of trusted types; any
  other type in the file is refused before anything is constructed.

Neither path calls :mod:`pickle`. skops writes object ids and timestamps into its zip, so the bytes are
canonicalised (ids renumbered in order of appearance, fixed timestamps): the same fitted model always gives
the same bytes and hash, which is what makes "train twice, same hash" a testable promise.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from xtalbase.errors import XtalbaseError
from xtalbase.platform.hashing import sha256_bytes

FORMATS = ("xgboost-ubj", "skops")

#: Types a skops artifact may contain beyond skops' own default-trusted ones (builtins, numpy arrays, ...).
SKOPS_TRUSTED = (
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.int64",
    "numpy.float64",
    "numpy.str_",
    "numpy.random.mtrand.RandomState",
    "builtins.slice",
)


class ArtifactError(XtalbaseError):
    """An artifact is corrupt, does not match its hash, or contains types that are not allowed."""


sha256 = sha256_bytes  # the artifact digest stored as ``models.artifact_sha256``


def dump(model: Any) -> tuple[bytes, str]:
    """Serialise a fitted :class:`~xtalbase.ml.estimators.ExtraTreesModel` or ``XGBoostModel``.

    Returns ``(bytes, format)``; the bytes are identical for identical fitted models.
    """
    from xtalbase.ml.estimators import ExtraTreesModel, XGBoostModel

    if isinstance(model, XGBoostModel):
        return bytes(model.booster_.save_raw(raw_format="ubj")), "xgboost-ubj"
    if isinstance(model, ExtraTreesModel):
        import skops.io

        return _canonical_skops(skops.io.dumps(model.estimator_)), "skops"
    raise ArtifactError(f"cannot serialise {type(model).__name__}: only ExtraTreesModel and XGBoostModel are supported")


def load(data: bytes, fmt: str, expected_sha256: str | None = None) -> Any:
    """Rebuild a fitted model from artifact bytes, checking the hash first; never unpickles.

    Raises :class:`ArtifactError` when the hash differs, the format is unknown, or a skops file names a type
    outside :data:`SKOPS_TRUSTED`.
    """
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise ArtifactError(f"artifact sha256 {sha256(data)[:12]} does not match the registry's {expected_sha256[:12]}: refusing to load")
    if fmt == "xgboost-ubj":
        import xgboost as xgb

        from xtalbase.ml.estimators import XGBoostModel

        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(data))
            return XGBoostModel.from_booster(booster)
        except (xgb.core.XGBoostError, ValueError) as exc:
            raise ArtifactError(f"cannot read xgboost-ubj artifact: {str(exc).splitlines()[0]}") from exc
    if fmt == "skops":
        import skops.io

        from xtalbase.ml.estimators import ExtraTreesModel

        try:
            untrusted = skops.io.get_untrusted_types(data=data)
        except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt file
            raise ArtifactError(f"cannot read skops artifact: {exc}") from exc
        refused = sorted(set(untrusted) - set(SKOPS_TRUSTED))
        if refused:
            raise ArtifactError(f"skops artifact contains types outside the allow-list: {refused}")
        return ExtraTreesModel.from_library(skops.io.loads(data, trusted=list(untrusted)))
    raise ArtifactError(f"unknown artifact format {fmt!r}; known: {FORMATS}")


_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _canonical_skops(data: bytes) -> bytes:
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
