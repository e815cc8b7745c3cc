"""``xtalbase xrd ...``: compute, show, import and match powder XRD patterns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import RECIPE_HELP, DbOpt, JsonOpt, SchedulerOpt, console, open_db, print_json, print_table, progress

app = typer.Typer(help="Powder XRD: compute patterns, show them, import measured scans, identify phases.", no_args_is_help=True)

RadiationOpt = Annotated[str, typer.Option("--radiation", help="Named radiation (CuKa, MoKa, CoKa, ...).")]
WavelengthOpt = Annotated[Optional[float], typer.Option("--wavelength", help="Wavelength in Å (overrides --radiation).")]
TwoThetaOpt = Annotated[tuple[float, float], typer.Option("--two-theta", help="2θ range in degrees: MIN MAX.")]


def _recipe_args(radiation: str, wavelength: Optional[float], two_theta: tuple[float, float]) -> dict:
    return {"radiation": None if wavelength is not None else radiation, "wavelength": wavelength, "two_theta": tuple(two_theta)}


@app.command("compute")
def compute(
    ctx: typer.Context,
    db: DbOpt = None,
    radiation: RadiationOpt = "CuKa",
    wavelength: WavelengthOpt = None,
    two_theta: TwoThetaOpt = (0.0, 90.0),
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    scheduler: SchedulerOpt = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Also retry structures that failed for this recipe "
                                               "before (skipped otherwise).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Structures per computed and written batch.")] = 2000,
    hkl: Annotated[bool, typer.Option("--hkl", help="Also store hkl families per peak (slower).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compute and store patterns for every structure lacking one for the recipe (idempotent).

    Stored patterns are kept as they are (a recipe's hash includes the physics version); structures the
    engine cannot compute are stored as failures and skipped by later runs unless --retry-failed.
    """
    from xtalbase.xrd.builder import compute_missing

    handle = open_db(ctx, db)
    with progress() as bar:
        task = bar.add_task("xrd", total=None)
        summary = compute_missing(handle, _recipe_args(radiation, wavelength, two_theta), workers=workers, scheduler=scheduler,
                                  batch_size=batch_size, hkl=hkl, retry_failed=retry_failed,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        print_json(summary)
        return
    out = console()
    out.print(f"recipe {summary['recipe_id']} ({summary['recipe_hash'][:12]}): {summary['computed']} patterns computed "
              f"of {summary['missing']} missing in {summary['seconds']} s (run {summary['run_id']})")
    for failure in summary["failed"][:10]:
        out.print(f"  structure {failure['structure_id']}: {failure['reason']}")
    if summary["skipped_failed"]:
        out.print(f"{summary['skipped_failed']} structures skipped: they failed for this recipe before (--retry-failed)")


@app.command("recipes")
def recipes(ctx: typer.Context, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List stored XRD recipes with their pattern counts."""
    from xtalbase.platform.repositories.patterns import recipe_summaries

    with open_db(ctx, db).session() as s:
        rows = recipe_summaries(s)
    print_json(rows) if as_json else print_table(rows)


#: The same default as `train --recipe` (xtalbase.xrd.recipe.resolve_recipe).


@app.command("show")
def show(
    ctx: typer.Context,
    structure_id: Annotated[int, typer.Argument(help="Structure id.")],
    db: DbOpt = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help=RECIPE_HELP)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG: stick pattern with the broadened profile.")] = None,
    fwhm: Annotated[float, typer.Option("--fwhm", help="Profile FWHM in degrees for the plot.")] = 0.2,
    top: Annotated[int, typer.Option("--top", help="Peaks listed (strongest first); 0 = all.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Show a structure's stored pattern (peaks), optionally as a plot."""
    from xtalbase.xrd.plot import load_pattern, plot_pattern

    handle = open_db(ctx, db)
    info = load_pattern(handle, structure_id, recipe)
    if plot is not None:
        plot_pattern(info, plot, fwhm=fwhm)
    peaks = [{"two_theta": round(t, 4), "intensity": round(i, 2), "d_spacing": round(d, 5), **({"hkl": h} if h is not None else {})}
             for t, i, d, h in zip(info["two_theta"].tolist(), info["intensity"].tolist(), info["d_spacing"].tolist(),
                                   info["hkl_families"] or [None] * len(info["two_theta"]))]
    listed = sorted(peaks, key=lambda p: -p["intensity"])[: top or None]
    if as_json:
        print_json({k: v for k, v in info.items() if k not in ("two_theta", "intensity", "d_spacing", "hkl_families")} | {"peaks": peaks})
        return
    out = console()
    out.print(f"structure {structure_id} {info['formula']}, recipe {info['recipe_id']} ({info['recipe_name']}), {len(peaks)} peaks")
    print_table(listed, list(listed[0]) if listed else ["two_theta", "intensity", "d_spacing"])
    if plot is not None:
        out.print(f"plot written to {plot}")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Measured scan (.xy two/three columns, or .xrdml).")],
    db: DbOpt = None,
    structure: Annotated[Optional[int], typer.Option("--structure", help="Link the scan to this structure id.")] = None,
    wavelength: Annotated[Optional[float], typer.Option("--wavelength", help="Wavelength in Å (default: from the file, else Cu Kα).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a measured scan: store the raw profile and its picked peaks as a measured pattern."""
    from xtalbase.xrd.scans import import_scan

    result = import_scan(open_db(ctx, db), file, structure_id=structure, wavelength=wavelength)
    if as_json:
        print_json(result)
        return
    verb = "imported" if result["created"] else "already stored"
    console().print(f"{file}: {verb} as pattern {result['pattern_id']} ({result['npeaks']} peaks)")


ElementsOpt = Annotated[Optional[str], typer.Option(
    "--elements", help="Elements the sample may contain (e.g. Ti,Zn,O): candidates whose elements all lie in this set.")]
RequireOpt = Annotated[Optional[str], typer.Option("--require", help="Elements every candidate must contain (e.g. Zn).")]
FilterOpt = Annotated[Optional[str], typer.Option("--filter", help="OPTIMADE filter the candidates must match.")]
PhasesOpt = Annotated[int, typer.Option("--phases", min=1, max=10, help="Most phases used to explain one scan.")]
MinGainOpt = Annotated[float, typer.Option(
    "--min-gain", help="Least drop of the relative residual |y - fit|²/|y|² that adds a phase.")]
MaxStrainOpt = Annotated[float, typer.Option("--max-strain", help="Largest uniform lattice strain tried (fraction of d).")]
MaxShiftOpt = Annotated[float, typer.Option("--max-shift", help="Largest zero shift tried (degrees 2θ).")]
KalphaOpt = Annotated[str, typer.Option(
    "--kalpha2", help="Draw each reflection as a Kα1/Kα2 doublet: auto (when the wavelength is a Kα mean), on, off.")]
AxisStrainOpt = Annotated[bool, typer.Option(
    "--axis-strain", help="Also fit a strain per cell axis to the best candidates (DFT cells wrong along one axis; slower).")]
WavelengthScanOpt = Annotated[Optional[float], typer.Option("--wavelength", help="Wavelength in Å (default: from the file, else Cu Kα).")]


def _settings(phases: int, min_gain: float, max_strain: float, max_shift: float, top: int = 5):  # noqa: ANN202
    from xtalbase.xrd.phase_search import SearchSettings

    return SearchSettings(max_phases=phases, min_gain=min_gain, max_strain=max_strain, max_shift=max_shift, top=top)


@app.command("match")
def match(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Measured scan (.xy or .xrdml).")],
    db: DbOpt = None,
    elements: ElementsOpt = None,
    require: RequireOpt = None,
    filter: FilterOpt = None,
    phases: PhasesOpt = 3,
    top: Annotated[int, typer.Option("--top", help="Single-phase candidates listed.")] = 5,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help=RECIPE_HELP)] = None,
    wavelength: WavelengthScanOpt = None,
    min_gain: MinGainOpt = 0.01,
    max_strain: MaxStrainOpt = 0.015,
    max_shift: MaxShiftOpt = 0.5,
    axis_strain: AxisStrainOpt = False,
    kalpha2: KalphaOpt = "auto",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG: measured, each phase, the residual.")] = None,
    store: Annotated[bool, typer.Option("--store", help="Store the result as a prediction (the scan is imported).")] = False,
    score: Annotated[str, typer.Option("--score", help="profile (least-squares profile fit, default) or peaks (the old "
                                                      "peak-pairing ranking, kept for comparison).")] = "profile",
    as_json: JsonOpt = False,
) -> None:
    """Identify the phases of a measured scan: up to --phases stored phases whose fitted profiles explain it."""
    from xtalbase.xrd.identify import identify_scan, identify_scans

    handle = open_db(ctx, db)
    if score == "peaks":
        ignored = [name for name, value in (("--elements", elements), ("--require", require), ("--filter", filter),
                                            ("--plot", plot), ("--store", store or None), ("--axis-strain", axis_strain or None))
                   if value is not None]
        if ignored:
            raise typer.BadParameter(f"--score peaks (the old ranking) takes no {', '.join(ignored)}")
        _match_peaks(handle, file, recipe, wavelength, top, max_strain, as_json)
        return
    if score != "profile":
        raise typer.BadParameter(f"--score must be profile or peaks, got {score!r}")
    settings = _settings(phases, min_gain, max_strain, max_shift, top)
    options = {"wavelength": wavelength, "settings": settings, "axis_strain": axis_strain, "kalpha2": _kalpha2(kalpha2)}
    if store:
        result = identify_scans(handle, [file], elements=elements, require=require, filter=filter, recipe=recipe, store=True,
                                **options)[0]
    else:
        result = identify_scan(handle, file, elements=elements, require=require, filter=filter, recipe=recipe, **options)
    if plot is not None:
        from xtalbase.xrd.plot import plot_identification

        plot_identification(result, plot)
    if as_json:
        print_json(result.to_dict())
        return
    _print_identification(result)
    if plot is not None:
        console().print(f"plot written to {plot}")


def _kalpha2(text: str) -> bool | None:
    """``--kalpha2`` auto/on/off → None/True/False."""
    choices = {"auto": None, "on": True, "off": False}
    if text not in choices:
        raise typer.BadParameter(f"--kalpha2 must be auto, on or off, got {text!r}")
    return choices[text]


def _print_identification(result) -> None:  # noqa: ANN001
    ident = result.identification
    out = console()
    out.print(f"{result.path}: {ident.n_candidates} candidates, zero shift {ident.shift:+.3f}°, "
              f"residual {ident.residual:.3f} of the scan's squared net intensity ({result.seconds:.2f} s)")
    print_table([{"structure_id": p.structure_id, "formula": p.formula, "spacegroup": p.spacegroup,
                  "share": f"{p.intensity_share:.2f}", "weight_fraction": "-" if p.weight_fraction is None else f"{p.weight_fraction:.2f}",
                  "strain": f"{p.strain:+.4f}", "fwhm": f"{p.fwhm:.2f}", "peaks": len(p.explained_peaks)} for p in ident.phases],
                title="phases")
    if ident.unexplained_peaks:
        out.print("unexplained peaks (2θ): " + ", ".join(f"{v:.2f}" for v in ident.unexplained_peaks))
    print_table(ident.ranking, ["structure_id", "formula", "spacegroup", "score", "strain"], title="best single phases (score = residual drop)")


def _match_peaks(handle, file: Path, recipe: Optional[str], wavelength: Optional[float], top: int, max_strain: float,  # noqa: ANN001
                 as_json: bool) -> None:
    """The old peak-pairing ranking (``--score peaks``)."""
    from xtalbase.xrd.match import match_scan
    from xtalbase.xrd.recipe import resolve_recipe
    from xtalbase.xrd.scans import find_peaks, read_scan, with_wavelength

    scan = with_wavelength(read_scan(file), wavelength)
    peaks = find_peaks(scan)
    recipe_id = resolve_recipe(handle, recipe).id
    found = match_scan(handle, peaks, scan.wavelength, (float(scan.two_theta[0]), float(scan.two_theta[-1])), recipe_id=recipe_id,
                       top=top, max_strain=max_strain)
    rows = [{"rank": i + 1, **m.to_dict()} for i, m in enumerate(found)]
    if as_json:
        print_json({"file": str(file), "npeaks": len(peaks), "wavelength": scan.wavelength, "matches": rows})
        return
    console().print(f"{file}: {len(peaks)} peaks picked, λ = {scan.wavelength:g} Å")
    print_table(rows, ["rank", "structure_id", "formula", "spacegroup", "score", "explained", "found", "strain"])


#: Files of a folder read as scans (.csv is not: a folder's sample table or notes would be read as a scan).
SCAN_SUFFIXES = (".xy", ".xrdml", ".txt", ".dat")


@app.command("identify")
def identify(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder of measured scans (.xy, .xrdml, .txt, .dat), or one scan file.")],
    db: DbOpt = None,
    elements_from: Annotated[Optional[Path], typer.Option(
        "--elements-from", help="Sample table (CSV: file, elements[, require, filter]) giving each scan's candidates.")] = None,
    elements: ElementsOpt = None,
    require: RequireOpt = None,
    filter: FilterOpt = None,
    phases: PhasesOpt = 3,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help=RECIPE_HELP)] = None,
    wavelength: WavelengthScanOpt = None,
    min_gain: MinGainOpt = 0.01,
    max_strain: MaxStrainOpt = 0.015,
    max_shift: MaxShiftOpt = 0.5,
    axis_strain: AxisStrainOpt = False,
    kalpha2: KalphaOpt = "auto",
    store: Annotated[bool, typer.Option("--store/--no-store", help="Store each result as a prediction (default).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Identify the phases of every scan in a folder; results are stored as predictions tied to the recipe, the
    candidate filter and the code version."""
    from xtalbase.xrd.identify import identify_scans, read_sample_table

    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SCAN_SUFFIXES)
    elif folder.is_file():
        paths = [folder]
    else:
        raise typer.BadParameter(f"{folder}: no such file or folder")
    if elements_from is not None and elements_from.resolve() in [p.resolve() for p in paths]:
        paths = [p for p in paths if p.resolve() != elements_from.resolve()]
    if not paths:
        raise typer.BadParameter(f"{folder}: no scans ({', '.join(SCAN_SUFFIXES)})")
    samples = read_sample_table(elements_from) if elements_from is not None else None
    handle = open_db(ctx, db)
    settings = _settings(phases, min_gain, max_strain, max_shift)
    with progress() as bar:
        task = bar.add_task("identifying phases", total=len(paths))
        results = identify_scans(handle, paths, samples=samples, elements=elements, require=require, filter=filter, recipe=recipe,
                                 wavelength=wavelength, settings=settings, store=store, axis_strain=axis_strain,
                                 kalpha2=_kalpha2(kalpha2), on_error="collect",
                                 progress=lambda done: bar.update(task, completed=done))
    failed = [r for r in results if r.error is not None]
    if as_json:
        print_json({"scans": [r.to_dict() for r in results], "failed": len(failed)})
    else:
        print_table([{"file": Path(r.path).name, "phases": " + ".join(p.formula for p in r.identification.phases) or "-",
                      "weight_fractions": " / ".join("-" if p.weight_fraction is None else f"{p.weight_fraction:.2f}"
                                                     for p in r.identification.phases),
                      "residual": f"{r.identification.residual:.3f}", "unexplained": len(r.identification.unexplained_peaks),
                      "prediction_id": r.prediction_id} for r in results if r.error is None], title=f"{len(results) - len(failed)} scans")
        for r in failed:
            console(stderr=True).print(f"{r.path}: {r.error}")
    if failed:
        raise typer.Exit(1)
