"""The Problem protocol, its defaults, problem specs and the problem registry.

Covers: what a problem must provide (DESIGN.md "Problem protocol"), the default
operators used when a problem leaves an optional part out (`complete()` wraps any
object that has the five required parts), parsing of specs such as
`rastrigin:dim=100`, `heavy:mb=20,dim=50`, `timetable:path/to/x.ctt`, a bare `x.ctt`,
`package.module:Class[,k=v]` or `path/file.py:Class[,k=v]` (loaded by `islands.targets`),
and building problems from the built-in registry or from plugins registered under the
entry-point group `islands.problems`; `describe_problems()` for `islands problems`.

Does not cover: the built-in problems themselves (`islands.problems.*`,
`islands.timetable`), evolution (`islands.population`, `islands.island`) or putting
problem data into shared memory (`memory.shared`; the worker loop calls
`shared_arrays()` / `attach()`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from islands.errors import InputError
from islands.operators import mutation_sites, uniform_crossover
from islands.targets import ProblemObject, is_target, load_target

ENTRY_POINT_GROUP = "islands.problems"

# name -> "module:attribute"; the attribute is a class or factory taking keyword params.
BUILTIN_PROBLEMS: dict[str, str] = {
    "sphere": "islands.problems.functions:Sphere",
    "rastrigin": "islands.problems.functions:Rastrigin",
    "rosenbrock": "islands.problems.functions:Rosenbrock",
    "heavy": "islands.problems.heavy:Heavy",
    "costly": "islands.problems.costly:Costly",
    "timetable": "islands.timetable.problem:TimetableProblem",
}

# A spec whose first part is a path with one of these suffixes names that problem.
SUFFIX_PROBLEMS: dict[str, str] = {".ctt": "timetable"}


class ProblemSpecError(InputError):
    """A problem spec that names no known problem or carries bad parameters."""


@runtime_checkable
class Problem(Protocol):
    """Minimisation over fixed-length numpy genomes (the required parts only)."""

    genome_shape: tuple[int, ...]
    genome_dtype: np.dtype
    individual_bytes: int

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` random genomes, shape `(n, *genome_shape)`."""
        ...

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        """Fitness (float64, lower is better) of a batch of genomes, shape `(n,)`."""
        ...


REQUIRED_PARTS = ("genome_shape", "genome_dtype", "individual_bytes", "random", "evaluate")


def genome_key(genome: np.ndarray) -> bytes:
    """A stable 16-byte key of one genome, the same in every process (cache key)."""
    return hashlib.blake2b(np.ascontiguousarray(genome).tobytes(), digest_size=16).digest()


