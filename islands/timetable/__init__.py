"""University course timetabling, ITC-2007 track 3 (curriculum-based, CB-CTT).

Covers: the instance data (`model`), reading and writing instances (`instance`) and
solutions (`solution`), the exact competition cost (`validate`), the `timetable` problem
for the island search (`problem`, tuned by `settings`, with its compiled kernels in
`kernels`), synthetic terms (`generator`) and the `validate` / `generate` subcommands
(`cli`).

Does not cover: the evolution itself (`islands.population`, `islands.island`), processes
and memory (`coordinator`, `memory`). See docs/timetabling.md.
"""
