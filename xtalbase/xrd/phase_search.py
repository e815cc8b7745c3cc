"""Phase identification: which stored phases, with what scale factors, explain a measured scan.

**The score is a least-squares profile fit**, not a peak count. A candidate's profile ``p`` (its sticks
broadened onto the scan's grid) is fitted to the scan's net profile ``y`` with a scale ``a ≥ 0``; alone,
the best ``a`` removes ``⟨y,p⟩² / |p|²`` of ``|y|²``, i.e. the candidate scores the squared cosine between
the two profiles. Intensity the candidate explains raises ``⟨y,p⟩``; every strong peak it predicts where the
scan has none raises ``|p|`` without raising ``⟨y,p⟩`` and so lowers the score. A candidate with hundreds
of peaks "explains" every scan peak under the old peak-pairing score but spreads its intensity over
positions the scan lacks, so here it scores low (see ``docs/xrd.md`` for the shared examples).

**Search** (:func:`search_phases`): greedy with a beam. Each step

1. *screens* every candidate against what is still unexplained (the residual, clipped at 0) with a wide
   kernel (``screen_fwhm``) over a coarse uniform-strain grid: ``⟨r,p⟩`` is a sum of the blurred residual
   read at the candidate's sticks and ``|p|²`` a sum over nearby stick pairs, so no profile is drawn;
2. *refines* the ``shortlist`` best with the fit kernel, both Kα lines, a fine strain grid and (first step
   only) the scan's zero shift, ranking them by the residual drop of a joint fit with the phases already
   chosen (the Schur complement of the Gram matrix);
3. *fits* the best few exactly: their profiles are drawn and all phases' scales refitted by non-negative
   least squares (``scipy.optimize.nnls``).

A step is kept when it lowers the relative residual ``|y - Σ a_i p_i|² / |y|²`` by at least ``min_gain``;
the search stops at ``max_phases`` or when no candidate does. The ``beam`` best partial solutions are
carried from step to step, so one wrong early choice does not decide the answer.

**Weight fractions** (Hill & Howard, J. Appl. Cryst. 20 (1987) 467): a phase's Rietveld scale on
``|F|²`` is ``S ∝ w / (ρ V²)``, so ``w_i ∝ S_i · M_i · V_i`` (cell mass M, cell volume V). Stored intensities
are scaled to 100 and drawn as unit-height peaks of the phase's width, so ``S_i = a_i · fwhm_i / n_i`` with
``a_i`` the fitted height scale and ``n_i`` the pattern's unscaled maximum. Micro-absorption and
preferred orientation are ignored: the fractions are rough.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.xrd.peak_index import PeakIndex
from xtalbase.xrd.scan_profile import PreparedScan, blurred, pair_kernel, render, two_theta_of

#: Refinement around the screened strain: ±0.25 % in 0.05 % steps.
REFINE_SPAN, REFINE_STEP = 0.0025, 0.0005
#: A candidate whose residual drop is within this fraction of the chosen phase's is reported as its alternative.
ALTERNATIVE_MARGIN = 0.1
#: Above this many candidates a wider-kernel pass keeps this many for the screening proper.
PRESCREEN_KEEP = 3000
#: ... using only sticks of at least this % of their pattern's strongest (a third of the sticks of 1 % and more).
PRESCREEN_MIN_INTENSITY = 5.0
#: A chosen phase "covers" a picked peak when it predicts at least this fraction of the peak's net height there.
COVER_FRACTION = 0.1
#: Per-axis strains are searched up to this much beyond ``max_strain`` (DFT errors along one axis can reach several %).
AXES_SPAN = 0.03
#: ... and kept only when they raise the residual drop by more than this fraction.
AXES_MIN_IMPROVEMENT = 0.05
#: Broadest peak (FWHM, degrees) a phase may be fitted with.
MAX_FWHM = 1.2


def peak_widths(fwhm: float, step: float = 0.02) -> list[float]:
    """Peak widths (FWHM, degrees) tried per candidate: half of ``fwhm`` (when at least 3 grid steps), ``fwhm``, then
    doubled up to :data:`MAX_FWHM`. Phases in one sample differ in crystallite size: a poorly crystalline minor phase
    has broader peaks than the scan's typical one, and a well crystalline one sharper."""
    widths = [fwhm / 2] if fwhm / 2 >= 3 * step else []
    widths.append(fwhm)
    while widths[-1] * 2 <= MAX_FWHM:
        widths.append(widths[-1] * 2)
    return widths