class CompleteProblem:
    """Any object with the required parts, plus defaults for every optional part.

    Optional parts and their defaults:
    - `mutate(genomes, rng) -> genomes`: floats get Gaussian noise on ~1/len genes, at
      least one (sigma = 10 % of `bounds` when the problem has `bounds = (low, high)`, else
      0.1), other dtypes get those genes reset to values of fresh random genomes.
    - `crossover(parents_a, parents_b, rng) -> children`: uniform crossover.
    - `improve(genomes, fitness, rng) -> (genomes, fitness)`: no local search.
    - `shared_arrays() -> dict[str, ndarray]`: nothing shared; `attach` absent.
    - `describe(genome) -> dict`: `{}`; extra fields for the run summary.
    - `write(genome, stem) -> Path`: `stem.npy`.
    - `warm_up()`: nothing; the coordinator calls it once before starting islands, so a
      problem can compile or cache what every worker would otherwise redo (JIT kernels).
    - `set_time_budget(seconds)`: nothing; a worker calls it when the run has a time limit
      (the seconds this island has left), so a problem can pace its own search.
    - `valid(genomes) -> bool array (n,)`: which genomes lie in the problem's domain
      (default: all, or all-finite for float genomes). Genomes from outside this process
      (immigrants, checkpoints) are checked with it before anything evaluates them: a
      compiled kernel indexed by an out-of-range gene reads past its arrays.
    - `target_fitness`: None (no known optimum); `solution_suffix`: ".npy".
    - `trajectory`: False. True: `improve` is one continuing local search per member
      (annealing); each generation passes every survivor to it as is (no selection,
      crossover, mutation) and a member is replaced only by its own result
      (`islands.population`). The problem keeps each member's search state between
      calls; a member better than its search has seen (an immigrant) restarts from there.
    """

    def __init__(self, problem: Any) -> None:
        missing = [part for part in REQUIRED_PARTS if not hasattr(problem, part)]
        if missing:
            raise ProblemSpecError(
                f"problem {type(problem).__name__} lacks required part(s): {', '.join(missing)}"
            )
        self.inner = problem
        self.genome_shape = tuple(int(s) for s in np.atleast_1d(problem.genome_shape))
        self.genome_dtype = np.dtype(problem.genome_dtype)
        self.individual_bytes = int(problem.individual_bytes)
        self.target_fitness = getattr(problem, "target_fitness", None)
        self.solution_suffix = getattr(problem, "solution_suffix", ".npy")
        self.name = getattr(problem, "name", type(problem).__name__.lower())
        self.genome_bytes = int(np.prod(self.genome_shape)) * self.genome_dtype.itemsize

    def __getattr__(self, item: str) -> Any:
        # Anything not defined here (problem-specific helpers) comes from the wrapped problem.
        return getattr(self.inner, item)

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        genomes = np.asarray(self.inner.random(rng, n), dtype=self.genome_dtype)
        return genomes.reshape((n, *self.genome_shape))

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        fitness = np.asarray(self.inner.evaluate(genomes), dtype=np.float64).reshape(-1)
        if fitness.shape[0] != len(genomes):
            raise ValueError(
                f"{self.name}.evaluate returned {fitness.shape[0]} values for {len(genomes)} genomes"
            )
        return fitness

    def valid(self, genomes: np.ndarray) -> np.ndarray:
        genomes = np.asarray(genomes)
        if hasattr(self.inner, "valid"):
            return np.asarray(self.inner.valid(genomes), dtype=bool).reshape(len(genomes))
        if np.issubdtype(genomes.dtype, np.inexact):
            rows = genomes.reshape(len(genomes), int(np.prod(genomes.shape[1:])))
            return np.isfinite(rows).all(axis=1)
        return np.ones(len(genomes), dtype=bool)

    def mutate(self, genomes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if hasattr(self.inner, "mutate"):
            return np.asarray(self.inner.mutate(genomes, rng), dtype=self.genome_dtype)
        genomes = genomes.copy()
        flat = genomes.reshape(len(genomes), -1)
        rows, genes = mutation_sites(len(genomes), flat.shape[1], rng)
        if np.issubdtype(self.genome_dtype, np.floating):
            bounds = getattr(self.inner, "bounds", None)
            sigma = 0.1 if bounds is None else 0.1 * (float(bounds[1]) - float(bounds[0]))
            changed = flat[rows, genes] + rng.normal(0.0, sigma, rows.size)
            flat[rows, genes] = changed if bounds is None else np.clip(changed, bounds[0], bounds[1])
        else:
            fresh = self.random(rng, len(genomes)).reshape(len(genomes), -1)
            flat[rows, genes] = fresh[rows, genes]
        return genomes

    def crossover(
        self, parents_a: np.ndarray, parents_b: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        if hasattr(self.inner, "crossover"):
            return np.asarray(self.inner.crossover(parents_a, parents_b, rng), dtype=self.genome_dtype)
        return uniform_crossover(parents_a, parents_b, rng).astype(self.genome_dtype, copy=False)

    def improve(
        self, genomes: np.ndarray, fitness: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        if hasattr(self.inner, "improve"):
            improved, improved_fitness = self.inner.improve(genomes, fitness, rng)
            return (
                np.asarray(improved, dtype=self.genome_dtype),
                np.asarray(improved_fitness, dtype=np.float64),
            )
        return genomes, fitness

    def warm_up(self) -> None:
        if hasattr(self.inner, "warm_up"):
            self.inner.warm_up()

    def set_time_budget(self, seconds: float) -> None:
        if hasattr(self.inner, "set_time_budget"):
            self.inner.set_time_budget(float(seconds))

    @property
    def has_improve(self) -> bool:
        return hasattr(self.inner, "improve")

    @property
    def trajectory(self) -> bool:
        return self.has_improve and bool(getattr(self.inner, "trajectory", False))

    def shared_arrays(self) -> dict[str, np.ndarray]:
        if hasattr(self.inner, "shared_arrays"):
            return dict(self.inner.shared_arrays())
        return {}

    def describe(self, genome: np.ndarray) -> dict[str, Any]:
        if hasattr(self.inner, "describe"):
            return dict(self.inner.describe(genome))
        return {}

    def write(self, genome: np.ndarray, stem: Path) -> Path:
        """Write a solution next to `stem` (a path without suffix); return the file."""
        if hasattr(self.inner, "write"):
            return Path(self.inner.write(genome, Path(stem)))
        path = Path(stem).with_suffix(".npy")
        np.save(path, genome)
        return path


def complete(problem: Any) -> CompleteProblem:
    """Wrap `problem` so every optional part of the protocol exists."""
    if isinstance(problem, CompleteProblem):
        return problem
    return CompleteProblem(problem)


@dataclass(frozen=True)
class ProblemSpec:
    """A parsed problem spec: a registry name and keyword parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text or self.name


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_spec(text: str) -> ProblemSpec:
    """Parse `name`, `name:k=v,k=v`, `name:path[,k=v]` or a bare `path.ctt`.

    A first parameter without `=` is the `path` parameter. Raises ProblemSpecError.
    """
    text = text.strip()
    if not text:
        raise ProblemSpecError("empty problem spec")
    suffix_name = SUFFIX_PROBLEMS.get(Path(text.split(",")[0]).suffix.lower())
    if suffix_name and not text.startswith(suffix_name + ":"):
        name, rest = suffix_name, text
    else:
        name, _, rest = text.partition(":")
    name = name.strip()
    head = rest.partition(",")[0].strip()
    # module:Class or file.py:Class (the class comes first, case kept); a bare top-level
    # module is told from a registered problem's first parameter by the registry.
    if is_target(name) or (head.isidentifier() and name.lower() not in available_problems()):
        attribute, _, rest = rest.partition(",")
        if not attribute.strip().isidentifier():
            raise ProblemSpecError(f"problem spec {text!r}: give the class as {name}:Class")
        name = f"{name}:{attribute.strip()}"
    name = name if ":" in name else name.lower()  # registry names never hold a colon
    if not name:
        raise ProblemSpecError(f"problem spec {text!r} has no problem name")
    params: dict[str, Any] = {}
    if rest.strip():
        for position, part in enumerate(rest.split(",")):
            part = part.strip()
            if not part:
                raise ProblemSpecError(f"problem spec {text!r} has an empty parameter")
            key, has_eq, value = part.partition("=")
            if not has_eq:
                if position != 0:
                    raise ProblemSpecError(
                        f"problem spec {text!r}: parameter {part!r} is not of the form key=value"
                    )
                params["path"] = part
                continue
            key = key.strip()
            if not key.isidentifier():
                raise ProblemSpecError(f"problem spec {text!r}: bad parameter name {key!r}")
            if key in params:
                raise ProblemSpecError(f"problem spec {text!r}: parameter {key!r} given twice")
            params[key] = value.strip() if key == "path" else _parse_value(value.strip())
    return ProblemSpec(name=name, params=params, text=text)


def _plugin_targets() -> dict[str, Any]:
    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_problems() -> list[str]:
    """Names of the built-in problems and the installed plugins."""
    return sorted(set(BUILTIN_PROBLEMS) | set(_plugin_targets()))


def resolve_factory(name: str) -> Any:
    """The class or factory registered under `name` (built-in first, then plugins), or
    the one a `module:Class` / `file.py:Class` name points at."""
    if ":" in name:
        return load_target(name, ProblemSpecError)
    target = BUILTIN_PROBLEMS.get(name)
    if target is not None:
        module_name, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)
    plugin = _plugin_targets().get(name)
    if plugin is not None:
        return plugin.load()
    raise ProblemSpecError(
        f"unknown problem {name!r}; known problems: {', '.join(available_problems())}"
    )


def describe_problems() -> list[tuple[str, str]]:
    """(name, its parameters with defaults) for every built-in and installed problem."""
    described = []
    for name in available_problems():
        try:
            parameters = inspect.signature(resolve_factory(name)).parameters.values()
            shown = ",".join(p.name if p.default is p.empty else f"{p.name}={p.default}"
                             for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD)
        except Exception as error:  # a broken plugin is listed with why, not a traceback
            shown = f"(cannot load: {type(error).__name__}: {error})"
        described.append((name, shown))
    return described


def _check_params(factory: Any, name: str, params: Mapping[str, Any]) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        known = ", ".join(accepted) or "none"
        raise ProblemSpecError(
            f"problem {name!r} has no parameter {unknown[0]!r} (its parameters: {known})"
        )


def build_problem(spec: str | ProblemSpec | ProblemObject) -> CompleteProblem:
    """Build a problem from its spec (or a `ProblemObject` from the Python API); every
    optional part is filled with its default.

    Raises ProblemSpecError with one clear line for unknown names and bad parameters.
    """
    if isinstance(spec, ProblemObject):
        return _build_object(spec, {})
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    factory = resolve_factory(parsed.name)
    _check_params(factory, parsed.name, parsed.params)
    try:
        problem = factory(**parsed.params)
    except ProblemSpecError:
        raise
    except (TypeError, ValueError) as error:
        raise ProblemSpecError(f"problem {parsed.name!r}: {error}") from error
    return complete(problem)


def _build_object(source: ProblemObject, arrays: Mapping[str, np.ndarray]) -> CompleteProblem:
    if isinstance(source.target, type):
        _check_params(source.target, source.text(), source.params)
    try:
        return complete(source.build(arrays))
    except (TypeError, ValueError) as error:
        raise ProblemSpecError(f"problem {source.text()!r}: {error}") from error


def attach_problem(spec: str | ProblemSpec | ProblemObject,
                   arrays: Mapping[str, np.ndarray]) -> CompleteProblem:
    """Rebuild a problem in a worker, using `arrays` (shared-memory views) when it can.

    A problem class with a classmethod `attach(arrays, **params)` is rebuilt from the
    arrays alone; any other problem is built again from its spec.
    """
    if isinstance(spec, ProblemObject):
        return _build_object(spec, arrays)
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    factory = resolve_factory(parsed.name)
    if arrays and hasattr(factory, "attach"):
        return complete(factory.attach(arrays, **parsed.params))
    return build_problem(parsed)
