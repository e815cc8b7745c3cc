"""VASP runs as curators find them: stopped early, unconverged SCF loops, MD, LDA/+U, compressed, beside a CONTCAR.

Each case is the real Si relaxation in ``tests/data/ingest/vasp/io`` (VASP 6.4.2,
IBRION=2, EDIFFG=0.001, 3 ionic steps) edited the way such runs differ.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re

import pytest

from tests.conftest import shared
from tests.ingest.helpers import DATA
from xtalbase.ingest import read_structures

IO = DATA / "vasp" / "io"
ABORT = "------------------------ aborting loop because EDIFF is reached ----------------------------------------\n"
REACHED = " reached required accuracy - stopping structural energy minimisation\n"


def _vasprun() -> str:
    return gzip.decompress((IO / "vasprun.xml.gz").read_bytes()).decode()


def _outcar() -> str:
    return gzip.decompress((IO / "OUTCAR.gz").read_bytes()).decode()


def _set_outcar(text: str, key: str, value: object) -> str:
    return re.sub(r"^(\s+%s\s*=\s*)(\S+)" % key, lambda m: m.group(1) + str(value), text, flags=re.M)


def _set_vasprun(text: str, key: str, value: object) -> str:
    return re.sub(r'(<i (?:type="\w+" )?name="%s">)\s*[^<]*(</i>)' % key, lambda m: f"{m.group(1)} {value}{m.group(2)}", text)


def _final_forces(text: str, value: float) -> str:
    start = text.rindex('<varray name="forces" >')
    end = text.index("</varray>", start)
    block = re.sub(r"<v>[^<]*</v>", f"<v> {value} 0.0 0.0 </v>", text[start:end])
    return text[:start] + block + text[end:]


def _calc(path, **options):
    records = list(read_structures(path, **options))
    assert all(hasattr(r, "calculation") for r in records), [getattr(r, "message", r) for r in records]
    return [r.calculation for r in records]


def test_vasprun_relaxation_stopped_early_with_large_forces_is_not_ionic_converged(tmp_path):
    # What a STOPCAR or a wall-time handler leaves: the file is whole, fewer than NSW steps ran, forces are not small.
    text = _set_vasprun(_vasprun(), "EDIFFG", -0.01)
    (tmp_path / "stopped").mkdir()
    (tmp_path / "stopped" / "vasprun.xml").write_text(_final_forces(text, 0.5))
    (stopped,) = _calc(tmp_path / "stopped" / "vasprun.xml")
    assert stopped.ionic_converged is False and stopped.converged is False
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "vasprun.xml").write_text(_final_forces(text, 0.005))
    (done,) = _calc(tmp_path / "done" / "vasprun.xml")
    assert done.ionic_converged is True and done.converged is True


def test_md_has_no_ionic_convergence_in_either_reader(tmp_path):
    # an MD run stopped before NSW keeps its frames: pymatgen would call it unconverged, the OUTCAR reader never did
    xml = tmp_path / "vasprun.xml"
    xml.write_text(_set_vasprun(_set_vasprun(_vasprun(), "IBRION", 0), "NSW", 10))
    outcar = tmp_path / "OUTCAR"
    outcar.write_text(_set_outcar(_set_outcar(_outcar().replace(REACHED, ""), "IBRION", 0), "NSW", 10))
    for calcs in (_calc(xml, all_steps=True), _calc(outcar, all_steps=True)):
        assert [c.ionic_converged for c in calcs] == [None, None, None]
        assert all(c.converged for c in calcs)


def test_ediffg_zero_relaxation_that_ran_nsw_steps_is_converged_in_both_readers(tmp_path):
    xml = tmp_path / "vasprun.xml"
    xml.write_text(_set_vasprun(_set_vasprun(_vasprun(), "EDIFFG", 0.0), "NSW", 3))
    outcar = tmp_path / "OUTCAR"
    outcar.write_text(_set_outcar(_set_outcar(_outcar().replace(REACHED, ""), "EDIFFG", "0.0"), "NSW", 3))
    (a,), (b,) = _calc(xml), _calc(outcar)
    assert a.ionic_converged is b.ionic_converged is True


def test_vasp5_outcar_step_without_an_abort_line_is_electronically_unconverged(tmp_path):
    # VASP 5 prints nothing when NELM ends the SCF loop; VASP 6 says "EDIFF was not reached"
    text = _outcar()
    first = text.index(ABORT)
    path = tmp_path / "OUTCAR"
    path.write_text(text[:first] + text[first + len(ABORT):])
    calcs = _calc(path, all_steps=True)
    assert [c.electronic_converged for c in calcs] == [False, True, True]
    assert calcs[0].converged is False and calcs[-1].converged is True
    last = text.rindex(ABORT)
    path.write_text(text[:last] + text[last + len(ABORT):])
    assert _calc(path)[0].converged is False


def test_outcar_and_vasprun_name_the_functional_alike(tmp_path):
    (xml,), (outcar,) = _calc(IO / "vasprun.xml.gz"), _calc(IO / "OUTCAR.gz")
    assert xml.functional == outcar.functional == "GGA"  # pymatgen's name for PBE POTCARs with GGA = --
    lda = tmp_path / "OUTCAR"
    lda.write_text(_outcar().replace("LEXCH  = PE", "LEXCH  = CA").replace("PAW_PBE Si", "PAW Si"))
    assert _calc(lda)[0].functional == "LDA"
    plus_u = tmp_path / "u" / "OUTCAR"
    plus_u.parent.mkdir()
    plus_u.write_text(_outcar().replace("  GGA     =", "LDA+U is selected, type is set to LDAUTYPE =  2\n  GGA     =", 1))
    assert _calc(plus_u)[0].functional == "GGA+U"
    lda_xml = tmp_path / "vasprun.xml"
    lda_xml.write_text(_vasprun().replace("PAW_PBE Si", "PAW Si"))
    assert _calc(lda_xml)[0].functional == "LDA"


def test_vasp5_vasprun_zero_e0_energy_is_corrected_as_pymatgen_does(tmp_path):
    # VASP 5.x writes e_0_energy as 0 in the ionic-step <energy> block
    text = _vasprun()
    end = text.rindex("</calculation>")
    last_energy = text.rindex('<i name="e_0_energy">', 0, end)
    line_end = text.index("</i>", last_energy)
    path = tmp_path / "vasprun.xml"
    path.write_text(text[:last_energy] + '<i name="e_0_energy">      0.00000000 ' + text[line_end:])
    (calc,) = _calc(path)
    (reference,) = _calc(IO / "vasprun.xml.gz")
    assert calc.parameters["energies"]["e_0_energy"] == pytest.approx(reference.parameters["energies"]["e_0_energy"], abs=1e-7)
    assert calc.parameters["energies"]["e_0_energy"] != 0.0


@pytest.mark.parametrize("suffix, compress", [(".bz2", bz2.compress), (".xz", lzma.compress)])
def test_bzip2_and_xz_outcar_and_vasprun_are_read(tmp_path, suffix, compress):
    (reference,) = _calc(IO / "OUTCAR.gz")
    for name, text in (("OUTCAR", _outcar()), ("vasprun.xml", _vasprun())):
        path = tmp_path / (name + suffix)
        path.write_bytes(compress(text.encode()))
        (calc,) = _calc(path)
        assert calc.energy == pytest.approx(reference.energy, abs=1e-5) and calc.converged is True
    bad = tmp_path / ("bad" + suffix)
    bad.write_bytes(b"not compressed at all\n")
    (error,) = read_structures(bad, "outcar")
    assert error.reason == "parse_error" and "not readable as" in error.message


@pytest.mark.parametrize("name, text", [
    ("CONTCAR", "final positions\n1.0\n5.4 0 0\n0 5.4 0\n0 0 5.4\n4 4\nDirect\n" + "0 0 0\n" * 8),  # types unknowable
    ("POSCAR", "Si2 relax, written by hand\n"),
])
def test_outcar_is_read_whatever_poscar_or_contcar_lies_beside_it(tmp_path, name, text):
    # ASE's OUTCAR reader opens CONTCAR/POSCAR for constraints xtalbase does not store; a broken one made it fail
    (tmp_path / "OUTCAR").write_text(_outcar())
    (tmp_path / name).write_text(text)
    (calc,) = _calc(tmp_path / "OUTCAR")
    assert calc.converged is True and calc.forces.shape == (2, 3)


def test_machine_learned_force_field_steps_are_left_out_of_an_outcar(tmp_path):
    text = _outcar()
    second = text.index("Iteration      2(   1)")
    ml = text[second:].replace("  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)",
                               "  ML FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)", 1)
    ml = ml.replace("  free  energy   TOTEN  =", "  free  energy ML TOTEN  =", 1)
    path = tmp_path / "OUTCAR"
    path.write_text(text[:second] + ml)
    calcs = _calc(path, all_steps=True)
    assert len(calcs) == 2  # the ML step is not a DFT calculation
    (reference,) = _calc(IO / "OUTCAR.gz")
    assert calcs[-1].energy == pytest.approx(reference.energy)


def test_shared_fe_o_relaxation_outcar_is_gga_plus_u_like_its_vasprun():
    postprocess = shared("vasp") / "postprocess"
    (xml,), (outcar,) = _calc(postprocess / "vasprun.xml"), _calc(postprocess / "OUTCAR")
    assert xml.functional == outcar.functional == "GGA+U"
    assert outcar.parameters["potcar_titles"] == ["PAW_PBE Fe 06Sep2000", "PAW_PBE O 08Apr2002"]
    assert xml.parameters["energies"]["e_0_energy"] == pytest.approx(-28.21851457, abs=1e-7)  # VASP 5 zero corrected
