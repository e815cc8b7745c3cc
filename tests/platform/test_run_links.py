"""Typed run links, notes, the CHECK constraints on closed value sets, and ``xtalbase runs show/note``."""

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from tests.ml.splitsupport import add_synthetic, population
from xtalbase.cli import app
from xtalbase.platform import migrate
from xtalbase.platform.repositories import runs as repo
from xtalbase.schema import Model, Run, RunLink, XrdRecipe
from xtalbase.schema.ml import SPLIT_MODES
from xtalbase.schema.runs import QUARANTINE_REASONS, Direction, LinkKind
from xtalbase.schema.xrd import PATTERN_KINDS

runner = CliRunner()


def _recipe(db, tag: str) -> int:
    with db.session() as s:
        row = XrdRecipe(hash=tag * 8, wavelength=1.54184, two_theta_min=0, two_theta_max=90, merge_tol=0.01, code_version="t")
        s.add(row)
        s.commit()
        return row.id


def test_value_sets_match_the_code_that_writes_them():
    from xtalbase.ingest.records import REASONS
    from xtalbase.ml.splitters import MODES

    assert QUARANTINE_REASONS == REASONS
    assert set(MODES) | {"imported"} == set(SPLIT_MODES)
    assert set(PATTERN_KINDS) == {"computed", "measured"}


def test_database_refuses_an_unknown_run_status_and_link_kind(db):
    with db.session() as s:
        run_id = repo.start_run(s, "probe", {}, None, {"package_version": "0", "git_revision": None,
                                                        "dependency_versions": {}, "host": "h", "user": "u", "pid": 1})
        s.commit()
    for sql in (f"UPDATE runs SET status = 'done' WHERE id = {run_id}",
                f"INSERT INTO run_links (run_id, direction, kind, ref) VALUES ({run_id}, 'input', 'filter', 'x')",
                f"INSERT INTO run_links (run_id, direction, kind, ref) VALUES ({run_id}, 'sideways', 'file', 'x')"):
        with db.engine.connect() as conn, pytest.raises(IntegrityError, match="(?i)check"):
            conn.execute(sa.text(sql))
            conn.commit()
    with db.session() as s:
        assert s.get(Run, run_id).status == "running"


def test_bad_links_are_refused_naming_the_run(db):
    with pytest.raises(repo.LinkError, match="run 7: a model link needs the row id"):
        repo.make_link(7, "input", "model", "chain-test")
    with pytest.raises(repo.LinkError, match="run 7: 'filter' is not a valid LinkKind"):
        repo.make_link(7, "input", "filter", label="nsites > 20")
    with pytest.raises(repo.LinkError, match="run 7: a file link needs path="):
        repo.make_link(7, "output", "file")


def test_failed_run_keeps_its_inputs_and_loses_its_outputs(db):
    first, second = _recipe(db, "a"), _recipe(db, "b")
    with pytest.raises(RuntimeError, match="fit diverged"):
        with db.run("train", {}) as run:
            run.link_input(LinkKind.XRD_RECIPE, first, sha256="a" * 64)  # before the block writes: committed at once
            run.session.add(XrdRecipe(hash="c" * 64, wavelength=1.0, two_theta_min=0, two_theta_max=90, merge_tol=0.01,
                                      code_version="t"))
            run.session.flush()  # on SQLite the block now holds the write lock: the next input waits for the block's end
            run.link_input("xrd_recipe", second)
            run.link_output("file", path="/tmp/never-written.bin")
            raise RuntimeError("fit diverged")
    with db.session() as s:
        links = repo.links_of(s, run.id)
        assert s.get(Run, run.id).status == "failed"
    assert [(link.direction, link.kind, link.xrd_recipe_id) for link in links] == [
        ("input", "xrd_recipe", first), ("input", "xrd_recipe", second)]
    with db.session() as s:
        assert [r.id for r in repo.runs_linking(s, LinkKind.XRD_RECIPE, first, Direction.INPUT)] == [run.id]


def test_runs_show_and_note(db):
    recipe = _recipe(db, "s")
    with db.run("xrd", {"recipe_id": recipe}) as run:
        run.link_input("xrd_recipe", recipe, sha256="s" * 64)
        run.link_output("path", path="/data/out", label="out")
    noted = runner.invoke(app, ["runs", "note", str(run.id), "checked by hand: peaks look right", "--db", db.url])
    assert noted.exit_code == 0, noted.output
    shown = runner.invoke(app, ["runs", "show", str(run.id), "--db", db.url, "--json"])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["kind"] == "xrd" and detail["status"] == "succeeded" and detail["params"] == {"recipe_id": recipe}
    assert detail["inputs"] == [{"kind": "xrd_recipe", "ref": str(recipe), "id": recipe, "path": None, "sha256": "s" * 64}]
    assert detail["outputs"] == [{"kind": "path", "ref": "out", "id": None, "path": "/data/out", "sha256": None}]
    assert [n["text"] for n in detail["notes"]] == ["checked by hand: peaks look right"]
    assert "sqlalchemy" in detail["dependency_versions"]
    text = runner.invoke(app, ["runs", "show", str(run.id), "--db", db.url], env={"COLUMNS": "200"})
    assert text.exit_code == 0
    for needle in ("run %d: xrd succeeded" % run.id, "input xrd_recipe", "output path /data/out", "checked by hand"):
        assert needle in text.output, needle
    missing = runner.invoke(app, ["runs", "show", "999999", "--db", db.url])
    assert missing.exit_code != 0 and "no run 999999" in str(missing.exception) + missing.output
    empty = runner.invoke(app, ["runs", "note", str(run.id), "  ", "--db", db.url])
    assert empty.exit_code != 0


def test_migration_0006_backfills_links_and_rewrites_training_set_hashes(db):
    from xtalbase.platform.hashing import legacy_set_hash, set_hash

    add_synthetic(db, population(30))
    split = db.splits.create("mig", strategy="random", seed=0)
    train = split.ids("train")
    with db.session() as s:
        exact = list(s.scalars(sa.select(sa.text("exact_hash")).select_from(sa.table("structures"))
                               .where(sa.column("id").in_(train))))
        model = Model(task="classification", target="crystal_system", algorithm="extratrees", hyperparameters={}, seed=0,
                      feature_recipe={}, split_id=split.pk, fold="train", training_set_hash=set_hash(exact), metrics={},
                      library_versions={}, code_version="t", artifact=b"x", artifact_format="skops", artifact_sha256="0" * 64)
        s.add(model)
        s.commit()
        model_id = model.id
    migrate.downgrade(db.engine, "0005")
    with db.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT training_set_hash FROM models WHERE id = {model_id}")).scalar() == legacy_set_hash(exact)
    migrate.upgrade(db.engine, "head")
    with db.session() as s:
        assert s.get(Model, model_id).training_set_hash == set_hash(exact)
        link = s.scalars(sa.select(RunLink).where(RunLink.run_id == split.run_id)).one()
        assert (link.kind, link.split_id, link.ref) == ("split", split.pk, "mig")
    # the sealed-split triggers came back with the rebuilt tables
    with db.engine.connect() as conn, pytest.raises(IntegrityError, match="immutable"):
        conn.execute(sa.text(f"UPDATE splits SET seed = 5 WHERE id = {split.pk}"))
        conn.commit()
    assert db.splits.get("mig").members() == split.members()
