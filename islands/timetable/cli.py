"""The `validate` and `generate timetable` subcommands of the `islands` CLI.

Covers: `register_commands(subparsers)`, which the coordinator's CLI calls, and the
handlers (`handler(args) -> exit code`): `validate [--against OLD.sol]` (the moves
themselves are counted in `islands.timetable.carry`) and `generate timetable [--perturb
BASE.ctt]` (tomorrow's instance is made in `islands.timetable.perturb`). User errors are raised as `InputError`; the
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
from islands.timetable.carry import MoveReport, carry_solution, compare
from islands.timetable.generator import generate_instance
from islands.timetable.instance import format_ctt, read_ctt
from islands.timetable.perturb import perturb_instance
from islands.timetable.validate import check_files


def validate_command(args: argparse.Namespace) -> int:
    """Print the cost breakdown; repeated entries add one warning line on stderr (and
    `entries`, `repeated_entries`, `first_repeated_line` in the JSON). With `--against
    OLD.sol`: what moved since the old solution, and its skipped entries as notes."""
    check = check_files(args.instance, args.solution)
    moves = None
    if args.against is not None:
        instance = read_ctt(args.instance)
        carried = carry_solution(args.against, instance)
        # The new file already passed the strict read; carrying it again gives its genome
        # (-1 for missing lectures, which count as moved).
        new = carry_solution(args.solution, instance)
        moves = compare(instance, carried, new.genome)
    if check.warning:
        print(f"warning: {check.warning}", file=sys.stderr)
    if args.json:
        data: dict[str, object] = dict(check.to_dict())
        if moves is not None:
            data["moves"] = {**moves.to_dict(), "skipped": list(carried.skipped)}
        print(json.dumps(data))
    else:
        print(check.breakdown.format_report())
        if moves is not None:
            print(format_moves(moves))
    if moves is not None:
        for line in carried.skipped:
            print(f"note: {line}", file=sys.stderr)
    return 0


def format_moves(moves: MoveReport) -> str:
    """The `moved: ...` line and one line per curriculum with moved lectures."""
    lines = [
        f"moved: {moves.moved} of {moves.lectures} lectures "
        f"(periods changed {moves.periods_changed}, rooms changed {moves.rooms_changed})"
    ]
    lines += [f"  curriculum {name}: {count} moved" for name, count in moves.by_curriculum.items()]
    return "\n".join(lines)


SIZE_OPTIONS = {"courses": 80, "rooms": 12, "days": 5, "periods_per_day": 6, "curricula": 40}


def generate_command(args: argparse.Namespace) -> int:
    if args.kind != "timetable":
        raise InputError(f"generate: unknown kind {args.kind!r} (known: timetable)")
    check_seed(args.seed, "generate: --seed")
    output = Path(args.output)
    if output.parent and not output.parent.exists():
        raise InputError("output folder does not exist", path=output.parent)
    sizes = {name: getattr(args, name) for name in SIZE_OPTIONS}
    if args.perturb is None:
        for option in ("close_rooms", "change_courses"):
            if getattr(args, option) is not None:
                raise InputError(f"generate: --{option.replace('_', '-')} needs --perturb BASE.ctt")
        instance = generate_instance(
            seed=args.seed,
            **{name: default if sizes[name] is None else sizes[name] for name, default in SIZE_OPTIONS.items()},
        )
        change = None
    else:
        given = [f"--{name.replace('_', '-')}" for name, value in sizes.items() if value is not None]
        if given:
            raise InputError(f"generate: {', '.join(given)} do(es) not apply with --perturb (the sizes come from the base)")
        instance, change = perturb_instance(
            read_ctt(args.perturb),
            close_rooms=1 if args.close_rooms is None else args.close_rooms,
            change_courses=0.05 if args.change_courses is None else args.change_courses,
            seed=args.seed,
        )
    write_user_text(output, format_ctt(instance), "instance file")
    if change is not None:
        print(f"perturbed {args.perturb}: {change.summary()}")
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
    validate.add_argument(
        "--against", metavar="OLD.sol",
        help="also count the lectures moved since this older solution (by curriculum)",
    )
    validate.set_defaults(func=validate_command)

    generate = subparsers.add_parser("generate", help="write a synthetic problem instance")
    generate.add_argument("kind", choices=["timetable"], help="what to generate")
    for name, default in SIZE_OPTIONS.items():
        # None means "not given", so --perturb can refuse sizes that would be ignored.
        generate.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                              help=f"default {default}")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument(
        "--perturb", metavar="BASE.ctt",
        help="tomorrow's instance from this one: close rooms and change some courses",
    )
    generate.add_argument("--close-rooms", type=int, default=None,
                          help="with --perturb: rooms to close (default 1)")
    generate.add_argument("--change-courses", type=float, default=None,
                          help="with --perturb: share of courses removed, added or "
                          "constrained (default 0.05)")
    generate.add_argument("-o", "--output", required=True, help="instance file to write (.ctt)")
    generate.set_defaults(func=generate_command)
