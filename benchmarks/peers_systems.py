"""Helpers of benchmarks/peers.py: the four systems, how one run of each is launched and measured.

Covers: the command line of each system (`islands run ...`; the peers through
`benchmarks/peers.py --runner SYSTEM ...`), the peers' runners themselves (pygmo
`archipelago` of `mp_island`s with a Python problem, pygmo `thread_island`s with pygmo's
compiled Rastrigin, DEAP islands over a `multiprocessing.Pool` with `tools.migRing`), the
one-line check for a missing peer, `launch` (one run in its own session, bounded by a
timeout, with an optional fault fired part-way through, its tree's peak PSS read in full
every 0.1 s by `benchmarks.fault_tools.TreePss`), and `verdict` (finished / crashed /
hung).

Every peer evaluates the very same Python function as islands: the islands problem built
from the same spec, its `evaluate` called on a one-row batch per individual (pygmo's `sga`
and DEAP's `eaSimple` evaluate one individual at a time; islands evaluates whole batches).

Does not cover: the tables and RESULTS.md (benchmarks/peers.py), the fault set-ups and the
memory limit (benchmarks/peers_faults.py).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.fault_tools import TreePss
from islands.problem import build_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
PEERS_SCRIPT = REPO_ROOT / "benchmarks" / "peers.py"
SYSTEMS = ("islands", "pygmo-mp", "pygmo-thread", "deap")
NEEDS = {"pygmo-mp": "pygmo", "pygmo-thread": "pygmo", "deap": "deap"}
INSTALL_HINT = "pip install -e '.[bench]'"


@dataclass
class Config:
    """One run: problem spec, workers (islands / pool processes / threads), population each."""

    spec: str
    workers: int
    population: int
    seconds: float
    seed: int = 0
    migrate_every: int = 10  # generations between migrations, every system
    migrants: int = 2
    extra: tuple[str, ...] = ()  # more `islands run` flags (islands only)

    def runner_args(self) -> list[str]:
        return ["--spec", self.spec, "--workers", str(self.workers), "--population",
                str(self.population), "--seconds", f"{self.seconds:g}", "--seed", str(self.seed),
                "--migrate-every", str(self.migrate_every), "--migrants", str(self.migrants)]


def missing_peer(system: str) -> str | None:
    """One line naming the extra to install when `system`'s package cannot be imported."""
    module = NEEDS.get(system)
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError as error:
        return (f"{system}: skipped, {module} cannot be imported ({error}); "
                f"install the bench extra: {INSTALL_HINT}")
    return None


def command(system: str, config: Config, out_dir: Path) -> list[str]:
    if system == "islands":
        return [sys.executable, "-m", "coordinator", "run", config.spec, "--islands",
                str(config.workers), "--population", str(config.population), "--time-limit",
                f"{config.seconds:g}", "--seed", str(config.seed), "--migration-interval",
                str(config.migrate_every), "--migrants", str(config.migrants), "--json",
                "--quiet", "--no-history", "--out", str(out_dir / "run"), *config.extra]
    return [sys.executable, str(PEERS_SCRIPT), "--runner", system, *config.runner_args()]


