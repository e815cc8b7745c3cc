"""Measured powder scans: ``.xy`` and PANalytical ``.xrdml`` readers, background subtraction and peak picking.

One entry point, :func:`read_scan`, picks the reader from the extension, then from the first bytes
(``<?xml`` means xrdml). Processing is two documented steps:

1. **Background** by SNIP (statistics-sensitive non-linear iterative peak clipping; Ryan et al.,
   NIM B 34 (1988) 396; Morháč et al., NIM A 401 (1997) 113) on the LLS-transformed counts
   ``log(log(sqrt(y + 1) + 1) + 1)``, clipping window growing up to ``background_width`` degrees.
2. **Peaks** with ``scipy.signal.find_peaks`` on the background-subtracted scan smoothed by a
   Savitzky–Golay filter (``smooth`` degrees wide, cubic): a peak needs a prominence of at least
   ``min_prominence`` × the largest net intensity and lies at least ``min_distance`` degrees from a
   stronger one; its position is refined by a parabola through the three highest points.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.platform.hashing import sha256_bytes
from xtalbase.xrd.engine import Pattern


@dataclass
class Scan:
    """A measured scan: ``two_theta`` (n,) degrees ascending, ``intensity`` (n,) counts, wavelength in Å when known."""

    two_theta: np.ndarray
    intensity: np.ndarray
    wavelength: float | None = None
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def read_scan(path: str | Path, format: str | None = None) -> Scan:
    """Read a measured scan (``format`` = ``"xy"`` or ``"xrdml"``; guessed from the name, then the content)."""
    path = Path(path)
    if not path.is_file():
        raise XtalbaseError(f"{path}: no such file")
    data = path.read_bytes()
    fmt = format or {".xrdml": "xrdml", ".xy": "xy", ".txt": "xy", ".dat": "xy", ".csv": "xy"}.get(path.suffix.lower())
    if fmt is None:
        fmt = "xrdml" if data.lstrip()[:5] == b"<?xml" else "xy"
    reader = {"xy": read_xy, "xrdml": read_xrdml}.get(fmt)
    if reader is None:
        raise XtalbaseError(f"{path}: unknown scan format {fmt!r}; known: xy, xrdml")
    scan = reader(data, str(path))
    scan.meta["file_hash"] = sha256_bytes(data)
    scan.meta["format"] = fmt
    return check_scan(scan)


def read_xy(data: bytes, name: str = "<xy>") -> Scan:
    """Two- or three-column text (2θ, intensity[, esd or background]); comment/header lines are skipped.

    Columns may be separated by whitespace, commas or semicolons. Only the first two columns are used.
    """
    rows = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        text = line.strip().replace(",", " ").replace(";", " ")
        if not text or text[0] in "#!%'/":
            continue
        parts = text.split()
        try:
            values = [float(v) for v in parts[:2]]
        except ValueError:
            if rows:
                raise XtalbaseError(f"{name}: line {number} is not numeric: {line.strip()[:60]!r}") from None
            continue  # a header line before the data
        if len(values) < 2:
            raise XtalbaseError(f"{name}: line {number} has one column; expected 2θ and intensity")
        rows.append(values)
    if not rows:
        raise XtalbaseError(f"{name}: no numeric 2θ/intensity rows found")
    arr = np.asarray(rows)
    return Scan(arr[:, 0], arr[:, 1], None, name)


def read_xrdml(data: bytes, name: str = "<xrdml>") -> Scan:
    """PANalytical XRDML: 2θ positions (start/end or a list) and counts (or intensities) of the first scan.

    The wavelength is Kα1 and Kα2 averaged 2:1 (``ratioKAlpha2KAlpha1`` when given) from ``usedWavelength``.
    Counts are divided by the counting time when ``intensities`` are absent but the time is given.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise XtalbaseError(f"{name}: not well-formed XML ({exc})") from None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    def find(node: ET.Element, tag: str) -> ET.Element | None:
        return next((el for el in node.iter() if local(el.tag) == tag), None)

    points = find(root, "dataPoints")
    if points is None:
        raise XtalbaseError(f"{name}: no <dataPoints> element: not an XRDML scan")
    values_el = find(points, "counts")
    values_el = values_el if values_el is not None else find(points, "intensities")
    if values_el is None or not (values_el.text or "").strip():
        raise XtalbaseError(f"{name}: <dataPoints> has no <counts> or <intensities>")
    y = np.array(values_el.text.split(), dtype=float)
    axis = next((el for el in points if local(el.tag) == "positions" and el.get("axis") == "2Theta"), None)
    if axis is None:
        raise XtalbaseError(f"{name}: no <positions axis=\"2Theta\"> in <dataPoints>")
    listed = find(axis, "listPositions")
    if listed is not None:
        x = np.array(listed.text.split(), dtype=float)
    else:
        start, end = find(axis, "startPosition"), find(axis, "endPosition")
        if start is None or end is None:
            raise XtalbaseError(f"{name}: 2Theta positions need <startPosition>/<endPosition> or <listPositions>")
        x = np.linspace(float(start.text), float(end.text), len(y))
    if len(x) != len(y):
        raise XtalbaseError(f"{name}: {len(x)} 2θ positions but {len(y)} intensities")
    wavelength = None
    used = find(root, "usedWavelength")
    if used is not None:
        k1, k2, ratio = find(used, "kAlpha1"), find(used, "kAlpha2"), find(used, "ratioKAlpha2KAlpha1")
        if k1 is not None and k2 is not None:
            r = float(ratio.text) if ratio is not None else 0.5
            wavelength = (float(k1.text) + r * float(k2.text)) / (1 + r)
        elif k1 is not None:
            wavelength = float(k1.text)
    meta: dict[str, Any] = {}
    sample = find(root, "sample")
    if sample is not None:
        sample_id = find(sample, "id")
        sample_id = sample_id if sample_id is not None else find(sample, "name")
        if sample_id is not None and sample_id.text:
            meta["sample"] = sample_id.text.strip()
    return Scan(x, y, wavelength, name, meta)


