"""`python -m islands.timetable validate|generate ...`: the timetable commands standalone.

The same commands as `islands validate` / `islands generate timetable` (see
`islands.timetable.cli`); an InputError prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import sys

from islands.errors import InputError
from islands.timetable.cli import register_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m islands.timetable")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register_commands(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
