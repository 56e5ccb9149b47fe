"""The shape of the source tree (issue #15): small modules, short functions, no import circles.

Every module of ``src/correlate`` is parsed with :mod:`ast` (nothing is imported):

1. no module longer than ``MAX_MODULE_LINES`` lines;
2. no function with more than ``MAX_FUNCTION_LINES`` code lines (non-blank, non-comment lines
   after its docstring) unless its docstring has a line starting with ``Length:`` that says why;
3. no import circle among the modules of one package. Edges come from ``from . import x``,
   ``from .x import y``, ``import correlate.x`` and ``from correlate.x import y``, wherever they
   stand (inside functions and ``TYPE_CHECKING`` blocks too); a package's ``__init__`` is not a
   member of its own package's check (a sub-package's ``__init__`` is one of its parent's).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "correlate"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 120


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    n_lines: int
    lines: list[str] = field(repr=False)
    functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=list, repr=False)
    imports: list[ast.Import | ast.ImportFrom] = field(default_factory=list, repr=False)

    @property
    def package(self) -> str:
        """The package whose cycle check this module belongs to."""
        return self.name.rpartition(".")[0]


def load_modules(root: Path) -> dict[str, Module]:
    """Every ``*.py`` below ``root`` (a package folder), keyed by dotted module name."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root.parent).with_suffix("").parts
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        src = p.read_text(encoding="utf-8")
        lines = src.splitlines()
        m = out[name] = Module(name, p, is_pkg, len(lines), lines)
        for node in ast.walk(ast.parse(src, str(p))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                m.functions.append(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                m.imports.append(node)
    return out


def big_modules(mods: dict[str, Module], limit: int = MAX_MODULE_LINES) -> list[str]:
    return [f"{m.path}: {m.n_lines} lines" for m in mods.values() if m.n_lines > limit]


def _code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> tuple[int, str]:
    """(code lines after the docstring, the docstring)."""
    first = fn.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    doc = first.value.value if has_doc else ""
    rest = fn.body[1:] if has_doc else fn.body
    if not rest:
        return 0, doc
    start = min([rest[0].lineno] + [d.lineno for d in getattr(rest[0], "decorator_list", [])])
    text = lines[start - 1: fn.end_lineno]
    return sum(1 for ln in text if ln.strip() and not ln.strip().startswith("#")), doc


def long_functions(mods: dict[str, Module], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    out = []
    for m in mods.values():
        for node in m.functions:
            n, doc = _code_lines(node, m.lines)
            excused = any(ln.strip().startswith("Length:") for ln in doc.splitlines())
            if n > limit and not excused:
                out.append(f"{m.path}:{node.lineno} {node.name}: {n} code lines")
    return out


def _targets(m: Module, mods: dict[str, Module]) -> set[str]:
    """Modules of this tree that ``m`` imports (the names themselves where they are modules)."""
    base_pkg = m.name if m.is_package else m.package
    out: set[str] = set()
    for node in m.imports:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base_pkg.split(".")
                pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                src = ".".join(pkg + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            for a in node.names:
                sub = f"{src}.{a.name}"
                if sub in mods:
                    out.add(sub)
                elif src in mods:
                    out.add(src)
    out.discard(m.name)
    return out


def _sibling(target: str, package: str) -> str | None:
    """The member of ``package`` that importing ``target`` runs (itself or its ancestor)."""
    if not package or not target.startswith(package + "."):
        return None
    return f"{package}.{target[len(package) + 1:].split('.')[0]}"


def import_cycles(mods: dict[str, Module]) -> list[list[str]]:
    """Strongly connected groups (more than one module) of the graph of imports between the
    members of one package (importing ``p.sub.x`` runs the member ``p.sub``)."""
    edges = {n: {s for t in _targets(m, mods) if (s := _sibling(t, m.package)) in mods and s != n}
             for n, m in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is a few hundred nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load_modules(SRC)


def _report(what: str, offenders: list) -> str:
    text = f"{len(offenders)} {what}:\n" + "\n".join(f"  {o}" for o in offenders)
    print(text)
    return text


def test_no_module_over_the_limit(modules):
    offenders = big_modules(modules)
    assert not offenders, _report(f"modules over {MAX_MODULE_LINES} lines", offenders)


def test_no_function_over_the_limit_without_a_reason(modules):
    offenders = long_functions(modules)
    assert not offenders, _report(f"functions over {MAX_FUNCTION_LINES} code lines without 'Length:'", offenders)


def test_no_import_circle_inside_a_package(modules):
    offenders = [" <-> ".join(c) for c in import_cycles(modules)]
    assert not offenders, _report("import circles", offenders)


def test_the_checks_find_what_they_look_for(tmp_path):
    """A crafted package with one offender of each kind (and things that must not count)."""
    pkg = tmp_path / "correlate"
    (pkg / "sub").mkdir(parents=True)
    long_body = "\n".join(f"    x{i} = {i}  # c" for i in range(MAX_FUNCTION_LINES + 1))
    files = {
        "__init__.py": "from . import a\nfrom .a import f\n",
        "a.py": "from .b import g\n\n\ndef f():\n    \"\"\"Doc.\n\n    more doc\n    \"\"\"\n" + long_body + "\n",
        "b.py": "def g():\n    from . import a\n    return a\n",
        "c.py": "import correlate.d\n",
        "d.py": "def h():\n    from correlate.c import x\n    return x\n\n"
                "def excused():\n    \"\"\"Doc.\n\n    Length: one table, kept whole.\n    \"\"\"\n" + long_body + "\n",
        "e.py": "from .sub import s\n" + "\n".join("# padding" for _ in range(MAX_MODULE_LINES)) + "\n",
        "sub/__init__.py": "from .. import e\n",
        "sub/s.py": "from ..e import y\n",
        "f.py": "def short():\n    \"\"\"Doc.\"\"\"\n\n    # only comments and blanks\n\n    return 1\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    mods = load_modules(pkg)
    assert [s.split(":")[0] for s in big_modules(mods)] == [str(pkg / "e.py")]
    longs = long_functions(mods)
    assert len(longs) == 1 and " f: " in longs[0] and f"{MAX_FUNCTION_LINES + 1} code lines" in longs[0]
    # a <-> b and c <-> d; e <-> sub (the sub-package's __init__ is a member of correlate);
    # the package's own __init__ importing a is not a circle
    assert import_cycles(mods) == [["correlate.a", "correlate.b"], ["correlate.c", "correlate.d"],
                                   ["correlate.e", "correlate.sub"]]
