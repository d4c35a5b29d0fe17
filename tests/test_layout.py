"""The package layout reads as the data flows: each module imports only its own stage and earlier ones.

Every module under `assistant/` is parsed with `ast` (imports inside functions and under
`TYPE_CHECKING` count: a deferred import is still a dependency), mapped to its stage by the longest
package prefix in `STAGES`, and checked for: an import of a later stage, any import cycle, a
third-party SDK outside the package that owns it, and more than `MAX_LINES` lines. `test_imports.py`
checks the other half of the rule: `import assistant` loads no heavy library.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "assistant"

# The stages in data-flow order (ARCHITECTURE.md, docs/design.md): a module may import modules of
# its own stage and of earlier ones. The front ends come last, in the order they wrap each other:
# `bibliography` formats what mcp, web and cli show; `web` serves the `mcp` tools from its own
# server; `cli` starts `web`, `evaluate` and `doctor`; `__main__` runs `cli`. The front door
# (`assistant/__init__.py`) re-exports `Assistant` and `answer` from `pipeline`; nothing imports it.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "values",
        (
            "schema",
            "errors",
            "config",
            "config_fields",
            "config_retrieval",
            "config_sources",
            "cache",
            "inert",
            "keys",
            "streams",
        ),
    ),
    ("sources", ("sources",)),
    ("embeddings", ("embeddings",)),
    ("store", ("store",)),
    ("ingest", ("ingest",)),
    ("llms", ("llms",)),
    ("retrieve", ("retrieve",)),
    ("answering", ("answering",)),
    ("pipeline", ("pipeline",)),
    ("bibliography", ("bibliography",)),
    ("mcp", ("mcp",)),
    ("web", ("web",)),
    ("evaluate", ("evaluate",)),
    ("doctor", ("doctor",)),
    ("cli", ("cli",)),
    ("main", ("__main__",)),
    ("front door", ("",)),
)

# Third-party libraries kept inside the package that owns them (ARCHITECTURE.md "Rules").
OWNERS: dict[str, tuple[str, ...]] = {
    "chromadb": ("store",),
    "gradio": ("web", "mcp"),
    "llama_cpp": ("llms",),
    "llama_index.llms": ("llms",),
    "llama_index.embeddings": ("embeddings",),
    "onnxruntime": ("embeddings",),
    "torch": ("embeddings",),
    "ray": ("ingest",),
    "matplotlib": ("evaluate",),
}

MAX_LINES = 400
# Modules allowed over MAX_LINES, each with the reason it is not split.
LONG: dict[str, str] = {}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """`assistant/store/keyword/live.py` -> `assistant.store.keyword.live`; a package is its folder."""
    parts = (root.name, *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports(name: str, path: Path, known: Mapping[str, object]) -> set[str]:
    """Every module of the package that `path` imports, wherever in the file the import is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # `from assistant.store import keyword` imports the module `assistant.store.keyword`.
            found.update(
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            )
    root = name.split(".")[0]
    return {module for module in found if module == root or module.startswith(root + ".")}


def third_party(path: Path) -> set[str]:
    """Every module name `path` imports absolutely (`llama_index.llms.openai`), to match against `OWNERS`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found


def stage_of(module: str) -> int:
    """The index in STAGES of the stage whose package prefix is the longest match for `module`."""
    root, _, rest = module.partition(".")
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            matches = rest == prefix or rest.startswith(prefix + ".") if prefix else rest == ""
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best < 0:
        raise KeyError(f"{module} belongs to no stage: add it to STAGES in tests/test_layout.py")
    return best


def backward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    """Each import of a later stage, as one line naming both modules and stages."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = stage_of(module), stage_of(target)
            if there > here:
                found.append(f"{module} ({STAGES[here][0]}) imports {target} ({STAGES[there][0]})")
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module, and every module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm; the package is small enough to recurse
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1 or module in graph.get(module, ()):
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports(name, path, known) - {name} for name, path in known.items()}


def test_every_module_has_a_stage() -> None:
    for module in modules():
        stage_of(module)  # raises naming the module


