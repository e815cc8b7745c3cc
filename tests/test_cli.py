"""The CLI's contract: help everywhere, idempotent init, and one-line errors with a non-zero exit."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from xtalbase.cli import app

runner = CliRunner()


def _xtalbase(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtalbase.cli", *args], capture_output=True, text=True, timeout=120, env=env)


def test_help_lists_core_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("init", "db", "runs", "demo", "version"):
        assert name in result.output


def test_init_twice_then_status_shows_head(db_url):
    first = runner.invoke(app, ["--db", db_url, "init"])
    assert first.exit_code == 0, first.output
    assert "upgraded" in first.output
    second = runner.invoke(app, ["init", "--db", db_url])
    assert second.exit_code == 0 and "nothing to do" in second.output
    status = runner.invoke(app, ["db", "status", "--db", db_url])
    assert status.exit_code == 0 and "(head)" in status.output


def test_runs_list_shows_recorded_runs(db):
    with db.run("ingest", {"x": 1}):
        pass
    result = runner.invoke(app, ["runs", "list", "--db", db.url, "--json"])
    assert result.exit_code == 0
    assert '"kind": "ingest"' in result.output and '"status": "succeeded"' in result.output


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/none", "cannot open database"),
        ("mysql://root@localhost/x", "unsupported database backend"),
        ("::nonsense::", "cannot parse database URL"),
    ],
)
def test_bad_or_unreachable_database_prints_one_line(url, expected):
    proc = _xtalbase("--db", url, "db", "status")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_uninitialised_database_says_run_init(tmp_path):
    proc = _xtalbase("--db", f"sqlite:///{tmp_path / 'fresh.db'}", "runs", "list")
    assert proc.returncode == 1 and "xtalbase init" in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_traceback():
    proc = _xtalbase("--debug", "--db", "mysql://x/y", "db", "status")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_demo_creates_initialised_database(tmp_path):
    # the full pipeline runs in tests/test_demo.py; here: a used folder is refused and left untouched
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "xtalbase.db").write_bytes(b"keep")
    result = runner.invoke(app, ["demo", str(tmp_path / "demo")])
    assert result.exit_code != 0 and "already exists" in result.output
    assert (tmp_path / "demo" / "xtalbase.db").read_bytes() == b"keep"


def test_usage_errors_exit_2_with_the_option_named():
    proc = _xtalbase("ingest", "somewhere.cif", "--workers", "0")
    assert proc.returncode == 2 and "Invalid value for '--workers'" in proc.stderr
    proc = _xtalbase("ingest")
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


def test_ctrl_c_exits_130_with_a_word(db, monkeypatch, capsys):
    from xtalbase.cli import main
    from xtalbase.ingest import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "find_files", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["--db", db.url, "ingest", "."])
    assert exc.value.code == 130 and "aborted" in capsys.readouterr().err


def test_quarantine_commands_print_record_names_and_check_reason_codes(db, tmp_path):
    from tests.ingest.helpers import BAD

    db.ingest(BAD / "low_precision.cif")
    shown = runner.invoke(app, ["--db", db.url, "quarantine", "show", "1"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0 and "[block=" in shown.output  # not eaten as a rich style tag
    bogus = runner.invoke(app, ["--db", db.url, "quarantine", "list", "--reason", "bogus"])
    assert bogus.exit_code == 2 and "low_precision" in bogus.output


@pytest.mark.parametrize("args", [[], ["train", "potential", "--help"], ["potential", "import-n2p2", "--help"],
                                  ["predict", "--help"]], ids=["import", "train potential", "potential", "predict"])
def test_the_command_starts_without_numpy_or_sqlalchemy(args):
    """``xtalbase --help`` stays fast: command modules import the heavy libraries (torch too) inside their commands."""
    heavy = "{'numpy', 'sqlalchemy', 'pandas', 'pymatgen', 'torch', 'ase'}"
    code = ("import sys, xtalbase.cli\n"
            f"if {args!r}:\n"
            "    from typer.testing import CliRunner\n"
            f"    assert CliRunner().invoke(xtalbase.cli.app, {args!r}).exit_code == 0\n"
            f"print(sorted({heavy} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
