"""Command-line flags of `islands run`, made from the config model: one flag per setting.

Covers: `add_config_flags(parser)` (each field of `coordinator.config_model.RunConfig`
and its tables becomes `--flat-name`, with the field's help text, its default shown,
a metavar from its type, choices for topology and backend, sizes checked at parse time;
a boolean that defaults to true gets a `--no-...` flag), and `flag_values(args)` (the
given flags by flat name, `None` for those not given, so the TOML file keeps them).

Does not cover: the subcommands and exit codes (`coordinator.cli`), merging and checking
values (`coordinator.config`), the model and its help texts (`coordinator.config_model`).
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from coordinator.config_model import BACKENDS, FLAT_NAMES, START_METHODS, default_of, help_of
from islands.topology import TOPOLOGIES
from memory.budget import BudgetError, parse_size

# Settings without a flag: TOML tables and what the run records for itself.
NOT_FLAGS = ("problem", "workdir", "thresholds")
NEGATED = {"streaming": ("--no-streaming", "evaluate whole generations at once (the old, "
                                           "memory-hungry way)"),
           "record_history": ("--no-history", "do not record this run in the run history")}
CHOICES = {"topology": TOPOLOGIES, "backend": BACKENDS, "start_method": START_METHODS}
METAVARS = {"time_limit": "SECONDS", "sync_timeout": "SECONDS", "checkpoint_interval": "SECONDS",
            "monitor_interval": "SECONDS", "progress_interval": "SECONDS", "memory_budget": "SIZE",
            "out": "RUN_DIR", "history": "FILE", "address": "auto|HOST:PORT"}


def _size(text: str) -> str:
    try:
        parse_size(text)
    except BudgetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _value_type(flat_name: str) -> type:
    from coordinator.config_model import GROUPS, RunConfig

    group, name = FLAT_NAMES[flat_name]
    table = RunConfig if group is None else GROUPS[group]
    hints = typing.get_type_hints(table)
    kinds = [t for t in typing.get_args(hints[name]) if t is not type(None)] or [hints[name]]
    for kind in (bool, int, float, str):
        if kind in kinds:
            return kind
    return str


def _help(flat_name: str, default: Any) -> str:
    text = help_of(flat_name)
    if default is None or isinstance(default, bool) or flat_name in NEGATED:
        return text
    return f"{text} (default: {default})"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of the model (see the module docstring)."""
    for flat_name in FLAT_NAMES:
        if flat_name in NOT_FLAGS:
            continue
        default = default_of(flat_name)
        kind = _value_type(flat_name)
        if flat_name in NEGATED:
            flag, text = NEGATED[flat_name]
            parser.add_argument(flag, dest=flat_name, action="store_false", default=None,
                                help=text)
            continue
        flag = "--" + flat_name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=flat_name, action="store_true", default=None,
                                help=_help(flat_name, default))
            continue
        options: dict[str, Any] = {"dest": flat_name, "default": None,
                                   "help": _help(flat_name, default)}
        if flat_name in CHOICES:
            options["choices"] = CHOICES[flat_name]
        else:
            options["metavar"] = METAVARS.get(flat_name, {int: "N", float: "X"}.get(kind, "TEXT"))
            options["type"] = _size if flat_name == "memory_budget" else kind
        parser.add_argument(flag, **options)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """Flat name -> value for every config flag (None where not given)."""
    values = {name: getattr(args, name, None) for name in FLAT_NAMES if name not in NOT_FLAGS}
    values["problem"] = getattr(args, "problem", None)
    return values


__all__ = ["add_config_flags", "flag_values"]
