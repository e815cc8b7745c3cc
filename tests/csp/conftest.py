"""A database per backend with the 220 Perov-5 fixture rows and the split ``p5`` (60/20/20 grouped by formula)."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.conftest import BACKENDS, new_database_url
from tests.csp.helpers import PEROV5


@pytest.fixture(scope="module", params=BACKENDS)
def p5db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    import xtalbase
    from xtalbase.csp.tasks import perov5

    with new_database_url(request.param, tmp_path_factory.mktemp("csp")) as url:
        db = xtalbase.connect(url)
        try:
            db.init()
            assert db.ingest([PEROV5]).inserted == 220
            perov5(db.splits, "p5")
            yield db
        finally:
            db.close()