@dataclass(frozen=True)
class SearchSettings:
    """Options of :func:`search_phases` (angles in degrees 2θ, strain as a fraction of d).

    ``fit_fwhm`` / ``screen_fwhm`` ``None`` = derived from the scan's peak width (see :meth:`kernels`). ``min_peak``
    (% of the strongest net peak): a phase is only kept when it explains a picked peak at least this strong that no
    other chosen phase can produce. ``min_intensity`` (% of a pattern's strongest): weaker sticks are left out of
    the screening.
    """

    max_phases: int = 3
    min_gain: float = 0.01
    max_strain: float = 0.015
    max_shift: float = 0.5
    fit_fwhm: float | None = None
    screen_fwhm: float | None = None
    min_intensity: float = 1.0
    min_peak: float = 5.0
    shortlist: int = 50
    exact: int = 6
    beam: int = 3
    top: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.max_phases <= 10:
            raise XtalbaseError(f"max_phases must be 1-10, got {self.max_phases}")
        if not 0 <= self.max_strain < 0.2 or not 0 <= self.max_shift <= 1:
            raise XtalbaseError(f"max_strain must be in [0, 0.2) and max_shift in [0, 1] degrees, got {self.max_strain}, {self.max_shift}")
        if not 0 <= self.min_peak < 100:
            raise XtalbaseError(f"min_peak is a percentage of the strongest peak in [0, 100), got {self.min_peak}")
        if not 0 <= self.min_gain < 1:
            raise XtalbaseError(f"min_gain is a fraction of the scan's squared intensity in [0, 1), got {self.min_gain}")
        for name in ("shortlist", "exact", "beam", "top"):
            if int(getattr(self, name)) < 1:
                raise XtalbaseError(f"{name} must be >= 1, got {getattr(self, name)}")

    def kernels(self, scan: PreparedScan) -> tuple[float, float]:
        """(fit, screen) Gaussian FWHM in degrees: the scan's peak width (at least 0.1°, which absorbs small
        anisotropic lattice errors a uniform strain cannot), and three times that (at least 0.4°) for screening."""
        fit = self.fit_fwhm if self.fit_fwhm is not None else max(scan.fwhm, 0.1)
        screen = self.screen_fwhm if self.screen_fwhm is not None else max(3 * fit, 0.4)
        return float(fit), float(screen)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Phase:
    """One identified phase: its scale ``a`` (on the scan's max-1 net profile, pattern max 100), strain, share of the
    fitted intensity, weight fraction (when cell data allow), the picked peaks (2θ) it explains, and the
    candidates that fit within 10 % of its residual drop in its place (``alternatives``: look-alikes the scan
    cannot tell apart, e.g. an ordered TiMnO4 with the anatase pattern)."""

    structure_id: int
    formula: str
    spacegroup: int | None
    scale: float
    strain: float
    fwhm: float
    intensity_share: float
    cosine: float
    weight_fraction: float | None = None
    explained_peaks: list[float] = field(default_factory=list)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    axis_strains: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        out["axis_strains"] = None if self.axis_strains is None else [round(v, 5) for v in self.axis_strains]
        out["explained_peaks"] = [round(v, 3) for v in self.explained_peaks]
        return out


@dataclass
class Identification:
    """The phases explaining a scan, the zero shift, the relative residual before and after each phase, the
    picked peaks no phase explains, the first step's ranking, and the profiles for plotting."""

    phases: list[Phase]
    shift: float
    residual: float
    residual_steps: list[float]
    unexplained_peaks: list[float]
    ranking: list[dict[str, Any]]
    n_candidates: int
    settings: dict[str, Any]
    x: np.ndarray
    y: np.ndarray
    profiles: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no profiles)."""
        return {"phases": [p.to_dict() for p in self.phases], "shift": round(self.shift, 4), "residual": round(self.residual, 5),
                "residual_steps": [round(v, 5) for v in self.residual_steps],
                "unexplained_peaks": [round(v, 3) for v in self.unexplained_peaks], "ranking": self.ranking,
                "n_candidates": self.n_candidates, "settings": self.settings}


@dataclass
class _State:
    """A partial solution: chosen candidates (index positions), their strains, shift, profiles, scales, residual."""

    members: tuple[int, ...]
    strains: tuple[float, ...]
    shift: float | None
    widths: tuple[float, ...]
    sticks: tuple[tuple[np.ndarray, np.ndarray], ...]  # per member: d-spacings as fitted (strain applied) and intensities
    profiles: np.ndarray  # (k, n)
    scales: np.ndarray    # (k,)
    residual: float       # |y - P a|² / |y|²
    history: tuple[float, ...]
    alternatives: tuple[tuple[int, ...], ...] = ()  # per member: candidates that fit nearly as well in its place
    axes: tuple[tuple[float, float, float] | None, ...] = ()  # per member: strains of a, b, c when fitted per axis, else None
    done: bool = False


def search_phases(scan: PreparedScan, index: PeakIndex, candidates: np.ndarray, settings: SearchSettings | None = None,
                  *, raw_max: Callable[[int], float] | None = None,
                  reflections: Callable[[int], Reflections | None] | None = None) -> Identification:
    """Explain ``scan`` by up to ``settings.max_phases`` of the index's ``candidates`` (positions into ``index``).

    ``raw_max(structure_id)`` gives a pattern's unscaled maximum intensity for the weight fractions (omitted:
    no weight fractions). ``reflections(structure_id)`` gives a candidate's cell and Miller indices, so the best few
    candidates of each step are also fitted with a strain per cell axis (omitted: uniform strain only).
    """
    settings = settings or SearchSettings()
    candidates = np.asarray(candidates, dtype=np.int64)
    if not len(candidates):
        raise XtalbaseError("no candidate phases to search: the element list or filter matches no stored pattern")
    fit_w, screen_w = settings.kernels(scan)
    y = scan.y
    pool = candidates
    if len(pool) > PRESCREEN_KEEP:
        # many candidates: keep those whose profiles (their sticks of at least 5 %, a kernel 2.5 times wider, so a
        # coarser strain and shift grid) best match the whole scan; later steps search among them only
        wide = 2.5 * screen_w
        strong = replace(settings, min_intensity=max(settings.min_intensity, PRESCREEN_MIN_INTENSITY))
        first = screen(scan, index, pool, y, strong, wide, coarse_shift_grid(settings, wide))[0]
        pool = pool[np.sort(np.argsort(-first, kind="stable")[:PRESCREEN_KEEP])]
    lines = screen_lines(scan, index, pool, settings, screen_w)
    yy = float(y @ y)
    beam = [_State((), (), None, (), (), np.zeros((0, len(y))), np.zeros(0), 1.0, (1.0,))]
    ranking: list[dict[str, Any]] = []
    for step in range(settings.max_phases):
        expanded: list[_State] = []
        for state in beam:
            if state.done:
                expanded.append(state)
                continue
            children = _expand(scan, index, lines, state, settings, fit_w, screen_w, yy,
                               ranking if step == 0 and not ranking else None, reflections)
            good = [c for c in children if state.residual - c.residual >= settings.min_gain]
            expanded.extend(good or [_State(**{**state.__dict__, "done": True})])
        unique: dict[frozenset[int], _State] = {}
        for state in sorted(expanded, key=lambda s: s.residual):
            unique.setdefault(frozenset(state.members), state)
        beam = list(unique.values())[: settings.beam]
        if all(s.done for s in beam):
            break
    best = _simplest_lookalikes(scan, index, min(beam, key=lambda s: s.residual), settings, fit_w, screen_w, yy)
    return _report(scan, index, candidates, best, settings, fit_w, ranking, raw_max)


def reflection_count(scan: PreparedScan, index: PeakIndex, position: int, min_intensity: float = 1.0) -> int:
    """Reflections of a candidate inside the scan's range with at least ``min_intensity`` % of its strongest."""
    d, inten, _ = index.lines(np.array([position]))
    tt = two_theta_of(d, scan.wavelength)
    return int((np.isfinite(tt) & (tt >= scan.x[0]) & (tt <= scan.x[-1]) & (inten >= min_intensity)).sum())


