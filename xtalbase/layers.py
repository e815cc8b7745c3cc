"""The layer rule of xtalbase, as data, and a checker that walks every import with :mod:`ast`.

A module may import from its own unit and from any unit of a lower rank; never upwards, and
sideways (same rank, another unit) only where :data:`ALLOWED_SIDEWAYS` names the edge. A name
whose last dotted part starts with ``_`` (a private module or a private attribute) may only be
imported from inside the unit that defines it.

Every import counts: at module level, inside functions (the lazy heavy imports) and under
``if TYPE_CHECKING:``. Type-only imports create no runtime cycle, but an annotation that names an
upper layer's class is still a dependency on that layer, so they must respect the direction too;
their violations are labelled ``type-only`` to show where the fix is just a narrower type.

``tests/test_layers.py`` runs :func:`check_package` on the tree; ``python -m xtalbase.layers``
prints the violations. The rule is explained in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

#: Rank of each unit, top (entry points) to bottom (shared helpers). A unit is a top-level
#: subpackage or module of ``xtalbase``; ``cli.py`` belongs to the ``commands`` unit.
LAYERS: dict[str, int] = {
    # entry points: the CLI, the package facade (``xtalbase.connect``), maintainer scripts
    "commands": 6, "xtalbase": 6, "data": 6,
    # the HTTP server (OPTIMADE API, curator pages): an entry point beside the CLI
    "server": 6,
    # the library's front door
    "api": 5,
    # capabilities
    "ml": 4, "mlip": 4, "csp": 4, "ingest": 4,
    # computed properties of structures: XRD patterns and descriptors
    "descriptors": 3, "xrd": 3,
    # database access: engine, config, repositories, runs, hashing, the runner
    "platform": 2,
    # ORM tables and Alembic migrations
    "schema": 1,
    # imported by everyone, import nothing of xtalbase
    "errors": 0, "layers": 0,
}

#: Same-rank edges the design needs, each with its reason. Nothing else goes sideways.
ALLOWED_SIDEWAYS: dict[tuple[str, str], str] = {
    ("mlip", "ml"): "a potential trains on ml's splits and datasets and registers like a model",
    ("mlip", "ingest"): "oracle labels and DFT outputs of surrogate structures are stored through the ingest pipeline",
    ("csp", "mlip"): "candidate structures are relaxed with a stored potential",
    ("csp", "ml"): "candidates are scored with a registered model",
    ("csp", "ingest"): "generated structures are stored through ingest's identity and writer",
    ("commands", "server"): "`xtalbase serve` starts the server application",
}

#: Names of the package facade that any layer may import (constants, no upward import happens).
ROOT_SHARED = frozenset({"__version__"})

_UNIT_ALIASES = {"cli": "commands"}


@dataclass(frozen=True)
class Violation:
    """One import that breaks the rule: where it is, what it imports and which rule it breaks."""

    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported}: {self.rule}"


def unit_of(module: str) -> str:
    """The layer unit of a dotted module name inside ``xtalbase`` (``xtalbase.ml.splits`` -> ``ml``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "xtalbase"
    return _UNIT_ALIASES.get(parts[1], parts[1])


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path``, a file under the package directory ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str, str | None, bool]]:
    """(line, module, imported name or None, type-only) for every import of the file."""
    type_only_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        type_only_lines.add(sub.lineno)
    found: list[tuple[int, str, str | None, bool]] = []
    for node in ast.walk(tree):
        type_only = getattr(node, "lineno", 0) in type_only_lines
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, None, type_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            found.extend((node.lineno, target, a.name, type_only) for a in node.names)
    return found


def check_file(path: Path, root: Path, modules: set[str]) -> list[Violation]:
    """Violations of the layer and private-name rules in one file of the package at ``root``."""
    module = module_name(path, root)
    here = unit_of(module)
    shown = str(path.relative_to(root.parent))
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=shown)
    out: list[Violation] = []
    for line, target, name, type_only in _imports(tree, module, path.name == "__init__.py"):
        if target != root.name and not target.startswith(root.name + "."):
            continue
        full = f"{target}.{name}" if name and f"{target}.{name}" in modules else target
        if full == root.name and name in ROOT_SHARED:
            continue
        shown_import = f"{target}.{name}" if name else target
        tag = " (type-only)" if type_only else ""
        there = unit_of(full)
        rule = _layer_rule(here, there)
        if rule:
            out.append(Violation(shown, line, shown_import, rule + tag))
        private = [p for p in shown_import.split(".") if _is_private(p)]
        if private and there != here:
            out.append(Violation(shown, line, shown_import, f"private name {private[0]} of unit {there} used from unit {here}{tag}"))
    return out


def _layer_rule(here: str, there: str) -> str | None:
    if here == there:
        return None
    for unit in (here, there):
        if unit not in LAYERS:
            return f"unit {unit!r} has no place in xtalbase.layers.LAYERS"
    if LAYERS[there] > LAYERS[here]:
        return f"upward import: {here} (rank {LAYERS[here]}) -> {there} (rank {LAYERS[there]})"
    if LAYERS[there] == LAYERS[here] and (here, there) not in ALLOWED_SIDEWAYS:
        return f"sideways import: {here} -> {there} (same rank {LAYERS[here]}, not in ALLOWED_SIDEWAYS)"
    return None


def check_package(root: Path | None = None) -> list[Violation]:
    """All violations in the package directory ``root`` (default: the installed ``xtalbase``)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    return [v for f in files for v in check_file(f, root, modules)]


if __name__ == "__main__":
    found = check_package()
    print("\n".join(map(str, found)) or "no violations")
    sys.exit(1 if found else 0)
