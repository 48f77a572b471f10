"""The evolutionary side of `islands`: the Problem protocol, operators, the streaming
population, the Island (state + one-generation step), migration and the island worker
loop, plus the built-in problems (`islands.problems`, `islands.timetable`).

It imports `memory` (caches, shared arrays, the ledger) and never `coordinator`.
"""

from islands.problem import Problem, ProblemSpecError, build_problem, complete, parse_spec

__all__ = ["Problem", "ProblemSpecError", "build_problem", "complete", "parse_spec"]
