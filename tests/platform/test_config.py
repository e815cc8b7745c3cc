import pytest

from xtalbase.errors import ConfigurationError
from xtalbase.platform.config import DEFAULT_URL, ENV_VAR, redact_url, resolve_url


def test_argument_wins_over_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "sqlite:///from_env.db")
    assert resolve_url("sqlite:///from_arg.db") == "sqlite:///from_arg.db"


def test_environment_wins_over_default(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "sqlite:///from_env.db")
    assert resolve_url(None) == "sqlite:///from_env.db"


def test_default_is_local_sqlite_file(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_url(None) == DEFAULT_URL == "sqlite:///./xtalbase.db"


def test_plain_postgresql_urls_use_psycopg3():
    assert resolve_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert resolve_url("postgres://u@h/d").startswith("postgresql+psycopg://")


def test_password_is_hidden():
    assert "secret" not in redact_url("postgresql+psycopg://u:secret@h/d")


@pytest.mark.parametrize("bad", ["not a url", "mysql://u@h/d", "://"])
def test_bad_urls_are_rejected_with_a_reason(bad):
    with pytest.raises(ConfigurationError):
        resolve_url(bad)
