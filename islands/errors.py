"""User-facing input errors of the evolutionary side.

`InputError` is what bad files, specs and values raise: its message is one line that
names the problem (file and line where there is one). The CLI (`coordinator.cli`)
prints it and exits with code 2. Memory-side errors (`memory.budget.BudgetError`) are
handled the same way there; `memory` cannot import this module.
"""

from __future__ import annotations

from pathlib import Path


def read_user_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of a user's file; a missing or unreadable one is one InputError line."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {what}: {error}", path=path) from None


class InputError(ValueError):
    """Bad user input: one clear line, exit code 2 at the command line."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = None if path is None else str(path)
        self.line = line
