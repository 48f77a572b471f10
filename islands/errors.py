"""User-facing input errors of the evolutionary side.

`InputError` is what bad files, specs and values raise: its message is one line that
names the problem (file and line where there is one). The CLI (`coordinator.cli`)
prints it and exits with code 2. Memory-side errors (`memory.budget.BudgetError`) are
handled the same way there; `memory` cannot import this module.
"""

from __future__ import annotations

from pathlib import Path

# Run and generator seeds: 0..2**63-1. numpy's SeedSequence (what `islands.island.derive_seed`
# builds every island's seed from) refuses negative seeds; the run's config.toml stores the
# seed as a TOML integer (signed 64-bit) and the worker spec travels as msgpack (64-bit).
SEED_MAX = 2**63 - 1


def check_seed(seed: object, source: str = "seed") -> int:
    """`seed` as an int in 0..SEED_MAX; anything else is one InputError line."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{source} must be an integer in 0..2**63-1 ({SEED_MAX}), got {seed!r}")
    if not 0 <= seed <= SEED_MAX:
        raise InputError(f"{source} must be in 0..2**63-1 ({SEED_MAX}), got {seed}")
    return seed


def read_user_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of a user's file; a missing or unreadable one is one InputError line.

    A UTF-8 byte-order mark at the start (what some Windows editors write) is dropped, so
    such a file reads as if it had none (`.ctt`, `.sol` and TOML config files alike).
    """
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path) from None
    except UnicodeDecodeError as error:
        raise InputError(
            f"cannot read {what}: not UTF-8 text (byte {error.start}: {error.reason})", path=path
        ) from None
    except OSError as error:
        raise InputError(f"cannot read {what}: {error.strerror or error}", path=path) from None


def write_user_text(path: str | Path, text: str, what: str) -> Path:
    """Write a file the user named; a path that cannot be written is one InputError line
    (a missing or read-only folder, a folder in the way, a file where a folder should be)."""
    path = Path(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write {what}: {error.strerror or error}", path=path) from None
    return path


class InputError(ValueError):
    """Bad user input: one clear line, exit code 2 at the command line."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = None if path is None else str(path)
        self.line = line
