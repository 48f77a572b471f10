"""Problems named by where their class lives: `package.module:Class` and `path/file.py:Class`.

Covers: `is_target(name)` (a spec's name part that names a module or a file rather than a
registered problem: it holds a dot or a slash) and `load_target(target)` (the class or
factory, imported from an importable module, or from a Python file by path; every
failure is one `ProblemSpecError` line naming what is missing). Each worker process
loads the same target again from the spec text, so a file path is resolved against the
working directory, which islands inherit from the coordinator.

Does not cover: spec parsing and the registry of built-in and plugin problems
(`islands.problem`), problems defined in a notebook or `__main__` (issue 13's API).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
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


__all__ = ["is_target", "load_target"]