def _simplest_lookalikes(scan: PreparedScan, index: PeakIndex, state: _State, settings: SearchSettings, fit_w: float,
                         screen_w: float, yy: float) -> _State:
    """Occam's rule among look-alikes: a chosen phase is swapped for one of its alternatives with fewer reflections
    when that one, refitted in its place, leaves the residual within :data:`ALTERNATIVE_MARGIN` of the phase's own
    drop. A superstructure or low-symmetry cell that reproduces a simple pattern (TiMnO4 I-4m2 or Ti6O11 for
    anatase) explains nothing more than the simple phase, and its extra reflections are only unseen weak ones."""
    from scipy.optimize import nnls

    for i in range(len(state.members)):
        alternatives = state.alternatives[i] if i < len(state.alternatives) else ()
        member = state.members[i]
        own = reflection_count(scan, index, member)
        counted = ((reflection_count(scan, index, a), a) for a in alternatives if a not in state.members)
        simpler = sorted((count, a) for count, a in counted if count < own)
        if not simpler:
            continue
        others = np.ones(len(state.members), dtype=bool)
        others[i] = False
        rest = _State(_kept(state.members, others), _kept(state.strains, others), state.shift, _kept(state.widths, others),
                      _kept(state.sticks, others), state.profiles[others], np.zeros(0), 1.0, (), axes=_kept(state.axes, others))
        rest.scales = nnls(rest.profiles.T, scan.y)[0] if len(rest.members) else np.zeros(0)
        without = float(np.sum((scan.y - rest.scales @ rest.profiles) ** 2)) / yy if len(rest.members) else 1.0
        allowed = state.residual + ALTERNATIVE_MARGIN * max(without - state.residual, 0.0)
        residual = scan.y - rest.scales @ rest.profiles if len(rest.members) else scan.y
        for _, alt in simpler:
            # the alternative's strain is first screened over the whole range, then refined around it
            alt_lines = screen_lines(scan, index, np.array([alt]), settings, screen_w)
            _, coarse, _ = screen_scores(scan, alt_lines, np.maximum(residual, 0), settings, screen_w, np.array([state.shift or 0.0]))
            gain, strain, shift, width = refine(scan, index, np.array([alt]), residual, rest, settings, fit_w, coarse)
            d, inten, _ = index.lines(np.array([alt]))
            sticks = (d.astype(float) * (1 + float(strain[0])), inten.astype(float))
            profile = render(sticks[0], sticks[1], scan.x, scan.lines, float(width[0]), 0.0, float(shift[0]))
            profiles = state.profiles.copy()
            profiles[i] = profile
            scales, norm = nnls(profiles.T, scan.y)
            rel = float(norm * norm) / yy
            if rel <= allowed and scales[i] > 0:
                swapped = tuple(alternatives) + (member,)
                alts = list(state.alternatives)
                alts[i] = tuple(a for a in swapped if a != alt)
                axes = list(state.axes)
                axes[i] = None
                state = _State(state.members[:i] + (alt,) + state.members[i + 1:], state.strains[:i] + (float(strain[0]),) + state.strains[i + 1:],
                               state.shift, state.widths[:i] + (float(width[0]),) + state.widths[i + 1:],
                               state.sticks[:i] + (sticks,) + state.sticks[i + 1:], profiles, scales, rel,
                               state.history[:-1] + (rel,), tuple(alts), tuple(axes))
                break
    return state


