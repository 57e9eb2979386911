"""The package layering of ARCHITECTURE.md ("Packages"), enforced on the source.

An AST walk over every ``.py`` file of our packages collects each import
(``import x``, ``from x import y``, relative imports, at module level and inside
functions, classes, ``try`` and ``if`` blocks, plus ``importlib.import_module`` /
``__import__`` of a literal name) and maps the imported module to its layer: a
top-level package, or a subpackage of ``hwgen``. An import is allowed when it
stays in its own layer or goes to a layer in :data:`ALLOWED` (top to bottom)::

    models          nothing of ours
    mapping         nothing of ours (models only from tests/examples, never in mapping/)
    hwgen.compiler  mapping
    hwgen.rtl       mapping, hwgen.compiler
    hwgen.build     mapping, hwgen.compiler, hwgen.rtl
    sim             mapping, hwgen.compiler, hwgen.rtl, hwgen.build (not hwgen.cli)
    boards          nothing of ours
    dse             everything above but hwgen.cli
    hwgen.cli       everything
    hwgen.api       everything but hwgen.cli (the Python API: a wiring module like hwgen.cli)
    hwgen           (hwgen/__init__.py, hwgen/__main__.py) everything, i.e. hwgen.cli

The bare root package ``hwgen`` (``import hwgen`` for ``hwgen.__version__``)
counts as part of every ``hwgen`` layer: whoever may import one of them may
import it. tests/, benchmarks/, docs/ and examples/ are not checked.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "mapping", "hwgen", "sim", "boards", "dse")
HWGEN_LAYERS = ("hwgen.compiler", "hwgen.rtl", "hwgen.build", "hwgen.cli", "hwgen.api")
ROOT_HWGEN = "hwgen"  # the package itself: hwgen/__init__.py, hwgen/__main__.py

_ABOVE_DSE = {"models", "mapping", "hwgen.compiler", "hwgen.rtl", "hwgen.build", "sim", "boards"}
ALLOWED: dict[str, set[str]] = {
    "models": set(),
    "mapping": set(),
    "hwgen.compiler": {"mapping"},
    "hwgen.rtl": {"mapping", "hwgen.compiler"},
    "hwgen.build": {"mapping", "hwgen.compiler", "hwgen.rtl"},
    "sim": {"mapping", "hwgen.compiler", "hwgen.rtl", "hwgen.build"},
    "boards": set(),
    "dse": _ABOVE_DSE,
    "hwgen.cli": _ABOVE_DSE | {"dse"},
    "hwgen.api": _ABOVE_DSE | {"dse"},
    ROOT_HWGEN: _ABOVE_DSE | {"dse", "hwgen.cli", "hwgen.api"},
}


def allowed(importer: str) -> set[str]:
    """Layers ``importer`` may import besides its own (with the bare ``hwgen`` package when
    it may import any hwgen layer, or is one)."""
    ok = set(ALLOWED[importer])
    if importer in HWGEN_LAYERS or ok & set(HWGEN_LAYERS):
        ok.add(ROOT_HWGEN)
    return ok


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the checked root
    line: int
    importer: str  # layer of the importing file
    imported: str  # layer of the imported module
    module: str  # the imported module, as written (relative imports resolved)

    def __str__(self) -> str:
        return (f"{self.path}:{self.line}: {self.importer} imports {self.module} "
                f"({self.imported}); {self.importer} may import "
                f"{', '.join(sorted(ALLOWED[self.importer])) or 'nothing of ours'}")


def layer_of(module: str) -> str | None:
    """Our layer of a dotted module name, or None when it is not ours."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "hwgen":
        sub = ".".join(parts[:2])
        return sub if sub in HWGEN_LAYERS else ROOT_HWGEN
    return parts[0]


