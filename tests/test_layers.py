"""The package's imports go one way: no circle, and no import up a layer (issue 16's shape).

Read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hcpform"

# Bottom to top; a module may import its own layer's modules (without a circle) and lower ones.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "leaves: config, time, secrets, redaction, extensions, rate limits, the HCP client",
        {
            "hcpform.config",
            "hcpform.timeutil",
            "hcpform.crypto",
            "hcpform.redact",
            "hcpform.extensions",
            "hcpform.i18n",
            "hcpform.ratelimits",
            "hcpform.hcp",
            "hcpform.webhooks",  # the package file only: each module below has its own layer
            "hcpform.webhooks.signing",
            "hcpform.webhooks.figures",
            "hcpform.zipgeo",
            "hcpform.imaging",
            "hcpform.storage",
            "hcpform.mail",
        },
    ),
    (
        "domain data",
        {"hcpform.models", "hcpform.formdefs", "hcpform.validation", "hcpform.preferences"},
    ),
    (
        "domain operations",
        {
            "hcpform.submissions",
            "hcpform.people",
            "hcpform.connection",
            "hcpform.availability",
            "hcpform.marketing",
            "hcpform.adspend",
            "hcpform.webhooks.secret",
            "hcpform.webhooks.store",
            "hcpform.webhooks.apply",
            "hcpform.assignment",
            "hcpform.recurring",
            "hcpform.emergency",
            "hcpform.abandoned",
            "hcpform.photos",
            "hcpform.outbox",
        },
    ),
    ("the HCP workflow", {"hcpform.sync", "hcpform.webhooks.reconcile"}),
    (
        "the queue's jobs",
        {"hcpform.jobs", "hcpform.webhooks.tasks", "hcpform.periodic", "hcpform.mailjobs"},
    ),
    (
        "the surfaces: blueprints, CLI, workers and the app's plumbing",
        {
            "hcpform.wizard",
            "hcpform.admin",
            "hcpform.cli",
            "hcpform.devmail",
            "hcpform.worker",
            "hcpform.health",
            "hcpform.errors",
            "hcpform.security",
            "hcpform.logs",
            "hcpform.database",
            "hcpform.webhooks.views",
            "hcpform",
        },
    ),
]
# hcp/ is the HTTP client and its payloads: of ours it may use only itself and `redact`, a pure
# module with no imports of ours (so that nothing the client logs carries personal data).
HCP_ALLOWED = {"hcpform.hcp", "hcpform.redact"}


def module_name(path: Path) -> str:
    """Return the dotted name of a module file of the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str | None = None) -> set[str]:
    """Return the hcpform modules one file imports (relative imports resolved)."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hcpform")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "hcpform":
                continue
            if node.module is None:
                # `from . import x`: x is a module of that package, or a name in its __init__
                found.update(f"{target}.{a.name}" for a in node.names)
            else:
                found.add(target)
    return found - {name}


def unresolved_imports() -> list[str]:
    """Return `from X import …` statements whose X is no module of the package."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    missing = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level:
                name = module_name(path)
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module])
                if target not in modules:
                    missing.append(f"{name}: from {'.' * node.level}{node.module} ({target})")
    return missing


def graph() -> dict[str, set[str]]:
    """Return module → the package's modules it imports, for every module of hcpform."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in imports_of(path):
            while target not in modules and "." in target:  # `from .x import name`
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def layer_of(module: str) -> int:
    """Return the index of the layer a module belongs to (by its longest listed prefix)."""
    best, index = "", -1
    for i, (_, members) in enumerate(LAYERS):
        for member in members:
            inside = module == member or (member != "hcpform" and module.startswith(member + "."))
            if inside and len(member) > len(best):
                best, index = member, i
    return index


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in graph() if layer_of(m) < 0)
    assert not unplaced, f"put these modules in a layer of tests/test_layers.py: {unplaced}"


def test_every_relative_import_names_a_module():
    missing = unresolved_imports()
    assert not missing, "\n".join(missing)


def test_no_import_goes_up_a_layer():
    upward = [
        f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for source, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(source)
    ]
    assert not upward, "\n".join(upward)


def test_the_hcp_package_imports_only_itself():
    outside = [
        f"{source} imports {target}"
        for source, targets in graph().items()
        if source.startswith("hcpform.hcp")
        for target in targets
        if not any(target == a or target.startswith(a + ".") for a in HCP_ALLOWED)
    ]
    assert not outside, "\n".join(outside)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Return one import circle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circle():
    # A package's __init__ importing its own submodules (blueprint packages register their
    # views) is how Flask blueprints are built; a submodule importing its package's __init__
    # back for `bp` is that pattern's other half, so those two edges alone are not a circle.
    edges = {
        source: {t for t in targets if not (t.startswith(source + ".") and source != "hcpform")}
        for source, targets in graph().items()
    }
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ],
)
def test_the_cycle_finder_finds_circles(edges, expected):
    assert (find_cycle(edges) is not None) is expected


def test_the_walker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "fake.py"
    source.write_text("def f():\n    from .sync import x\n    from .admin import bp\n")
    assert imports_of(source, "hcpform.fake") == {"hcpform.sync", "hcpform.admin"}


# --- module size ------------------------------------------------------------------------------

MAX_MODULE_LINES = 500
REASON_MARKER = "Why one module:"


def oversized_without_reason(paths: list[Path]) -> list[str]:
    """Modules over MAX_MODULE_LINES lines whose docstring has no 'Why one module:' paragraph."""
    found = []
    for path in paths:
        text = path.read_text()
        lines = len(text.splitlines())
        if lines <= MAX_MODULE_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text, filename=str(path))) or ""
        if not any(p.strip().startswith(REASON_MARKER) for p in doc.split("\n\n")):
            found.append(f"{path.relative_to(path.parents[1])} ({lines} lines)")
    return found


def test_long_modules_say_why_they_are_one_module():
    # Issue 16: no module over ~500 lines without the reason written in its docstring.
    found = oversized_without_reason(sorted(PACKAGE.rglob("*.py")))
    assert not found, f"split these, or say why in a '{REASON_MARKER}' paragraph: {found}"


def test_the_size_check_wants_the_reason_in_its_own_paragraph(tmp_path):
    body = "x = 1\n" * MAX_MODULE_LINES
    (tmp_path / "pkg").mkdir()
    bare = tmp_path / "pkg" / "bare.py"
    bare.write_text(f'"""Long, and says nothing; Why one module: buried mid-line."""\n{body}')
    told = tmp_path / "pkg" / "told.py"
    told.write_text(f'"""Long.\n\n{REASON_MARKER} one class.\n"""\n{body}')
    short = tmp_path / "pkg" / "short.py"
    short.write_text('"""Short."""\nx = 1\n')
    assert oversized_without_reason([bare, told, short]) == [
        f"pkg/bare.py ({MAX_MODULE_LINES + 1} lines)"
    ]
