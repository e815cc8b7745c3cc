"""``xtalbase split ...`` through typer's CliRunner on a database of real Perov-5 structures."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import TEST_DATA
from xtalbase.cli import app, main

runner = CliRunner()
PEROV = TEST_DATA / "splits" / "perov5_220.csv"


@pytest.fixture
def url(db, db_url, tmp_path):
    path = tmp_path / "perov.csv"
    pd.read_csv(PEROV, index_col=0).iloc[:100].to_csv(path)
    db.ingest(path)
    return db_url


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_create_show_list(url):
    created = json.loads(invoke("split", "create", "p", "--strategy", "random", "--fractions", "0.6", "0.2", "0.2",
                                "--seed", "0", "--db", url, "--json").output)
    shown = json.loads(invoke("split", "show", "p", "--db", url, "--json").output)
    assert {"id", "name", "recipe", "counts"} <= set(shown) and shown["id"] == created["id"]
    assert sum(shown["counts"].values()) == 100 and shown["recipe"]["seed"] == 0
    text = invoke("split", "create", "p", "--strategy", "random", "--db", url).output  # same recipe: same split
    assert f"id {created['id']}" in text
    invoke("split", "create", "g", "--strategy", "group", "--by", "prototype", "--mode", "exact", "--db", url)
    invoke("split", "create", "k", "--strategy", "kfold", "--k", "4", "--db", url)
    listed = json.loads(invoke("split", "list", "--db", url, "--json").output)
    assert [s["name"] for s in listed] == ["p", "g", "k"]
    assert list(listed[2]["counts"]) == ["fold0", "fold1", "fold2", "fold3"]
    assert "train=" in invoke("split", "show", "p", "--db", url).output


def test_check_reports_leaks_as_json_and_can_fail(url):
    invoke("split", "create", "g", "--strategy", "group", "--by", "chemical_system", "--db", url)
    report = json.loads(invoke("split", "check", "g", "--db", url, "--json").output)
    assert report["keys"]["chemical_system"]["values"] == 0
    invoke("split", "create", "r", "--strategy", "random", "--db", url)
    report = json.loads(invoke("split", "check", "r", "--db", url, "--json").output)
    assert report["leaked"] and report["keys"]["prototype"]["examples"]
    failing = runner.invoke(app, ["split", "check", "r", "--fail-on-leak", "--db", url])
    assert failing.exit_code == 1 and "LEAKS" in failing.output


def test_export_verify_import(url, tmp_path):
    invoke("split", "create", "p", "--db", url)
    out = tmp_path / "cdvae"
    invoke("split", "export", "p", str(out), "--format", "cdvae-csv", "--db", url)
    assert "3 files match" in invoke("split", "verify", str(out)).output
    imported = json.loads(invoke("split", "import", "p2", "--cdvae-dir", str(out), "--workers", "2", "--db", url,
                                 "--json").output)
    assert imported["matched"] == imported["rows"] == 100 and imported["unmatched"] == []
    shown = {n: json.loads(invoke("split", "show", n, "--db", url, "--json").output)["counts"] for n in ("p", "p2")}
    assert shown["p"] == shown["p2"]
    for fmt in ("parquet", "extxyz", "poscar"):
        invoke("split", "export", "p", str(tmp_path / fmt), "--format", fmt, "--db", url)
        invoke("split", "verify", str(tmp_path / fmt))


def test_errors_are_one_line_and_exit_1(url, tmp_path, capsys):
    invoke("split", "create", "p", "--db", url)
    out = tmp_path / "e"
    invoke("split", "export", "p", str(out), "--db", url)
    (out / "train.csv").write_text("tampered")
    cases = [
        (["split", "verify", str(out)], "changed: train.csv"),
        (["split", "create", "p", "--seed", "5", "--db", url], "already exists with a different recipe"),
        (["split", "show", "nope", "--db", url], "no split named 'nope'"),
        (["split", "create", "x", "--strategy", "shuffle", "--db", url], "unknown strategy 'shuffle'"),
        (["split", "create", "x", "--strategy", "group", "--by", "colour", "--db", url], "unknown --by column 'colour'"),
        (["split", "create", "x", "--fractions", "0.5", "0.2", "0.2", "--db", url], "must sum to 1"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and message in err and err.count("\n") == 1, (args, err)


def test_create_from_an_id_file_a_filter_and_a_time_cut(url, db, tmp_path):
    ids = db.query('elements HAS "O"').ids()[:30]
    (tmp_path / "ids.txt").write_text("# structures to split\n" + "\n".join(map(str, ids)) + "\n")
    by_ids = json.loads(invoke("split", "create", "ids", "--ids", str(tmp_path / "ids.txt"), "--db", url, "--json").output)
    assert sum(by_ids["counts"].values()) == 30 and by_ids["recipe"]["selection"]["ids"]["n"] == 30
    by_filter = json.loads(invoke("split", "create", "f", "--filter", "nelements = 3", "--mode", "exact",
                                  "--db", url, "--json").output)
    assert sum(by_filter["counts"].values()) == db.query("nelements = 3").count()
    pd.read_csv(PEROV, index_col=0).iloc[100:110].to_csv(tmp_path / "more.csv")
    db.ingest(tmp_path / "more.csv")
    timed = json.loads(invoke("split", "create", "t", "--strategy", "time", "--db", url, "--json").output)
    assert timed["counts"]["test"] == 10 and timed["recipe"]["resolved"]["cut"]["run_id"] >= 1
