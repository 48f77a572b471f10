"""The coordinator side of `islands`: the parent process of a run.

Covers: run configuration (`coordinator.config`), auto-configuration from the memory
budget and cores (`coordinator.autoconfig`), the pressure policy
(`coordinator.policy`), island processes on this machine (`coordinator.local`), the
run loop (`coordinator.run`) and the command line (`coordinator.cli`, console script
`islands`, also `python -m coordinator`).

Does not cover: evolution and the island worker loop (`islands`), measuring memory,
the ledger and shared arrays (`memory`). Imports point `coordinator -> islands ->
memory`, never back.
"""
