"""The `islands` command line (console script, also `python -m coordinator`).

Covers: argument parsing for `islands run` (flags map one-to-one onto
`coordinator.config.RunConfig` fields, resolved as defaults < `--config FILE.toml` <
flags), `islands resume RUN_DIR` (continue a stopped or crashed run from its
checkpoints), the exit codes (EXIT_CODES_TEXT), the demo run (`islands run` with no spec generates a term into the run
directory and solves it), the timetable subcommands (`validate`, `generate`, added by
`islands.timetable.cli.register_commands` when that module is installed), logging to
stderr (stdout carries only the `--json` summary), and turning user errors into one
`islands: error: ...` line with exit code 2 and no traceback.

Does not cover: the run itself (`coordinator.run`), config files
(`coordinator.config`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from coordinator.config import RunConfig, resolve_config, spec_text
from coordinator.flags import add_config_flags, flag_values
from coordinator.review_cli import register_commands as register_review_commands
from coordinator.signals import STOP_EXIT_CODES
from coordinator.summary import islands_version
from islands.errors import InputError
from islands.problem import ProblemSpecError, parse_spec
from memory.budget import BudgetError

PROG = "islands"
DEMO_TIME_LIMIT_S = 60.0
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INFEASIBLE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_CODES_TEXT = """exit codes:
  0    finished (a limit, the target or stagnation was reached; or resume: already finished)
  1    every island failed (see events.jsonl and the log for the traceback)
  2    bad input: usage, problem spec, config file, budget, run directory, checkpoint
  3    finished, but the best solution breaks hard constraints (a timetable with hard
       violations: best.sol is written, but it is not a usable timetable)
  129  stopped by SIGHUP; checkpoint and best solution written (islands resume RUN_DIR)
  130  stopped by Ctrl-C; checkpoint and best solution written (islands resume RUN_DIR)
  143  stopped by SIGTERM; checkpoint and best solution written (islands resume RUN_DIR)