def parse_result(system: str, stdout: str) -> dict[str, float | None] | None:
    """evaluations, elapsed (the system's own clock) and best from a run's stdout (its last
    JSON line: islands' --json summary, the runners' one line); None when there is none."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if system == "islands":
            data = {"evaluations": data.get("evaluations"), "elapsed": data.get("elapsed_s"),
                    "best": data.get("best_fitness")}
        if data.get("evaluations") is None or data.get("elapsed") is None:
            return None
        # best is None when a run ended before its first generation was evaluated.
        return {key: None if data.get(key) is None else float(data[key])
                for key in ("evaluations", "elapsed", "best")}
    return None


@dataclass
class Outcome:
    argv: list[str]
    returncode: int | None = None
    wall: float = 0.0
    timed_out: bool = False
    peak_pss: int = 0
    stdout: str = ""
    stderr: str = ""
    result: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)


def launch(argv: list[str], timeout: float, *, preexec: Callable[[], None] | None = None,
           fault_at: float | None = None, fault: Callable[[TreePss], str] | None = None,
           env: dict[str, str] | None = None) -> Outcome:
    """Run `argv` in its own session; SIGKILL the whole session past `timeout` seconds.

    `fault(sampler)` is called once, `fault_at` seconds after the start; what it returns is
    kept in `notes`. After the exit, anything left in the session (orphaned workers) is killed.
    """
    outcome = Outcome(argv)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   cwd=REPO_ROOT, env=env, start_new_session=True,
                                   preexec_fn=preexec)
        sampler = TreePss(process.pid, interval=0.1)
        while process.poll() is None:
            now = time.monotonic() - started
            if now > timeout:
                outcome.timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            if fault is not None and fault_at is not None and now >= fault_at:
                outcome.notes.append(fault(sampler))
                fault = None
            time.sleep(0.02)
        outcome.wall = time.monotonic() - started
        outcome.peak_pss = sampler.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # orphans of a crashed run
        outcome.returncode = process.returncode
        out.seek(0)
        err.seek(0)
        outcome.stdout, outcome.stderr = out.read(), err.read()
    return outcome


def verdict(outcome: Outcome) -> str:
    """finished / refused / crashed (exit N or signal) / hung, for the fault table."""
    if outcome.timed_out:
        return "hung"
    code = outcome.returncode
    if code is not None and code < 0:
        return f"crashed (signal {signal.Signals(-code).name})"
    if outcome.result is not None:
        return "finished" if code == 0 else f"finished (exit {code})"
    last = (outcome.stderr.strip().splitlines() or [""])[-1]
    if code == 2 and "error:" in last and "Traceback" not in outcome.stderr:
        return "refused (exit 2, a one-line error, no result)"  # islands' user-error exit
    return f"crashed (exit {code}, no result)"


def kill_busiest_descendant(sampler: TreePss) -> str:
    """SIGKILL the descendant that has used the most CPU (a worker, not a helper process)."""
    try:
        children = sampler.root.children(recursive=True)
    except psutil.Error:
        return "no process tree left"
    busiest, most = None, -1.0
    for child in children:
        with contextlib.suppress(psutil.Error):
            used = sum(child.cpu_times()[:2])
            if used > most:
                busiest, most = child, used
    if busiest is None:
        return "n/a: no child process (one process: killing it ends the run)"
    with contextlib.suppress(psutil.Error):
        busiest.send_signal(signal.SIGKILL)
    return f"killed pid {busiest.pid} of {len(children)} children"


# -- the peers' runners (run as `python benchmarks/peers.py --runner SYSTEM ...`) ---------
_PROBLEM: dict[str, Any] = {}


def _problem(spec: str) -> Any:
    if spec not in _PROBLEM:
        _PROBLEM[spec] = build_problem(spec).inner
    return _PROBLEM[spec]


def _bounds(spec: str) -> tuple[float, float, int]:
    problem = _problem(spec)
    low, high = problem.bounds
    return float(low), float(high), int(np.prod(problem.genome_shape))


class SpecUDP:
    """A pygmo user-defined problem: the islands problem `spec`, one individual per call."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def fitness(self, x: np.ndarray) -> list[float]:
        return [float(_problem(self.spec).evaluate(np.asarray(x, dtype=np.float64)[None, :])[0])]

    def get_bounds(self) -> tuple[list[float], list[float]]:
        low, high, dim = _bounds(self.spec)
        return [low] * dim, [high] * dim

    def get_name(self) -> str:
        return self.spec


