"""Every import runs down: a module imports only from its own layer and the layers below it.

The layers are the table in docs/architecture.md, read here, so the drawing and the rule are
one thing. A module the table does not place fails too: a new module takes its place in the
drawing when it is written.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DRAWING = ROOT / "docs" / "architecture.md"


def layers() -> dict[str, int]:
    """Each pattern of the table (`service.x`, or `service.x.*` for a package and all it
    holds) with its layer's number."""
    text = DRAWING.read_text().partition("\n## Layers\n")[2].partition("\n## ")[0]
    found: dict[str, int] = {}
    for row in re.findall(r"^\| *(\d+) *\|(.*)$", text, flags=re.MULTILINE):
        for pattern in re.findall(r"`(service[\w.*]*)`", row[1]):
            found[pattern] = int(row[0])
    return found


def modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer_of(module: str, table: dict[str, int]) -> int | None:
    if module in table:
        return table[module]
    while module:
        if f"{module}.*" in table:
            return table[f"{module}.*"]
        module = module.rpartition(".")[0]
    return None


def imports(path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `path` imports, anywhere in it (`from a import b` is a.b
    where that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            }
    return found & known


SERVICE = modules("service")
TABLE = layers()


def test_the_drawing_has_layers() -> None:
    assert len(set(TABLE.values())) >= 10, TABLE


@pytest.mark.parametrize("module", sorted(SERVICE))
def test_imports_run_down(module: str) -> None:
    own = layer_of(module, TABLE)
    assert own is not None, f"{module} has no layer in docs/architecture.md"
    upward = {
        name: layer_of(name, TABLE)
        for name in imports(SERVICE[module], set(SERVICE))
        if (layer_of(name, TABLE) or 0) > own
    }
    assert upward == {}, f"{module} (layer {own}) imports from above: {upward}"


def test_the_client_stands_alone() -> None:
    """The client is its own distribution: it imports nothing of the service."""
    for path in modules("client/loss_service_client").values():
        assert imports(path, set(SERVICE)) == set(), path
