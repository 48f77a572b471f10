"""The shape rules of the code base (DESIGN.md, "Coordinator in parts"), checked on the source.

Imports point coordinator -> islands -> memory; the run loop stays short; no module grows
past 400 lines (the hand-inlined timetable kernels excepted); no class collects more than
15 attributes; nothing in coordinator/ outside its backends touches a process or a pid.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("memory", "islands", "coordinator")
LONG_MODULES_ALLOWED = {"islands/timetable/kernels.py"}
BACKENDS = {"coordinator/local.py", "coordinator/backend.py", "coordinator/ray_backend.py"}

# None: the config is a model of small tables (coordinator/config_model.py).
CROWDED_ALLOWED: set[str] = set()


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", [("memory", {"islands", "coordinator"}),
                                                ("islands", {"coordinator"})])
def test_imports_point_one_way(package, forbidden):
    offenders = {str(p.relative_to(ROOT)): imported_packages(p) & forbidden
                 for p in modules(package) if imported_packages(p) & forbidden}
    assert offenders == {}


def test_the_api_facade_is_the_one_lazy_way_into_the_coordinator():
    """`islands.run` is the user's entry point; only islands/__init__.py may look it up."""
    lazy = [str(p.relative_to(ROOT)) for p in modules("islands")
            if 'import_module("coordinator' in p.read_text()]
    assert lazy == ["islands/__init__.py"]


def test_module_sizes():
    assert len((ROOT / "coordinator" / "run.py").read_text().splitlines()) < 250
    too_long = {}
    for package in PACKAGES:
        for path in modules(package):
            relative = str(path.relative_to(ROOT))
            lines = len(path.read_text().splitlines())
            if lines > 400 and relative not in LONG_MODULES_ALLOWED:
                too_long[relative] = lines
    assert too_long == {}


def class_attributes(cls: ast.ClassDef) -> set[str]:
    """Names assigned on `self` in the class's methods, plus dataclass-style fields."""
    names = {node.target.id for node in cls.body
             if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
             and "ClassVar" not in ast.unparse(node.annotation)}
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            for element in (target.elts if isinstance(target, ast.Tuple) else [target]):
                if (isinstance(element, ast.Attribute) and isinstance(element.value, ast.Name)
                        and element.value.id == "self"):
                    names.add(element.attr)
    return names


def test_no_class_collects_more_than_fifteen_attributes():
    crowded = {}
    for package in PACKAGES:
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text())):
                name = f"{path.relative_to(ROOT)}:{node.name}" if isinstance(
                    node, ast.ClassDef) else None
                if name and name not in CROWDED_ALLOWED and len(class_attributes(node)) > 15:
                    crowded[name] = len(class_attributes(node))
    assert crowded == {}


def test_the_attribute_counter_counts():
    source = "class A:\n    x: int\n    def f(self):\n        self.a, self.b = 1, 2\n        self.c += 1\n"
    assert class_attributes(ast.parse(source).body[0]) == {"x", "a", "b", "c"}


def test_only_backends_touch_processes():
    pattern = re.compile(r"\.process\b|\bpid\b")
    hits = [f"{path.relative_to(ROOT)}:{number}"
            for path in modules("coordinator") if str(path.relative_to(ROOT)) not in BACKENDS
            for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