def run_pygmo(config: Config, threads: bool) -> dict[str, float]:
    import pygmo as pg

    low, high, dim = _bounds(config.spec)
    started = time.monotonic()
    if threads:
        if _problem(config.spec).name != "rastrigin":
            raise SystemExit("pygmo-thread runs pygmo's compiled Rastrigin only")
        problem, island = pg.problem(pg.rastrigin(dim)), pg.thread_island()
    else:
        pg.mp_island.init_pool(config.workers)
        problem, island = pg.problem(SpecUDP(config.spec)), pg.mp_island()
    # One evolve() = `migrate_every` generations on every island, then ring migration.
    algorithm = pg.algorithm(pg.sga(
        gen=config.migrate_every, cr=0.9, m=1.0 / dim, param_m=0.1, param_s=2,
        crossover="binomial", mutation="gaussian", selection="tournament", seed=config.seed))
    archipelago = pg.archipelago(t=pg.topology(pg.ring()))
    for index in range(config.workers):
        archipelago.push_back(
            udi=island, algo=algorithm, prob=problem, size=config.population,
            seed=config.seed * 1000 + index,
            s_pol=pg.s_policy(pg.select_best(rate=config.migrants)),
            r_pol=pg.r_policy(pg.fair_replace(rate=config.migrants)))
    while time.monotonic() - started < config.seconds:
        archipelago.evolve()
        archipelago.wait_check()
    elapsed = time.monotonic() - started
    populations = [archipelago[i].get_population() for i in range(len(archipelago))]
    if not threads:
        pg.mp_island.shutdown_pool()
    return {"evaluations": sum(p.problem.get_fevals() for p in populations), "elapsed": elapsed,
            "best": min(float(p.champion_f[0]) for p in populations)}


_DEAP: dict[str, Any] = {}


def _deap_evaluate(individual: list[float]) -> tuple[float]:
    genome = np.asarray(individual, dtype=np.float64)[None, :]
    return (float(_problem(_DEAP["spec"]).evaluate(genome)[0]),)


def _deap_mutate(individual: list[float], sigma: float, indpb: float, low: float,
                 high: float) -> tuple[list[float]]:
    from deap import tools

    tools.mutGaussian(individual, 0.0, sigma, indpb)
    individual[:] = np.clip(individual, low, high).tolist()
    return (individual,)


def _deap_island_step(task: tuple[list[Any], int, int]) -> tuple[list[Any], int]:
    """`ngen` generations of eaSimple on one island, in a pool worker."""
    from deap import algorithms

    population, ngen, seed = task
    random.seed(seed)
    population, log = algorithms.eaSimple(population, _DEAP["toolbox"], cxpb=0.9, mutpb=1.0,
                                          ngen=ngen, verbose=False)
    return population, int(sum(log.select("nevals")))


def run_deap(config: Config) -> dict[str, float]:
    import multiprocessing

    from deap import base, creator, tools

    low, high, dim = _bounds(config.spec)
    random.seed(config.seed)
    creator.create("FitnessMin", base.Fitness, weights=(-1.0,))
    creator.create("Individual", list, fitness=creator.FitnessMin)
    toolbox = base.Toolbox()
    toolbox.register("attr", random.uniform, low, high)
    toolbox.register("individual", tools.initRepeat, creator.Individual, toolbox.attr, n=dim)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("evaluate", _deap_evaluate)
    toolbox.register("mate", tools.cxUniform, indpb=0.5)
    toolbox.register("mutate", _deap_mutate, sigma=0.1 * (high - low), indpb=1.0 / dim,
                     low=low, high=high)
    toolbox.register("select", tools.selTournament, tournsize=2)
    _DEAP.update(spec=config.spec, toolbox=toolbox)
    started = time.monotonic()
    # Forked after the set-up, so the workers hold the toolbox and creator's classes.
    pool = multiprocessing.get_context("fork").Pool(config.workers)
    islands = [toolbox.population(n=config.population) for _ in range(config.workers)]
    evaluations, step = 0, 0
    while time.monotonic() - started < config.seconds:
        tasks = [(pop, config.migrate_every, config.seed * 1_000_003 + step * 101 + index)
                 for index, pop in enumerate(islands)]
        results = pool.map(_deap_island_step, tasks)
        islands = [pop for pop, _ in results]
        evaluations += sum(count for _, count in results)
        tools.migRing(islands, config.migrants, tools.selBest)
        step += 1
    elapsed = time.monotonic() - started
    pool.terminate()
    best = min(ind.fitness.values[0] for pop in islands for ind in pop if ind.fitness.valid)
    return {"evaluations": evaluations, "elapsed": elapsed, "best": float(best)}


def run_runner(system: str, config: Config) -> dict[str, float]:
    if system in ("pygmo-mp", "pygmo-thread"):
        return run_pygmo(config, threads=system == "pygmo-thread")
    if system == "deap":
        return run_deap(config)
    raise SystemExit(f"unknown runner {system!r}")