def with_wavelength(scan: Scan, wavelength: float | None = None, default: float = 1.54184) -> Scan:
    """Set the scan's wavelength (Å): ``wavelength`` if given, else the file's, else ``default`` (Cu Kα), noted in ``meta``."""
    if wavelength is not None:
        scan.wavelength = float(wavelength)
    elif scan.wavelength is None:
        scan.wavelength = default
        scan.meta["wavelength_assumed"] = True
    return scan


def check_scan(scan: Scan) -> Scan:
    """``scan`` with its points sorted by 2θ, or a clear error: too few points, NaN/inf, repeated 2θ, outside 0-180°."""
    x, y = np.asarray(scan.two_theta, dtype=float), np.asarray(scan.intensity, dtype=float)
    if len(x) < 10:
        raise XtalbaseError(f"{scan.path}: only {len(x)} points; a scan needs at least 10")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise XtalbaseError(f"{scan.path}: scan contains NaN or infinite values")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if (np.diff(x) <= 0).any():
        raise XtalbaseError(f"{scan.path}: repeated 2θ positions")
    if x[0] < 0 or x[-1] > 180:
        raise XtalbaseError(f"{scan.path}: 2θ outside 0-180 degrees ({x[0]:g}..{x[-1]:g})")
    scan.two_theta, scan.intensity = x, y
    return scan


def snip_background(two_theta: np.ndarray, intensity: np.ndarray, width: float = 2.0) -> np.ndarray:
    """SNIP background (same units as ``intensity``) with clipping windows up to ``width`` degrees."""
    y = np.asarray(intensity, dtype=float)
    step = float(np.median(np.diff(two_theta)))
    iterations = max(1, int(round(width / step / 2)))
    v = np.log(np.log(np.sqrt(np.maximum(y, 0) + 1) + 1) + 1)
    for p in range(1, iterations + 1):
        mean = np.empty_like(v)
        mean[p:-p] = 0.5 * (v[:-2 * p] + v[2 * p:])
        mean[:p], mean[-p:] = v[:p], v[-p:]
        v = np.minimum(v, mean)
    return (np.exp(np.exp(v) - 1) - 1) ** 2 - 1


