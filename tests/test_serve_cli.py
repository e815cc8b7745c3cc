"""``xtalbase serve``: end to end in a subprocess on a small SQLite database, and the loopback rule of ``--host``."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from tests.conftest import TEST_DATA
from tests.server.conftest import free_port
from xtalbase.cli import app

runner = CliRunner()


def said(result) -> str:  # noqa: ANN001
    """What a command told its user: its output, or the error the CLI prints as ``error: ...``."""
    return result.output + str(result.exception or "")
SMALL = TEST_DATA / "query" / "cod"  # 8 element structures


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    import xtalbase

    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'small.db'}"
    with xtalbase.connect(url) as db:
        db.init()
        assert db.ingest([SMALL]).inserted > 0
    return url


def test_serve_answers_optimade_and_stops(small_db: str) -> None:
    httpx = pytest.importorskip("httpx")
    port = free_port()
    cmd = [sys.executable, "-c", "from xtalbase.cli import app; app()", "--db", small_db, "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, info = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert info is not None, f"the server did not answer (exit {proc.poll()})"
        assert info.status_code == 200 and info.json()["data"]["attributes"]["api_version"].startswith("1.")
        page = httpx.get(f"http://127.0.0.1:{port}/v1/structures", params={"filter": "nelements = 1"}, timeout=10).json()
        # data_returned may be left out when the count runs past its budget on a loaded machine
        assert page["data"] and page["meta"].get("data_returned", len(page["data"])) == len(page["data"])
        assert all(d["attributes"]["nelements"] == 1 for d in page["data"])
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "read-only" in out and f"127.0.0.1:{port}" in out


def test_non_loopback_host_needs_public(small_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict] = []
    apps: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: (calls.append(kw), apps.append(app_)))  # never binds
    refused = runner.invoke(app, ["--db", small_db, "serve", "--host", "0.0.0.0"])
    assert refused.exit_code != 0 and "--public" in said(refused) and not calls
    allowed = runner.invoke(app, ["--db", small_db, "serve", "--host", "0.0.0.0", "--port", "5099", "--public"])
    assert allowed.exit_code == 0, allowed.output
    assert "warning" in allowed.output and "reachable from other machines" in allowed.output
    assert calls == [{"host": "0.0.0.0", "port": 5099, "log_level": "warning"}]
    assert apps[0].state.settings.base_url is None  # links follow the client's Host, not "0.0.0.0"
    for wildcard in ("::", "::0", "0:0:0:0:0:0:0:0"):  # every spelling of "all addresses", not only two
        assert runner.invoke(app, ["--db", small_db, "serve", "--host", wildcard, "--public"]).exit_code == 0
        assert apps[-1].state.settings.base_url is None, (wildcard, apps[-1].state.settings.base_url)
    loopback = runner.invoke(app, ["--db", small_db, "serve", "--host", "::1", "--port", "5099"])
    assert loopback.exit_code == 0 and "warning" not in loopback.output and calls[-1]["host"] == "::1"


def test_allow_writes_needs_a_token(small_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: None)
    monkeypatch.delenv("XTALBASE_SERVER_TOKEN", raising=False)
    result = runner.invoke(app, ["--db", small_db, "serve", "--allow-writes"])
    assert result.exit_code != 0 and "token" in said(result)