def _expand(scan: PreparedScan, index: PeakIndex, lines: ScreenLines, state: _State, settings: SearchSettings, fit_w: float,
            screen_w: float, yy: float, ranking: list[dict[str, Any]] | None,
            reflections: Callable[[int], Reflections | None] | None = None) -> list[_State]:
    """The states reached from ``state`` by adding one of the best few candidates (exact NNLS fits)."""
    from scipy.optimize import nnls

    y = scan.y
    residual = y - state.scales @ state.profiles if len(state.members) else y.copy()
    coarse_shifts = coarse_shift_grid(settings, screen_w) if state.shift is None else np.array([state.shift])
    cos, strain, shift0 = screen_scores(scan, lines, np.maximum(residual, 0), settings, screen_w, coarse_shifts)
    cos[np.isin(lines.positions, state.members)] = -np.inf
    pool = lines.positions
    short = np.argsort(-cos, kind="stable")[: settings.shortlist]
    short = short[np.isfinite(cos[short])]
    if not len(short):
        return []
    gain, strains, shift, widths = refine(scan, index, pool[short], residual, state, settings, fit_w, strain[short], shift0[short],
                                          coarse_shifts)
    if ranking is not None:
        order = np.argsort(-gain, kind="stable")[: settings.top]
        ranking.extend({"structure_id": int(index.structure_ids[pool[short][i]]), "formula": str(index.formulas[pool[short][i]]),
                        "spacegroup": int(index.spacegroups[pool[short][i]]) or None, "score": round(float(gain[i]) / yy, 5),
                        "strain": round(float(strains[i]), 5)} for i in order)
    peak_x = scan.peaks.two_theta
    net = np.interp(peak_x, scan.x, y)
    before = np.interp(peak_x, scan.x, y - residual) if len(state.members) else np.zeros(len(peak_x))
    covered = _coverage(scan, index, state, peak_x, net).any(axis=0)
    children = []
    for i in np.argsort(-gain, kind="stable")[: settings.exact]:
        if not gain[i] > 0:
            break
        position = int(pool[short][i])
        d, inten, _ = index.lines(np.array([position]))
        sticks, axes = (d.astype(float) * (1 + strains[i]), inten.astype(float)), None
        refl = reflections(int(index.structure_ids[position])) if reflections is not None else None
        if refl is not None and len(refl.hkl):
            fitted = fit_axes(scan, refl, residual, state, float(strains[i]), float(shift[i]), float(widths[i]), settings)
            if fitted is not None:
                sticks, axes, shift[i] = fitted
        profile = render(sticks[0], sticks[1], scan.x, scan.lines, float(widths[i]), 0.0, shift[i])
        profiles = np.vstack([state.profiles, profile[None, :]])
        scales, norm = nnls(profiles.T, y)
        keep = scales > 0
        if not keep[-1]:
            continue
        # a new phase must account for a picked peak that the phases before it neither fit (half its net height)
        # nor could produce (no reflection of theirs there): misfit intensity is not a new phase
        mine = scales[-1] * np.interp(peak_x, scan.x, profile)
        if not ((mine >= 0.5 * net) & (before < 0.5 * net) & ~covered & (net * 100 >= settings.min_peak)).any():
            continue
        rel = float(norm * norm) / yy
        strain = float(np.mean(axes)) if axes is not None else float(strains[i])
        children.append(_State(_kept(state.members + (position,), keep), _kept(state.strains + (strain,), keep),
                               float(shift[i]), _kept(state.widths + (float(widths[i]),), keep), _kept(state.sticks + (sticks,), keep),
                               profiles[keep], scales[keep], rel, state.history + (rel,), _kept(state.alternatives + ((),), keep),
                               _kept(state.axes + (axes,), keep)))
    children = [_prune(scan, index, child, yy, settings.min_peak) for child in children]
    # candidates whose own fit reaches within ALTERNATIVE_MARGIN of a child's gain are listed beside its new phase
    for child in children:
        if child.members and child.members[-1] not in state.members:
            gain = state.residual - child.residual
            alts = tuple(o.members[-1] for o in children if o is not child and o.members and o.members[-1] not in state.members
                         and abs((state.residual - o.residual) - gain) <= ALTERNATIVE_MARGIN * gain)
            child.alternatives = child.alternatives[:-1] + (alts,)
    return children


@dataclass
class Reflections:
    """A candidate's reflections with Miller indices: ``cell`` (3, 3) Å (rows a, b, c), ``hkl`` (n, 3), ``intensity``
    (n,) on its pattern's max-100 scale (a merged peak's intensity shared among its families by multiplicity)."""

    cell: np.ndarray
    hkl: np.ndarray
    intensity: np.ndarray

    def d_spacings(self, axis_strain: np.ndarray) -> np.ndarray:
        """d (Å) of every reflection with cell lengths × (1 + ``axis_strain``), (..., 3) strains → (..., n)."""
        reciprocal = np.linalg.inv(self.cell).T
        scaled = self.hkl[None, :, :] / (1 + np.atleast_2d(axis_strain))[:, None, :]
        g = scaled @ reciprocal
        return (1 / np.linalg.norm(g, axis=-1)).reshape(np.shape(axis_strain)[:-1] + (len(self.hkl),))