def test_no_module_imports_a_later_stage() -> None:
    assert backward_imports(import_graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def misplaced_libraries(root: Path = PACKAGE) -> list[str]:
    """Each import of a library in `OWNERS` outside the stages that own it."""
    wrong = []
    for name, path in modules(root).items():
        stage = STAGES[stage_of(name)][0]
        for library in sorted(third_party(path)):
            for owned, owners in OWNERS.items():
                if (library == owned or library.startswith(owned + ".")) and stage not in owners:
                    wrong.append(f"{name} imports {library} (kept in {', '.join(owners)})")
    return wrong


def long_modules(root: Path = PACKAGE) -> dict[str, int]:
    """Each module over `MAX_LINES` lines that `LONG` does not excuse, with its length."""
    lengths = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules(root).items()
    }
    return {name: lines for name, lines in lengths.items() if lines > MAX_LINES and name not in LONG}


def test_libraries_stay_in_the_package_that_owns_them() -> None:
    assert misplaced_libraries() == []


def test_modules_stay_short() -> None:
    assert long_modules() == {}, "split by responsibility, or list it in LONG with the reason"
    assert set(LONG) <= set(modules()), "LONG names a module that no longer exists"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A synthetic package with each defect: the checks above must report every one."""
    root = tmp_path / "assistant"
    files = {
        "__init__.py": "",
        "schema.py": "from assistant.retrieve import condense\n",  # values -> retrieve: backward
        "retrieve/__init__.py": "from assistant.retrieve.condense import turns\n",
        # a function-level import still counts; with the package __init__ it makes a cycle
        "retrieve/condense.py": "def turns():\n    from assistant.retrieve import Filters\n",
        "store/__init__.py": "from . import papers\nimport gradio\n" + "x = 1\n" * MAX_LINES,
        "store/papers.py": "from .. import store\n",  # relative: assistant.store, another cycle
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    graph = import_graph(root)
    assert graph["assistant.schema"] == {"assistant.retrieve.condense"}
    assert backward_imports(graph) == [
        "assistant.schema (values) imports assistant.retrieve.condense (retrieve)"
    ]
    assert cycles(graph) == [
        ["assistant.retrieve", "assistant.retrieve.condense"],
        ["assistant.store", "assistant.store.papers"],
    ]
    assert misplaced_libraries(root) == ["assistant.store imports gradio (kept in web, mcp)"]
    assert long_modules(root) == {"assistant.store": MAX_LINES + 2}
    with pytest.raises(KeyError, match="assistant.nowhere belongs to no stage"):
        stage_of("assistant.nowhere")


def test_a_longer_cycle_is_found() -> None:
    """Not only two modules importing each other: a -> b -> c -> a, beside an acyclic d -> a."""
    graph = {
        "assistant.store.a": {"assistant.store.b"},
        "assistant.store.b": {"assistant.store.c"},
        "assistant.store.c": {"assistant.store.a"},
        "assistant.store.d": {"assistant.store.a"},
    }
    assert cycles(graph) == [["assistant.store.a", "assistant.store.b", "assistant.store.c"]]
    assert cycles({"assistant.store.a": {"assistant.store.a"}}) == [["assistant.store.a"]]
    assert backward_imports(graph) == []


# Outside the package: the tests and the benchmarks share `harness/` and never import each other.
CHECKOUT = PACKAGE.parent
FOLDERS_MAY_IMPORT = {"tests": {"harness"}, "bench": {"harness"}, "harness": set()}


def crossed_folders(root: Path = CHECKOUT) -> list[str]:
    """Each import of another of `FOLDERS_MAY_IMPORT`'s folders that the importing folder may not use."""
    wrong = []
    for folder, allowed in FOLDERS_MAY_IMPORT.items():
        for path in sorted((root / folder).rglob("*.py")):
            for module in sorted(third_party(path)):
                top = module.split(".")[0]
                if top in FOLDERS_MAY_IMPORT and top != folder and top not in allowed:
                    wrong.append(f"{path.relative_to(root)} imports {module}")
    return wrong


def test_tests_and_benchmarks_share_only_the_harness(tmp_path: Path) -> None:
    assert crossed_folders() == []
    # The check can fail: a test importing bench/, and harness/ importing the tests.
    for relative, text in {
        "tests/test_x.py": "from bench.servers import free_port\n",
        "bench/b.py": "from harness.servers import free_port\n",
        "harness/h.py": "import tests.helpers\n",
    }.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text, encoding="utf-8")
    assert crossed_folders(tmp_path) == [
        "tests/test_x.py imports bench.servers",
        "harness/h.py imports tests.helpers",
    ]
    # harness/ is no part of the wheel.
    assert 'include = ["assistant*"]' in (CHECKOUT / "pyproject.toml").read_text(encoding="utf-8")
