"""The package's layers (docs/architecture.md): imports only point down, and there is no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zemi"

# Lower numbers are lower layers. A module may import its own package and lower layers only; data and retrieval
# may use each other (the builder retrieves), the model layer neither of them.
LAYERS = {
    "zemi.errors": 0, "zemi.io": 0, "zemi.faults": 0, "zemi.cli": 0, "zemi.configs": 0,
    "zemi.models": 1, "zemi.retrieval": 1, "zemi.data": 1,
    "zemi.run": 2,
    "zemi.tools": 3,
}
PEERS = {frozenset({"zemi.retrieval", "zemi.data"})}
ENTRY_LAYER = 4  # the authors' entry names and the command table (zemi/__main__.py), thin modules at the top
FILE_READING_TOOLS = ("zemi.tools.report", "zemi.tools.plot", "zemi.tools.visualize_retrieval", "zemi.tools.compare")

pytestmark = pytest.mark.unit


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def zemi_imports(path: Path) -> set[str]:
    """The zemi modules that a file imports at its top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("zemi"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zemi") and node.level == 0:
            found.add(node.module)
    return found


def layer_of(module: str) -> tuple[str, int]:
    for prefix, layer in sorted(LAYERS.items(), key=lambda item: -len(item[0])):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, layer
    return module, ENTRY_LAYER


GRAPH = {module_name(path): zemi_imports(path) for path in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    package, layer = layer_of(module)
    for imported in GRAPH[module]:
        other, other_layer = layer_of(imported)
        if imported == "zemi" or other == package or frozenset({package, other}) in PEERS:
            continue
        if layer == other_layer == 0:  # the foundations use one another (zemi.cli raises zemi.errors' kinds)
            continue
        assert other_layer < layer, f"{module} (layer {layer}) imports {imported} (layer {other_layer})"


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module, chain):
        state[module] = "open"
        for imported in sorted(GRAPH.get(module, ())):
            target = imported if imported in GRAPH else imported.rsplit(".", 1)[0]
            if target not in GRAPH or target == module:
                continue
            assert state.get(target) != "open", " -> ".join(chain + [target])
            if target not in state:
                visit(target, chain + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


@pytest.mark.e2e
@pytest.mark.parametrize("tool", FILE_READING_TOOLS)
def test_file_reading_tools_load_neither_models_nor_training(tool):
    if not (PACKAGE.parent / (tool.replace(".", "/") + ".py")).is_file():
        pytest.skip(f"{tool} does not exist")
    code = (f"import sys, {tool}; bad = sorted(m for m in sys.modules if m.startswith(('zemi.models', 'zemi.run'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{tool} loads {done.stdout.strip()} {done.stderr[-500:]}"


def test_config_is_a_leaf():
    """Config: dataclasses and parsing, with only the errors, the command line and the presets (plain data)
    below it."""
    assert GRAPH["zemi.run.config"] <= {"zemi.errors", "zemi.cli", "zemi.run.presets"}
    assert GRAPH["zemi.run.presets"] <= {"zemi.errors", "zemi.cli", "zemi.configs", "zemi.data.task_lists"}
    assert GRAPH["zemi.data.task_lists"] == set()
