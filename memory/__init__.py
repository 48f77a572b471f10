"""Memory side of `islands` (filled in by the memory issue)."""
