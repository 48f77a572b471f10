"""Built-in benchmark problems: continuous test functions and `heavy` (real memory).

The flagship timetable problem lives in `islands.timetable`; the protocol and the
registry that names all of them live in `islands.problem`.
"""
