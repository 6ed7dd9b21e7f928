"""The package layering drawn in docs/architecture.md holds: no module imports a package above its own layer.

Every ``import synpo.x`` / ``from synpo.x import ...`` in the library is read with ``ast`` (imports inside
functions included: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "synpo"

# lower number = lower layer; a module may import its own layer and the layers below
LAYERS = {
    "errors": 0, "console": 0, "jsonl": 0, "config": 0, "storage": 0, "video": 0, "losses": 0, "pairs": 0,
    "vlm": 1, "sampling": 1, "judging": 1, "training": 1, "registry": 1, "models": 1, "toy": 1,
    "pairgen": 2, "evaluation": 2, "promotion": 2, "serving": 2, "testing": 2,
    "cli": 3, "replication": 3,
}  # fmt: skip
# The toy world is reached through the model resolver (toy://tiny-vlm) only: no job, stage or engine imports it.
TOY_USERS = {"toy", "models", "testing", "cli", "replication"}
# One exception: evaluation scores captions of toy eval sets against the toy world's facts (its grammar only).
TOY_GRAMMAR_USERS = {"evaluation": {"synpo.toy.facts"}}


def top_package(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synpo.") and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("synpo."))
    return found


def imported_packages(path: Path) -> set[str]:
    return {module.split(".")[1] for module in imported_modules(path)}


def test_every_package_has_a_layer():
    packages = {top_package(path) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def test_no_module_imports_a_package_above_it():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        own = LAYERS[top_package(path)]
        upward += [f"{path.relative_to(PACKAGE)} imports synpo.{name}" for name in sorted(imported_packages(path)) if LAYERS[name] > own]
    assert not upward, "\n".join(upward)


def test_only_the_resolver_and_support_code_import_the_toy_world():
    users = []
    for path in PACKAGE.rglob("*.py"):
        package = top_package(path)
        if package in TOY_USERS:
            continue
        toy_modules = {module for module in imported_modules(path) if module.split(".")[1] == "toy"}
        users += [f"{path.relative_to(PACKAGE)} imports {module}" for module in sorted(toy_modules - TOY_GRAMMAR_USERS.get(package, set()))]
    assert not users, users
