"""IngestOptions: the one definition of ingest's options, behind ``db.ingest(**options)`` and ``xtalbase ingest``."""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

from tests.ingest.helpers import CIF
from xtalbase.errors import XtalbaseError
from xtalbase.ingest.options import IngestOptions
from xtalbase.schema import Run


def test_an_unknown_option_is_an_error_that_names_it(db):
    with pytest.raises(XtalbaseError, match=r"unknown ingest option 'special_decimals': choose from .*min_special_decimals"):
        db.ingest(CIF / "CaO.cif", special_decimals=3)


def test_an_options_object_and_keywords_combine(db):
    report = db.ingest(CIF / "CaO.cif", IngestOptions(max_sites=50, symprec=0.02), max_sites=60)
    with db.session() as s:
        params = s.get(Run, report.run_id).params
    assert (params["max_sites"], params["symprec"], params["min_special_decimals"]) == (60, 0.02, 4)
    assert report.inserted == 1


def test_options_check_their_values_when_built():
    with pytest.raises(XtalbaseError, match="unknown format 'cifx'"):
        IngestOptions(format="cifx")
    with pytest.raises(XtalbaseError, match="workers must be at least 1"):
        IngestOptions(workers=0)


def test_the_validation_thresholds_keep_their_names_on_the_way_to_the_workers():
    options = IngestOptions(min_special_decimals=6, max_sites=7, allow_disorder=True)
    validation = options.prepare().validation
    assert (validation.min_special_decimals, validation.max_sites, validation.allow_disorder) == (6, 7, True)
    shared = {f.name for f in dataclasses.fields(validation)}
    assert shared <= set(IngestOptions.names())  # no threshold is renamed between the user and the check


def test_every_cli_flag_of_ingest_is_an_option_field_with_its_default():
    from xtalbase.cli import app

    command = typer.main.get_command(app).commands["ingest"]
    flags = {p.name: p for p in command.params if p.name not in ("ctx", "paths", "db", "as_json")}
    fields = {f.name: f for f in dataclasses.fields(IngestOptions) if f.metadata["cli"]}
    assert set(flags) == set(fields)
    for name, field in fields.items():
        assert flags[name].default == field.default, name
        assert flags[name].opts == [f"--{name.replace('_', '-')}"]
