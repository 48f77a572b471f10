"""Problems named by where their class lives: `package.module:Class` and `path/file.py:Class`.

Covers: `is_target(name)` (a spec's name part that names a module or a file rather than a
registered problem: it holds a dot or a slash) and `load_target(target)` (the class or
factory, imported from an importable module, or from a Python file by path; every
failure is one `ProblemSpecError` line naming what is missing). Each worker process
loads the same target again from the spec text, so a file path is resolved against the
working directory, which islands inherit from the coordinator.

Also `ProblemObject`: a problem handed over from Python (`islands.run(MyProblem, ...)`),
a class with its keyword parameters or an instance. It travels to each worker pickled
(multiprocess pickles with dill, so a class defined in a notebook or in `__main__`
travels by value), and its `text()` names it in logs, summaries and `config.toml`.

Does not cover: spec parsing and the registry of built-in and plugin problems
(`islands.problem`), the Python API itself (`coordinator.api`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def is_target(name: str) -> bool:
    """True if a spec's name part names a module or a file (`a.b`, `x.py`, `dir/x.py`)."""
    return "." in name or "/" in name


def load_target(target: str, error: type[Exception]) -> Any:
    """The attribute `Class` of `module:Class` or `file.py:Class`; `error` (one line) if not."""
    where, _, attribute = target.rpartition(":")
    if where.endswith(".py") or "/" in where:
        module = _load_file(Path(where), target, error)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as failure:
            raise error(f"problem {target!r}: cannot import {where!r} ({failure})") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise error(f"problem {target!r}: {where} has no {attribute!r}") from None


def _load_file(path: Path, target: str, error: type[Exception]) -> Any:
    if not path.is_file():
        raise error(f"problem {target!r}: no such file {str(path)!r}")
    resolved = path.resolve()
    # One module per file, the same name in every process that loads it (pickling, caches).
    digest = hashlib.blake2b(str(resolved).encode(), digest_size=6).hexdigest()
    name = f"islands_problem_{resolved.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise error(f"problem {target!r}: {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as failure:
        del sys.modules[name]
        raise error(f"problem {target!r}: {path} failed to load "
                    f"({type(failure).__name__}: {failure})") from None
    return module


@dataclass(frozen=True)
class ProblemObject:
    """A problem given as a Python class (built with `params`) or as an instance."""

    target: Any
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def factory(self) -> Any:
        return self.target if isinstance(self.target, type) else type(self.target)

    def text(self) -> str:
        """`module:Class[,k=v]`: a spec that rebuilds it where the class is importable."""
        factory = self.factory
        parts = [f"{factory.__module__}:{factory.__qualname__}"]
        parts += [f"{key}={value}" for key, value in self.params.items()]
        return ",".join(parts)

    def build(self, arrays: Mapping[str, Any] | None = None) -> Any:
        """The problem object (an instance is used as it is; a class is called)."""
        if not isinstance(self.target, type):
            return self.target
        if arrays and hasattr(self.target, "attach"):
            return self.target.attach(arrays, **self.params)
        return self.target(**self.params)


__all__ = ["ProblemObject", "is_target", "load_target"]
