"""The shape of the code: no import cycles, the library never imports a CLI module, no
dispatch on runtime names outside the registry, and light imports."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

grimp = pytest.importorskip("grimp")

PACKAGES = ("borealis_local", "langchain_borealis")
CLI_MODULES = {"borealis_local.cli", "borealis_local.bench.cli", "borealis_local.bench.advice_cli"}
# What `import borealis_local` and `borealis --help` must not load: runtimes, frameworks,
# numerics. They load where a command or a backend uses them.
HEAVY = ("llama_cpp", "ollama", "openai", "httpx", "huggingface_hub", "langchain_core",
         "llama_index", "numpy", "matplotlib", "gguf")  # fmt: skip


@pytest.fixture(scope="module")
def graph():
    # Every import counts, those inside functions too: a cycle through a lazy import is
    # still two modules that cannot be understood (or moved) one without the other.
    return grimp.build_graph(*PACKAGES)


def import_cycles(graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in graph.modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles(graph):
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    made = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        made.add_module(name)
    made.add_import(importer="a.b", imported="a.c")
    made.add_import(importer="a.c", imported="a.b")
    made.add_import(importer="a.c", imported="a.d")
    assert import_cycles(made) == [["a.b", "a.c"]]


def test_the_library_never_imports_a_cli_module(graph):
    importers = {
        (importer, cli)
        for cli in CLI_MODULES
        for importer in graph.find_modules_that_directly_import(cli)
        if importer not in CLI_MODULES and importer != "borealis_local.__main__"
    }
    assert importers == set()


def test_no_dispatch_on_runtime_names_outside_the_registry():
    # The registry's kinds answer "which backend is this?"; nothing compares names.
    pattern = re.compile(r"\bkind\s*(==|!=|\bin\b\s*[(\[{])|==\s*\"(llama\.cpp|ollama|openai)\"")
    found = []
    for path in sorted((REPO / "integrations").rglob("*.py")):
        if path.name == "registry.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []


@pytest.mark.parametrize("code", [
    "import borealis_local",
    "import contextlib, io\n"
    "from borealis_local.cli import main\n"
    "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
    "    main(['--help'])",
])  # fmt: skip
def test_imports_stay_light(code):
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.check_output([sys.executable, "-c", probe], text=True).split())
    assert sorted(name for name in HEAVY if name in loaded) == []
