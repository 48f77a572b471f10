"""The `validate` and `generate timetable` subcommands of the `islands` CLI.

Covers: `register_commands(subparsers)`, which the coordinator's CLI calls, and the
handlers (`handler(args) -> exit code`). User errors are raised as `InputError`; the
caller prints the one line and exits 2 (`python -m islands.timetable` does the same
standalone).

Does not cover: `islands run` and the other commands (`coordinator.cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from islands.errors import InputError, check_seed, write_user_text
from islands.timetable.generator import generate_instance
from islands.timetable.instance import format_ctt
from islands.timetable.validate import check_files


def validate_command(args: argparse.Namespace) -> int:
    """Print the cost breakdown; repeated entries add one warning line on stderr (and
    `entries`, `repeated_entries`, `first_repeated_line` in the JSON)."""
    check = check_files(args.instance, args.solution)
    if check.warning:
        print(f"warning: {check.warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(check.to_dict()))
    else:
        print(check.breakdown.format_report())
    return 0


def generate_command(args: argparse.Namespace) -> int:
    if args.kind != "timetable":
        raise InputError(f"generate: unknown kind {args.kind!r} (known: timetable)")
    check_seed(args.seed, "generate: --seed")
    instance = generate_instance(
        courses=args.courses,
        rooms=args.rooms,
        days=args.days,
        periods_per_day=args.periods_per_day,
        curricula=args.curricula,
        seed=args.seed,
    )
    output = Path(args.output)
    if output.parent and not output.parent.exists():
        raise InputError("output folder does not exist", path=output.parent)
    write_user_text(output, format_ctt(instance), "instance file")
    print(
        f"wrote {output}: {instance.n_courses} courses, {instance.n_lectures} lectures, "
        f"{instance.n_rooms} rooms, {instance.n_periods} periods, {instance.n_curricula} curricula"
    )
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `validate` and `generate` to a CLI's subparsers (each sets `func`)."""
    validate = subparsers.add_parser(
        "validate", help="violations and cost of a timetable, per constraint"
    )
    validate.add_argument("instance", help="instance file (.ctt)")
    validate.add_argument("solution", help="solution file (.sol)")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.set_defaults(func=validate_command)

    generate = subparsers.add_parser("generate", help="write a synthetic problem instance")
    generate.add_argument("kind", choices=["timetable"], help="what to generate")
    generate.add_argument("--courses", type=int, default=80)
    generate.add_argument("--rooms", type=int, default=12)
    generate.add_argument("--days", type=int, default=5)
    generate.add_argument("--periods-per-day", type=int, default=6)
    generate.add_argument("--curricula", type=int, default=40)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("-o", "--output", required=True, help="instance file to write (.ctt)")
    generate.set_defaults(func=generate_command)