def fit_axes(scan: PreparedScan, refl: Reflections, residual: np.ndarray, state: _State, strain: float, shift: float, width: float,
             settings: SearchSettings) -> tuple[tuple[np.ndarray, np.ndarray], tuple[float, float, float], float] | None:
    """A strain per cell axis (a, b, c scaled independently, angles kept) around the uniform ``strain`` (and, while the
    scan's zero shift is still free, the shift too), when it raises the candidate's residual drop by more than
    :data:`AXES_MIN_IMPROVEMENT` (more parameters must earn their place). DFT cells are often wrong anisotropically
    (layered and molecular solids by several % along one axis), which no uniform strain absorbs.

    Returns the fitted (d, intensity) sticks, the three strains and the shift, or None."""
    k = len(state.profiles)
    gram_inv = np.linalg.pinv(state.profiles @ state.profiles.T) if k else None
    x0 = float(scan.x[0])
    keep = refl.intensity >= settings.min_intensity / 2
    refl = Reflections(refl.cell, refl.hkl[keep], refl.intensity[keep])
    if not len(refl.hkl):
        return None
    free_shift = state.shift is None and settings.max_shift > 0

    def gains(trials: np.ndarray, kernel: float) -> np.ndarray:
        r_blur = blurred(residual, scan.step, kernel)
        p_blur = [blurred(p, scan.step, kernel) for p in state.profiles]
        # |p|² at the uniform strain stands for every trial (the sticks' overlaps change little within a few %)
        base_profile = render(refl.d_spacings(np.full((1, 3), strain))[0], refl.intensity, scan.x, scan.lines, kernel, 0.0, shift)
        norm2 = float(base_profile @ base_profile)
        out = []
        for part in np.array_split(trials, max(1, len(trials) // 2000)):
            d = refl.d_spacings(part[:, :3])  # (T, n)
            value = np.zeros(len(part))
            cross = np.zeros((k, len(part)))
            for lam, w in scan.lines:
                tt = two_theta_of(d, lam)
                tt = np.where(np.isfinite(tt), tt, -1.0) + part[:, 3:4]
                value += w * (_sample(r_blur, x0, scan.step, tt) * refl.intensity).sum(axis=1)
                for i, pb in enumerate(p_blur):
                    cross[i] += w * (_sample(pb, x0, scan.step, tt) * refl.intensity).sum(axis=1)
            explained = np.einsum("it,ij,jt->t", cross, gram_inv, cross) if k else 0.0
            denom = np.maximum(norm2 - explained, 1e-9 * norm2)
            out.append(np.where(value > 0, value * value / np.maximum(denom, 1e-12), 0.0))
        return np.concatenate(out)

    base = np.array([strain, strain, strain, shift])
    limit = settings.max_strain + AXES_SPAN
    # coarse to fine, each stage seen through a kernel wide enough that one step moves no peak past it: 1 % steps over
    # the whole range (1.2°), 0.25 % (0.4°), 0.05 % (the fit width); the zero shift alongside while it is free
    stages = ((limit, 0.01, settings.max_shift, 0.1, max(width, 1.2)), (0.01, 0.0025, 0.1, 0.05, max(width, 0.4)),
              (0.003, 0.0005, 0.025, 0.025, width))
    best = base
    for number, (span, step, shift_span, shift_step, kernel) in enumerate(stages):
        offsets = np.arange(-span, span + 1e-12, step)
        shifts = np.arange(-shift_span, shift_span + 1e-9, shift_step) if free_shift else np.zeros(1)
        grid = np.stack(np.meshgrid(offsets, offsets, offsets, shifts, indexing="ij"), axis=-1).reshape(-1, 4)
        if number:
            grid += best[None, :]
        elif not free_shift:
            grid[:, 3] += best[3]
        grid = grid[(np.abs(grid[:, :3]) <= limit + 1e-9).all(axis=1) & (np.abs(grid[:, 3]) <= settings.max_shift + 1e-9)]
        grid = np.vstack([best[None, :], grid])
        best = grid[int(gains(grid, kernel).argmax())]
    uniform = float(gains(base[None, :], width)[0])
    best_gain = float(gains(best[None, :], width)[0])
    if not best_gain > uniform * (1 + AXES_MIN_IMPROVEMENT):
        return None
    return (refl.d_spacings(best[None, :3])[0], refl.intensity.astype(float)), tuple(float(v) for v in best[:3]), float(best[3])


def _kept(values: tuple, keep: np.ndarray) -> tuple:
    """The entries of ``values`` whose phase kept a positive scale."""
    return tuple(v for v, k in zip(values, keep) if k)


def _coverage(scan: PreparedScan, index: PeakIndex, state: _State, peak_x: np.ndarray, net: np.ndarray) -> np.ndarray:
    """(k, npeaks) bool: chosen phase i has a reflection at picked peak j (within its FWHM, at least 0.1°) predicted at
    :data:`COVER_FRACTION` or more of the peak's net height, so wrong relative intensities or peak shapes of phase i
    could make up that peak."""
    out = np.zeros((len(state.members), len(peak_x)), dtype=bool)
    for row, ((d, inten), width, scale) in enumerate(zip(state.sticks, state.widths, state.scales)):
        for lam, w in scan.lines:
            tt = two_theta_of(d, lam) + (state.shift or 0.0)
            height = scale * w * inten
            near = np.abs(peak_x[:, None] - tt[None, :]) <= max(width, 0.1)
            out[row] |= (near & (height[None, :] >= COVER_FRACTION * net[:, None])).any(axis=1)
    return out


def _prune(scan: PreparedScan, index: PeakIndex, state: _State, yy: float, min_peak: float) -> _State:
    """``state`` without the phases that explain no picked peak of their own (half its net height, at least ``min_peak``
    % of the strongest, at a position no other chosen phase covers), dropped weakest first with the scales refitted."""
    from scipy.optimize import nnls

    peak_x = scan.peaks.two_theta
    if not len(peak_x) or len(state.members) < 2:
        return state
    net = np.interp(peak_x, scan.x, scan.y)
    while len(state.members) > 1:
        cover = _coverage(scan, index, state, peak_x, net)
        contributions = state.scales[:, None] * np.array([np.interp(peak_x, scan.x, p) for p in state.profiles])
        idle = [i for i in range(len(state.members))
                if not ((contributions[i] >= 0.5 * net) & ~np.delete(cover, i, axis=0).any(axis=0) & (net * 100 >= min_peak)).any()]
        if not idle:
            return state
        drop = min(idle, key=lambda i: float(contributions[i].sum()))
        keep = np.ones(len(state.members), dtype=bool)
        keep[drop] = False
        profiles = state.profiles[keep]
        scales, norm = nnls(profiles.T, scan.y)
        rel = float(norm * norm) / yy
        state = _State(_kept(state.members, keep), _kept(state.strains, keep), state.shift, _kept(state.widths, keep),
                       _kept(state.sticks, keep), profiles, scales, rel, state.history + (rel,), _kept(state.alternatives, keep),
                       _kept(state.axes, keep))
    return state


@dataclass
class ScreenLines:
    """Candidates' sticks made ready for screening with one kernel: 2θ at the Kα centroid, d(2θ)/dε, intensity,
    owner (index into ``positions``), and each candidate's ``|p|²``; float32, built once per search."""

    positions: np.ndarray
    tt: np.ndarray
    slope: np.ndarray
    inten: np.ndarray
    owner: np.ndarray
    norm2: np.ndarray


def screen_lines(scan: PreparedScan, index: PeakIndex, positions: np.ndarray, settings: SearchSettings, fwhm: float) -> ScreenLines:
    """:class:`ScreenLines` of ``positions``: sticks weaker than ``settings.min_intensity`` % left out, sticks closer
    than a quarter of the kernel merged, the Kα doublet drawn at its centroid."""
    lam = sum(w * lam for lam, w in scan.lines) / sum(w for _, w in scan.lines)
    weight = sum(w for _, w in scan.lines)
    d, inten, owner = index.lines(positions)
    strong = inten >= settings.min_intensity
    d, inten, owner = d[strong], inten[strong], owner[strong]
    tt = two_theta_of(d, lam)
    keep = np.isfinite(tt) & (tt >= scan.x[0] - 1) & (tt <= scan.x[-1] + 1)
    tt, inten, owner = _merge_close(tt[keep], inten[keep].astype(float) * weight, owner[keep], fwhm / 4)
    # |p|² over the scan only: sticks just outside it are kept (a strain can move them in) but cannot be matched
    inside = (tt >= scan.x[0]) & (tt <= scan.x[-1])
    norm2 = _self_overlap(tt[inside], inten[inside], owner[inside], len(positions), scan.step, fwhm)
    slope = -2 * np.tan(np.radians(tt / 2)) * 180 / np.pi
    f32 = np.float32
    return ScreenLines(np.asarray(positions), tt.astype(f32), slope.astype(f32), inten.astype(f32), owner, norm2)


def strain_grid(scan: PreparedScan, settings: SearchSettings, fwhm: float) -> np.ndarray:
    """Uniform strains screened: steps that move the scan's highest-angle peak by half the kernel's FWHM."""
    if settings.max_strain <= 0:
        return np.zeros(1)
    per_strain = 2 * np.tan(np.radians(scan.x[-1] / 2)) * 180 / np.pi
    n = max(2, int(np.ceil(2 * settings.max_strain * per_strain / (0.5 * fwhm))) + 1)
    return np.linspace(-settings.max_strain, settings.max_strain, n)


def screen_scores(scan: PreparedScan, lines: ScreenLines, target: np.ndarray, settings: SearchSettings, fwhm: float,
                  shifts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coarse cosine between ``target`` and each candidate's profile (kernel ``fwhm``), best over :func:`strain_grid`
    and the zero ``shifts`` given (default: none). Returns (cosine (C,), best strain (C,), best shift (C,))."""
    shifts = np.zeros(1) if shifts is None else np.asarray(shifts, dtype=float)
    n = len(lines.positions)
    strains = strain_grid(scan, settings, fwhm)
    grid = [(eps, z) for z in shifts for eps in strains]
    # the blurred target, zero-padded so that a stick outside the scan reads 0 (nearest grid point: the kernel is
    # at least 20 grid steps wide, so rounding moves a stick by under 3 % of it)
    padded = np.concatenate([[0.0], blurred(target, scan.step, fwhm), [0.0]]).astype(np.float32)
    last = len(padded) - 1
    base = (lines.tt - np.float32(scan.x[0])) / np.float32(scan.step) + np.float32(1)
    rate = lines.slope / np.float32(scan.step)
    scores = np.empty((n, len(grid)))
    for k, (eps, z) in enumerate(grid):
        # first order in the strain: 2θ(ε) ≈ 2θ₀ - 2 tan θ₀ · ε (error < 0.03° within ±3 %)
        where = np.rint(base + rate * np.float32(eps) + np.float32(z / scan.step)).astype(np.int64)
        np.clip(where, 0, last, out=where)
        scores[:, k] = np.bincount(lines.owner, padded[where] * lines.inten, minlength=n)
    k = scores.argmax(axis=1)
    denom = np.sqrt(np.maximum(lines.norm2, 1e-12)) * max(float(np.sqrt(target @ target)), 1e-12)
    cos = scores[np.arange(n), k] / denom
    cos[~np.isfinite(cos)] = 0
    return cos, np.array([g[0] for g in grid])[k], np.array([g[1] for g in grid])[k]


def screen(scan: PreparedScan, index: PeakIndex, positions: np.ndarray, target: np.ndarray, settings: SearchSettings,
           fwhm: float, shifts: np.ndarray | None = None, chunk_lines: int = 1_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`screen_scores` for any number of candidates, in chunks of about ``chunk_lines`` sticks (bounded memory)."""
    out = [np.zeros(len(positions)) for _ in range(3)]
    lengths = index.offsets[positions + 1] - index.offsets[positions]
    bounds = _chunk_bounds(lengths, chunk_lines)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = screen_scores(scan, screen_lines(scan, index, positions[lo:hi], settings, fwhm), target, settings, fwhm, shifts)
        for o, p in zip(out, part):
            o[lo:hi] = p
    return out[0], out[1], out[2]


def refine(scan: PreparedScan, index: PeakIndex, positions: np.ndarray, residual: np.ndarray, state: _State, settings: SearchSettings,
           fwhm: float, coarse_strain: np.ndarray, coarse_shift: np.ndarray | None = None,
           shift_grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Residual drop of a joint fit with ``state``'s phases for each candidate, at its best strain, peak width (and shift).

    Returns (gain (R,) in units of the scan's squared net intensity, strain (R,), shift (R,), FWHM (R,)); widths
    tried are :func:`peak_widths`.
    """
    step, x = scan.step, scan.x
    offsets = np.arange(-REFINE_SPAN, REFINE_SPAN + 1e-12, REFINE_STEP)
    n = len(positions)
    if state.shift is None and settings.max_shift > 0:
        # around each candidate's screened shift, to half the screening grid's step either side
        # the grid's nominal step (clipping to ±max_shift can leave one shorter step at the ends)
        half = float(np.diff(shift_grid).max()) / 2 if shift_grid is not None and len(shift_grid) > 1 else settings.max_shift
        local = np.arange(-half, half + 1e-9, max(fwhm / 4, 0.01))
        centre = np.zeros(n) if coarse_shift is None else np.asarray(coarse_shift, float)
        shifts = np.clip(centre[:, None] + local[None, :], -settings.max_shift, settings.max_shift)  # (R, Z)
    else:
        shifts = np.full((n, 1), state.shift or 0.0)
    d0, i0, owner0 = index.lines(positions)
    keep = i0 >= settings.min_intensity / 2
    d0, i0, owner0 = d0[keep].astype(float), i0[keep].astype(float), owner0[keep]
    eps = np.clip(coarse_strain[:, None] + offsets[None, :], -settings.max_strain, settings.max_strain)  # (R, E)
    best = (np.full(n, -1.0), np.zeros(n), np.zeros(n), np.full(n, fwhm))
    k = len(state.profiles)
    gram_inv = np.linalg.pinv(state.profiles @ state.profiles.T) if k else None
    for width in peak_widths(fwhm, step):
        r_blur = blurred(residual, step, width)
        p_blur = [blurred(p, step, width) for p in state.profiles]
        value = np.zeros((n, len(offsets), shifts.shape[1]))
        cross = np.zeros((k, n, len(offsets), shifts.shape[1]))
        sticks_tt, sticks_i, sticks_owner = [], [], []
        for lam, w in scan.lines:
            tt = two_theta_of(d0[:, None], lam, eps[owner0])  # (L, E)
            tt = np.where(np.isfinite(tt), tt, -1.0)[:, :, None] + shifts[owner0][:, None, :]  # (L, E, Z)
            weight = (w * i0)[:, None, None]
            _add_by_owner(value, owner0, _sample(r_blur, float(x[0]), step, tt) * weight)
            for i, pb in enumerate(p_blur):
                _add_by_owner(cross[i], owner0, _sample(pb, float(x[0]), step, tt) * weight)
            unstrained = two_theta_of(d0, lam)
            inside = np.isfinite(unstrained) & (unstrained > x[0] - 3 * width) & (unstrained < x[-1] + 3 * width)
            sticks_tt.append(unstrained[inside]), sticks_i.append(w * i0[inside]), sticks_owner.append(owner0[inside])
        tt_all, i_all, o_all = (np.concatenate(a) for a in (sticks_tt, sticks_i, sticks_owner))
        order = np.lexsort((tt_all, o_all))
        norm2 = _self_overlap(*_merge_close(tt_all[order], i_all[order], o_all[order], width / 8), n, step, width)
        if k:
            explained = np.einsum("icez,ij,jcez->cez", cross, gram_inv, cross)
            denom = np.maximum(norm2[:, None, None] - explained, 1e-9 * norm2[:, None, None])
        else:
            denom = np.broadcast_to(norm2[:, None, None], value.shape)
        gain = np.where(value > 0, value * value / np.maximum(denom, 1e-12), 0.0).reshape(n, -1)
        arg = gain.argmax(axis=1)
        top = gain[np.arange(n), arg]
        better = top > best[0]
        e, z = np.unravel_index(arg, (len(offsets), shifts.shape[1]))
        best[0][better] = top[better]
        best[1][better] = eps[np.arange(n), e][better]
        best[2][better] = shifts[np.arange(n), z][better]
        best[3][better] = width
    gain, strain, shift, width = best
    return np.maximum(gain, 0.0), strain, shift, width


def _add_by_owner(out: np.ndarray, owner: np.ndarray, values: np.ndarray) -> None:
    """``out[c] += Σ_{l: owner[l] = c} values[l]`` for (L, ...) values into (C, ...) ``out`` (owner sorted)."""
    if not len(owner):
        return
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    out[owner[starts]] += np.add.reduceat(values, starts, axis=0)


def _sample(values: np.ndarray, start: float, step: float, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` on the uniform grid ``start + step·i`` at ``t`` (0 outside): ``np.interp``
    without its binary search, which dominates the screening's cost."""
    f = (np.asarray(t) - start) / step
    i = np.floor(f)
    w = f - i
    i = i.astype(np.int64)
    n = len(values)
    inside = (i >= 0) & (i < n - 1)
    i = np.where(inside, i, 0)
    out = values[i] * (1 - w) + values[i + 1] * w
    return np.where(inside, out, 0.0)


def coarse_shift_grid(settings: SearchSettings, screen_fwhm: float) -> np.ndarray:
    """Zero shifts screened at the first step: ±``max_shift`` in steps of half the screening kernel."""
    if settings.max_shift <= 0:
        return np.zeros(1)
    step = screen_fwhm / 2
    n = int(np.ceil(settings.max_shift / step))
    return np.clip(step * np.arange(-n, n + 1), -settings.max_shift, settings.max_shift)


def _chunk_bounds(lengths: np.ndarray, limit: int) -> list[int]:
    """Candidate boundaries so that each chunk holds about ``limit`` sticks."""
    cum = np.cumsum(lengths)
    bounds = [0]
    while bounds[-1] < len(lengths):
        start = cum[bounds[-1] - 1] if bounds[-1] else 0
        nxt = int(np.searchsorted(cum, start + limit, side="right"))
        bounds.append(max(nxt, bounds[-1] + 1))
    bounds[-1] = min(bounds[-1], len(lengths))
    return bounds


def _merge_close(tt: np.ndarray, inten: np.ndarray, owner: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sticks of the same owner closer than ``gap`` merged into their intensity-weighted centre (input sorted by
    owner, then 2θ ascending)."""
    if not len(tt):
        return tt, inten, owner
    start = np.ones(len(tt), dtype=bool)
    start[1:] = (owner[1:] != owner[:-1]) | (np.diff(tt) > gap)
    group = np.cumsum(start) - 1
    total = np.bincount(group, inten)
    centre = np.bincount(group, tt * inten) / np.where(total > 0, total, 1)
    return centre, total, owner[start]


def _self_overlap(tt: np.ndarray, inten: np.ndarray, owner: np.ndarray, n: int, step: float, fwhm: float) -> np.ndarray:
    """``|p|²`` of each owner's broadened sticks: Σ_jk I_j I_k K(t_j - t_k) over pairs within 2.5 FWHM (K < 2e-4 K(0) beyond)."""
    norm2 = np.bincount(owner, inten * inten * pair_kernel(np.zeros(1), step, fwhm)[0], minlength=n)
    cutoff = 2.5 * fwhm
    for m in range(1, len(tt)):
        delta = tt[m:] - tt[:-m]
        near = (owner[m:] == owner[:-m]) & (delta < cutoff)
        if not near.any():
            break
        norm2 += 2 * np.bincount(owner[m:][near], inten[m:][near] * inten[:-m][near] * pair_kernel(delta[near], step, fwhm), minlength=n)
    return norm2


def _report(scan: PreparedScan, index: PeakIndex, candidates: np.ndarray, state: _State, settings: SearchSettings, fit_w: float,
            ranking: list[dict[str, Any]], raw_max: Callable[[int], float] | None) -> Identification:
    """The :class:`Identification` of a final state: shares, weight fractions, explained and unexplained peaks."""
    y = scan.y
    contributions = state.scales[:, None] * state.profiles if len(state.members) else np.zeros((0, len(y)))
    totals = contributions.sum(axis=1)
    share = totals / totals.sum() if totals.sum() > 0 else totals
    peak_x = scan.peaks.two_theta
    at_peaks = np.array([np.interp(peak_x, scan.x, c) for c in contributions]) if len(contributions) else np.zeros((0, len(peak_x)))
    net_at_peaks = np.interp(peak_x, scan.x, y)
    # a picked peak is explained by the phase giving most of the fit there, when the fit reaches 30 % of the scan
    owner = at_peaks.argmax(axis=0) if len(at_peaks) else np.zeros(len(peak_x), dtype=int)
    explained = (at_peaks.max(axis=0) >= 0.3 * net_at_peaks) if len(at_peaks) else np.zeros(len(peak_x), dtype=bool)
    weights = None
    if raw_max is not None and len(state.members):
        mass = index.cell_mass[list(state.members)]
        volume = index.volume[list(state.members)]
        raw = np.array([raw_max(int(index.structure_ids[m])) for m in state.members])
        # the fit's scales are peak heights; a phase's integrated intensity is height × width
        w = state.scales * np.asarray(state.widths) / np.where(raw > 0, raw, np.nan) * mass * volume
        weights = w / np.nansum(w) if np.nansum(w) > 0 else None
    phases = []
    for i, m in enumerate(state.members):
        cosine = float(y @ state.profiles[i]) / max(float(np.linalg.norm(y) * np.linalg.norm(state.profiles[i])), 1e-12)
        phases.append(Phase(int(index.structure_ids[m]), str(index.formulas[m]), int(index.spacegroups[m]) or None, float(state.scales[i]),
                            float(state.strains[i]), float(state.widths[i]), float(share[i]), cosine,
                            None if weights is None or not np.isfinite(weights[i]) else float(weights[i]),
                            [float(v) for v in peak_x[explained & (owner == i)]],
                            [{"structure_id": int(index.structure_ids[a]), "formula": str(index.formulas[a]),
                              "spacegroup": int(index.spacegroups[a]) or None}
                             for a in (state.alternatives[i] if i < len(state.alternatives) else ()) if a not in state.members],
                            state.axes[i]))
    order = np.argsort([-p.intensity_share for p in phases], kind="stable")
    return Identification([phases[i] for i in order], float(state.shift or 0.0), float(state.residual), list(state.history),
                          [float(v) for v in peak_x[~explained]], ranking, int(len(candidates)),
                          {**settings.to_dict(), "fit_fwhm": fit_w, "scan_fwhm": scan.fwhm},
                          scan.x, y, contributions[order] if len(contributions) else contributions)
