"""Coordinator side of `islands` (filled in by the runtime issue)."""