def module_name(rel: Path) -> str:
    """Dotted module name of a file relative to the root (``a/b/__init__.py`` -> ``a.b``)."""
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``tree`` (any depth).

    ``from x import y`` yields ``x.y`` (``y`` may be a submodule, e.g. ``from hwgen
    import cli``); relative imports are resolved against ``module``.
    """
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `.` is the package, each further dot one up
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out += [(node.lineno, f"{base}.{a.name}" if a.name != "*" else base)
                    for a in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            out.append((node.lineno, node.args[0].value))
    return out


def check_source(source: str, rel: Path) -> list[Violation]:
    """Layering violations of one file, ``rel`` its path relative to the checked root."""
    module = module_name(rel)
    importer = layer_of(module)
    if importer is None:
        return []
    tree = ast.parse(source, filename=str(rel))
    found = []
    for line, imported_module in imports(tree, module, rel.name == "__init__.py"):
        imported = layer_of(imported_module)
        if imported is None or imported == importer:
            continue
        if imported not in allowed(importer):
            found.append(Violation(rel.as_posix(), line, importer, imported, imported_module))
    return found


def package_files(root: Path) -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")
                  if "__pycache__" not in p.parts)


def check_tree(root: Path) -> list[Violation]:
    """Layering violations of every ``.py`` file of our packages under ``root``."""
    out = []
    for path in package_files(root):
        rel = path.relative_to(root)
        out += check_source(path.read_text(encoding="utf-8"), rel)
    return out


# --------------------------------------------------------------------- tests
def test_packages_follow_the_layering():
    violations = check_tree(ROOT)
    if violations:
        pytest.fail("imports against the layering of ARCHITECTURE.md:\n"
                    + "\n".join(map(str, violations)), pytrace=False)


def test_the_walk_sees_every_package():
    """Guard against a vacuous pass: every package and hwgen layer has files and imports."""
    files = package_files(ROOT)
    seen: dict[str, int] = {}
    for path in files:
        rel = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        n = len(imports(tree, module_name(rel), rel.name == "__init__.py"))
        layer = layer_of(module_name(rel))
        seen[layer] = seen.get(layer, 0) + n
    assert set(seen) == set(ALLOWED)
    assert all(n > 0 for n in seen.values()), seen
    assert len(files) > 50


SOURCES = {
    "mapping/__init__.py": "",
    "mapping/bad.py": """
import numpy
from mapping.arch import ArchSpec
from . import graph

def main():
    from hwgen.cli import main
    return main
""",
    "mapping/worse.py": "import models\n",
    "hwgen/__init__.py": "",
    "hwgen/__main__.py": "from hwgen.cli import main\n",
    "hwgen/rtl/__init__.py": "",
    "hwgen/rtl/pe.py": "import hwgen\nfrom ..compiler import isa\nfrom .. import build\n",
    "hwgen/compiler/isa.py": "from hwgen.rtl import pe  # upward\n",
    "sim/x.py": "import importlib\nimportlib.import_module('hwgen.cli.dse_cmd')\n"
                "from hwgen.build import flow\n",
    "boards/y.py": "try:\n    from mapping.arch import ArchSpec\nexcept ImportError:\n    pass\n",
    "dse/z.py": "import boards, sim, models, mapping.mapper\nfrom hwgen.rtl import pe\n"
                "from hwgen import cli\n",
    "models/m.py": "import torch\nfrom models.nets import X\n",
}


def test_checker_catches_injected_upward_imports(tmp_path):
    for rel, src in SOURCES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(src)
    got = {(v.path, v.line, v.importer, v.imported) for v in check_tree(tmp_path)}
    assert got == {
        ("mapping/bad.py", 7, "mapping", "hwgen.cli"),  # inside a function
        ("mapping/worse.py", 1, "mapping", "models"),
        ("hwgen/rtl/pe.py", 3, "hwgen.rtl", "hwgen.build"),  # relative, resolved
        ("hwgen/compiler/isa.py", 1, "hwgen.compiler", "hwgen.rtl"),
        ("sim/x.py", 2, "sim", "hwgen.cli"),  # importlib.import_module('...')
        ("boards/y.py", 2, "boards", "mapping"),  # inside try
        ("dse/z.py", 3, "dse", "hwgen.cli"),  # from hwgen import cli
    }
    msg = str(next(v for v in check_tree(tmp_path) if v.path == "mapping/bad.py"))
    assert msg == ("mapping/bad.py:7: mapping imports hwgen.cli.main (hwgen.cli); mapping may "
                   "import nothing of ours")


def test_check_source_on_a_string():
    bad = check_source("x = 1\nfrom hwgen.cli import main\n", Path("mapping/passes/p.py"))
    assert [(v.line, v.importer, v.imported) for v in bad] == [(2, "mapping", "hwgen.cli")]
    assert check_source("from mapping.arch import ArchSpec\n", Path("hwgen/build/f.py")) == []
