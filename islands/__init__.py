"""The evolutionary side of `islands`: the Problem protocol, operators, the streaming
population, the Island (state + one-generation step) and its parameters (`params`),
the typed messages to and from the coordinator (`protocol`), topologies (`topology`),
the migrant codec (`migration`), channels (`channel`) and the island worker loop
(`worker`), plus the built-in problems (`islands.problems`, `islands.timetable`).

It imports `memory` (caches, shared arrays, release of freed memory) and never
`coordinator`.
"""

from islands.problem import Problem, ProblemSpecError, build_problem, complete, parse_spec

__all__ = ["Problem", "ProblemSpecError", "build_problem", "complete", "parse_spec"]