Signals stop gracefully at any moment, warm-up included; one sent to the whole process
group (timeout, systemd) is a clean stop too. A second Ctrl-C stops at once (exit code
130; the last periodic checkpoint stays)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one `islands: error: ...` line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Island-model genetic search inside a RAM budget.",
                           epilog=EXIT_CODES_TEXT,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {islands_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    run = commands.add_parser(
        "run", help="run the optimizer on a problem (no spec: the demo term)",
        description="Every setting is also a key of the --config FILE.toml, in its table: "
                    "[stop] generations, time_limit, evaluations, target, stagnation; "
                    "[search] population, tournament_size, crossover_rate, elite_count, "
                    "topology, migration_interval, migrants, sync; [memory] budget, "
                    "streaming, chunk_size, min_population, cache_entries, thresholds; "
                    "[output] json, quiet, progress_interval, history; [problem] spec and "
                    "the problem's parameters. Flags win over the file.",
        epilog=EXIT_CODES_TEXT, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("problem", nargs="?", metavar="PROBLEM_SPEC",
                     help="e.g. rastrigin:dim=50, heavy:mb=20, timetable:term.ctt or term.ctt")
    run.add_argument("--config", metavar="FILE.toml", help="settings file (flags win over it)")
    run.add_argument("--initial", metavar="OLD.sol",
                     help="timetables: start from this earlier timetable (last night's) on "
                          "today's instance; what still fits is kept, the rest repaired")
    run.add_argument("--stability", type=int, metavar="W",
                     help="timetables with --initial: what each lecture moved away from its "
                          "old period or room costs (default 5; 0: a plain warm start)")
    add_config_flags(run)
    run.set_defaults(func=command_run)
    resume = commands.add_parser(
        "resume", help="continue a stopped or crashed run from its checkpoints",
        description="Continue RUN_DIR from its checkpoints: same run id, events appended, "
                    "generations go on from where they were and the time limit counts the "
                    "time already spent. A run that finished says so and exits 0, unless "
                    "--generations or --time-limit give it a new limit.",
        epilog=EXIT_CODES_TEXT, formatter_class=argparse.RawDescriptionHelpFormatter)
    resume.add_argument("run_dir", metavar="RUN_DIR")
    resume.add_argument("--generations", type=int, metavar="G", help="new generation limit")
    resume.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="new time limit (counts the time already spent)")
    resume.add_argument("--json", action="store_true", default=False,
                        help="print the summary as one JSON object on stdout")
    resume.add_argument("--quiet", action="store_true", default=False,
                        help="warnings and errors only")
    resume.set_defaults(func=command_resume)
    problems = commands.add_parser(
        "problems", help="list the built-in and installed problems with their parameters",
        description="Every problem a spec can name, with its parameters and defaults "
                    "(`NAME:k=v,...`). Any class is usable without installing it, as "
                    "`package.module:Class[,k=v]` or `path/to/file.py:Class[,k=v]`.")
    problems.set_defaults(func=command_problems)
    register_review_commands(commands)
    try:
        from islands.timetable.cli import register_commands
    except ImportError:
        pass
    else:
        register_commands(commands)
    return parser


def set_up_logging(quiet: bool) -> None:
    root = logging.getLogger("islands")
    for handler in list(root.handlers):
        if getattr(handler, "_islands_cli", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    handler._islands_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # RUN_DIR/run.log keeps INFO even with --quiet
    root.propagate = False


def config_from_args(args: argparse.Namespace) -> RunConfig:
    config = resolve_config(toml_path=args.config, flags=flag_values(args))
    warm = {}
    if getattr(args, "initial", None):
        warm["initial"] = str(Path(args.initial).resolve())  # islands may run elsewhere
    if getattr(args, "stability", None) is not None:
        warm["stability"] = args.stability
    if warm:
        if not config.problem:
            raise InputError("--initial/--stability need a timetable: islands run TERM.ctt "
                             "--initial OLD.sol")
        try:
            parsed = parse_spec(config.problem)
        except ProblemSpecError as error:
            raise InputError(str(error)) from None
        # The flags win over the same parameters written in the spec.
        config.problem = spec_text(parsed.name, {**parsed.params, **warm})
    return config


def check_backend(config: RunConfig) -> None:
    if config.backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InputError(
                "--backend ray needs the ray package: pip install 'islands[ray]'"
            ) from None


def prepare_demo(config: RunConfig) -> RunConfig:
    """No spec given: write a generated term into the run directory and solve it."""
    from coordinator.run import default_run_dir

    try:
        from islands.timetable.generator import write_demo_term
    except ImportError:
        raise InputError("no problem spec given and the demo term generator is not installed; "
                         "give a spec such as rastrigin:dim=50") from None
    run_dir = Path(config.out) if config.out else default_run_dir("demo")
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"cannot use run directory {run_dir}: it is a file, not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        term = write_demo_term(run_dir / "demo.ctt", seed=config.seed)
    except OSError as error:  # a read-only or missing place, a file in the way, a full disk
        raise InputError(f"cannot use run directory {run_dir}: {error.strerror or error} "
                         f"(writing the demo term {run_dir / 'demo.ctt'})") from None
    logging.getLogger("islands.run").info(
        "[GA] No problem given: solving a generated demo term, written to %s", term)
    config.problem = f"timetable:{term}"
    config.out = str(run_dir)
    if config.stop.time_limit is None and config.stop.generations is None:
        config.stop.time_limit = DEMO_TIME_LIMIT_S
    return config


def command_run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    set_up_logging(config.output.quiet)
    check_backend(config)
    if not config.problem:
        config = prepare_demo(config)
    from coordinator.run import execute_run

    summary = execute_run(config, require_limit=True)
    return finish(summary, config.output.json)


def finish(summary: dict[str, Any], as_json: bool) -> int:
    """Print the summary if asked; the exit code for how the run stopped.

    A best the disk never took (`solution_pending`) is printed without `--json` too: the
    summary's `best_genome` is then the only copy of the result.
    """
    if as_json or summary.get("solution_pending"):
        try:
            sys.stdout.write(json.dumps(summary, default=_json_default) + "\n")
            sys.stdout.flush()
        except OSError as error:  # stdout on a full disk: say so, keep the run's exit code
            logging.getLogger("islands.run").warning(
                "[GA] Could not print the summary on stdout (%s); it is in %s/summary.json "
                "if that could be written", error, summary.get("run_dir"))
            with contextlib.suppress(OSError):  # so the exit's flush of stdout cannot fail
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if summary.get("stopped_by") in STOP_EXIT_CODES:
        # On the way out after a signal: one more Ctrl-C must not turn exit 130/143 into a
        # death by SIGINT during interpreter shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopped_by = summary.get("stopped_by")
    if stopped_by in STOP_EXIT_CODES or stopped_by == "failed":
        return {"failed": EXIT_FAILED, **STOP_EXIT_CODES}[stopped_by]
    if summary.get("feasible") is False:
        logging.getLogger("islands.run").warning(
            "[GA] The best solution is infeasible (it breaks hard constraints); exit code %d",
            EXIT_INFEASIBLE)
        return EXIT_INFEASIBLE
    return EXIT_OK


def command_resume(args: argparse.Namespace) -> int:
    from coordinator.run import already_finished, execute_run, load_resume

    set_up_logging(args.quiet)
    config, state = load_resume(args.run_dir, generations=args.generations,
                                time_limit=args.time_limit)
    reason = already_finished(state)
    if reason is not None and args.generations is None and args.time_limit is None:
        sys.stderr.write(f"{PROG}: run {args.run_dir} already finished (stopped by {reason}); "
                         "give --generations or --time-limit to go on\n")
        return EXIT_OK
    config.output.json = args.json
    config.output.quiet = args.quiet
    check_backend(config)
    enter_workdir(config)
    summary = execute_run(config, resume_state=state)
    return finish(summary, args.json)


def command_problems(args: argparse.Namespace) -> int:
    from islands.problem import describe_problems

    for name, parameters in describe_problems():
        sys.stdout.write(f"{name:<12} {parameters}\n")
    return EXIT_OK


def enter_workdir(config: RunConfig) -> None:
    """Resume where the run started (cron starts in $HOME): its relative problem paths
    (`timetable:term.ctt`, the demo's term, `file.py:Class`) resolve as they did."""
    if config.workdir is None:
        return
    try:
        os.chdir(config.workdir)
    except OSError as error:
        raise InputError(f"cannot resume: the run started in {config.workdir}, which is not "
                         f"usable now ({error.strerror})") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """The `islands` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, BudgetError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: stopped\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