def find_peaks(scan: Scan, *, background_width: float = 2.0, smooth: float = 0.1, min_prominence: float = 0.02,
               min_distance: float = 0.1) -> Pattern:
    """Background-subtracted peaks of ``scan``: 2θ (degrees), net intensity scaled to 100, d-spacing (Å, when λ is known)."""
    from scipy.signal import find_peaks as scipy_find_peaks
    from scipy.signal import savgol_filter

    x, y = scan.two_theta, scan.intensity
    step = float(np.median(np.diff(x)))
    net = y - snip_background(x, y, background_width)
    window = max(5, int(round(smooth / step)) | 1)
    if window < len(net):
        net = savgol_filter(net, window, 3)
    top = float(net.max())
    if top <= 0:
        return Pattern(np.zeros(0), np.zeros(0), np.zeros(0), None, scan.wavelength)
    idx, _ = scipy_find_peaks(net, prominence=min_prominence * top, distance=max(1, int(round(min_distance / step))))
    idx = idx[(idx > 0) & (idx < len(x) - 1)]
    left, mid, right = net[idx - 1], net[idx], net[idx + 1]
    denom = left - 2 * mid + right
    shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, -1), 0.0)
    positions = x[idx] + np.clip(shift, -1, 1) * step
    heights = mid / top * 100
    d = (scan.wavelength / (2 * np.sin(np.radians(positions / 2)))) if scan.wavelength else np.full(len(idx), np.nan)
    return Pattern(positions, heights, d, None, scan.wavelength, {"background_width": background_width, "smooth": smooth,
                                                                   "min_prominence": min_prominence, "min_distance": min_distance})


def picked_scan(path: str, wavelength: float | None, peak_options: dict[str, Any]) -> tuple[Scan, Pattern]:
    """Pure (runs in worker processes): the scan at ``path`` with its wavelength settled, and its picked peaks."""
    scan = with_wavelength(read_scan(path), wavelength)
    return scan, find_peaks(scan, **peak_options)


def import_scan(db: Any, path: str | Path, *, structure_id: int | None = None, wavelength: float | None = None, name: str | None = None,
                **peak_options: Any) -> dict[str, Any]:
    """Store a measured scan as a ``kind='measured'`` pattern (picked peaks + raw profile), optionally linked to a structure.

    Idempotent on the file's content: importing the same file again returns the stored pattern.
    """
    return import_scans(db, [path], structure_id=structure_id, wavelength=wavelength, name=name, **peak_options)[0]


def import_scans(db: Any, paths: Sequence[str | Path], *, structure_id: int | None = None, wavelength: float | None = None,
                 name: str | None = None, workers: int = 1, progress: Callable[[int], None] | None = None,
                 **peak_options: Any) -> list[dict[str, Any]]:
    """:func:`import_scan` for each of ``paths``: files read and peak-picked in ``workers`` processes, each stored in
    its own ``xrd-import`` run; results in the order of ``paths``. ``progress(files_done)`` after each file."""
    from sqlalchemy import select

    from xtalbase.platform.runner import Runner
    from xtalbase.schema import Structure, XrdPattern

    if structure_id is not None:
        with db.session() as s:
            if s.get(Structure, structure_id) is None:
                raise XtalbaseError(f"no structure with id {structure_id}")
    results = []
    tasks = ((path, (str(path), wavelength, peak_options)) for path in paths)
    with Runner(picked_scan, workers=workers, name="xrd-import", progress=progress) as runner:
        for path, (scan, peaks) in runner.map(tasks):
            with db.session() as s:
                existing = s.scalars(select(XrdPattern).where(XrdPattern.kind == "measured",
                                                              XrdPattern.file_hash == scan.meta["file_hash"])).first()
                if existing is not None:
                    results.append({"pattern_id": existing.id, "npeaks": existing.npeaks, "created": False})
                    continue
            results.append(_store_scan(db, path, scan, peaks, structure_id, name, peak_options))
    return results


def _store_scan(db: Any, path: str | Path, scan: Scan, peaks: Pattern, structure_id: int | None, name: str | None,
                peak_options: dict[str, Any]) -> dict[str, Any]:
    from xtalbase.schema import XrdPattern, XrdPeak
    from xtalbase.schema.arrays import pack
    from xtalbase.xrd.builder import pattern_row, peak_rows_of

    file_hash = scan.meta["file_hash"]
    with db.run("xrd-import", {"file": str(path), "structure_id": structure_id, **peak_options}) as run:
        run.link_input("file", path=str(path), sha256=file_hash)
        row = pattern_row(peaks, kind="measured", structure_id=structure_id, recipe_id=None, run_id=run.id,
                          name=name or Path(path).stem, file_path=str(path), file_hash=file_hash,
                          profile_x=pack(scan.two_theta), profile_y=pack(scan.intensity))
        pattern = XrdPattern(**row)
        run.session.add(pattern)
        run.session.flush()
        run.session.add_all(XrdPeak(**r) for r in peak_rows_of(peaks, pattern.id, None, structure_id))
        run.link_output("xrd_pattern", pattern.id, label=pattern.name)
        run.summary = {"pattern_id": pattern.id, "npeaks": len(peaks)}
        return {"pattern_id": pattern.id, "npeaks": len(peaks), "created": True, "run_id": run.id}
