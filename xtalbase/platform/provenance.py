"""Capture the environment a run executes in: package and dependency versions, git revision, host."""

from __future__ import annotations

import functools
import getpass
import os
import socket
import subprocess
from importlib import metadata
from pathlib import Path

KEY_DEPENDENCIES = (
    "numpy", "scipy", "pandas", "pyarrow", "sqlalchemy", "alembic", "pymatgen", "ase", "spglib", "moyopy",
    "scikit-learn", "xgboost", "torch", "skops", "psycopg", "optimade", "dask",
)

#: Other distributions that install the same module; the version is recorded under the first name.
ALTERNATIVE_DISTRIBUTIONS = {"xgboost": ("xgboost-cpu",)}


def package_version() -> str:
    """The installed xtalbase version."""
    try:
        return metadata.version("xtalbase")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@functools.cache
def git_revision() -> str | None:
    """The git commit of the source tree xtalbase runs from (editable installs), with ``-dirty``."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def dependency_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour can change results (read, not imported)."""
    found = {}
    for name in KEY_DEPENDENCIES:
        for distribution in (name, *ALTERNATIVE_DISTRIBUTIONS.get(name, ())):
            try:
                found[name] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue
            break
    return found


def code_version() -> str:
    """One string naming the code that ran: ``<version>+g<revision>`` when the revision is known."""
    rev = git_revision()
    return f"{package_version()}+g{rev[:12]}{'-dirty' if rev.endswith('-dirty') else ''}" if rev else package_version()


def environment() -> dict:
    """All provenance fields stored on a ``runs`` row."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "package_version": package_version(),
        "git_revision": git_revision(),
        "dependency_versions": dependency_versions(),
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
    }
