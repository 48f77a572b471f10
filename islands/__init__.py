"""The evolutionary side of `islands`: the Problem protocol, operators, the streaming
population, the Island (state + one-generation step) and its parameters (`params`),
the typed messages to and from the coordinator (`protocol`), topologies (`topology`),
the migrant codec (`migration`), channels (`channel`) and the island worker loop
(`worker`), plus the built-in problems (`islands.problems`, `islands.timetable`).

It imports `memory` (caches, shared arrays, release of freed memory) and never
`coordinator`, with one deliberate exception kept to this file: the user's entry point
`islands.run(problem, **options)` (and `Result`, `Progress`, `RunFailed`) is looked up
lazily in `coordinator.api` on first use, so `import islands` in an island process never
loads the coordinator.
"""

from islands.problem import Problem, ProblemSpecError, build_problem, complete, parse_spec

API_NAMES = ("run", "Result", "Progress", "RunFailed")


def __getattr__(name: str) -> object:
    if name in API_NAMES:
        import importlib

        return getattr(importlib.import_module("coordinator.api"), name)
    raise AttributeError(f"module 'islands' has no attribute {name!r}")


__all__ = ["Problem", "ProblemSpecError", "build_problem", "complete", "parse_spec",
           *API_NAMES]
