"""What `quality.py --compare` can show when islands are the best of independent runs.

Two islands that anneal independently and keep the better result are, to a first
approximation, the best of two runs of one process. This script draws such runs (any
continuous distribution gives the same answer: every comparison here depends only on
ranks) and prints, per number of seeds, the probability that the islands' median is at
or below one process's median on one instance, the probability per same-seed pair, and
the probability that a table of 14 instances (2 of them always tied: comp01, comp11)
counts at least `--target` wins.

Run: .venv/bin/python benchmarks/best_of_two.py [--seeds 1,3,5,7] [--islands 2] [--target 12]

Does not cover: the measured tables (benchmarks/quality.py, docs/timetabling.md).
"""

from __future__ import annotations

import argparse
from math import comb

import numpy as np

INSTANCES = 14
ALWAYS_TIED = 2


def win_probability(seeds: int, islands: int, draws: int, rng: np.random.Generator) -> float:
    """P(median over seeds of the best of `islands` runs <= median of single runs)."""
    single = rng.standard_normal((draws, seeds))
    best = rng.standard_normal((draws, seeds, islands)).min(axis=2)
    return float((np.median(best, axis=1) <= np.median(single, axis=1)).mean())


def table_probability(win: float, contested: int, needed: int) -> float:
    """P(at least `needed` wins of `contested` independent instances)."""
    return sum(comb(contested, k) * win**k * (1 - win) ** (contested - k)
               for k in range(max(needed, 0), contested + 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,3,5,7", help="comma list of seeds per instance")
    parser.add_argument("--islands", type=int, default=2)
    parser.add_argument("--target", type=int, default=12, help="wins of 14 the table must show")
    parser.add_argument("--draws", type=int, default=200_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    contested = INSTANCES - ALWAYS_TIED
    print(f"# best of {args.islands} independent runs against one run; "
          f"{args.draws} draws; {ALWAYS_TIED} of {INSTANCES} instances always tied")
    print(f"{'seeds':>5} {'per_pair':>8} {'per_instance':>12} {f'P(>={args.target}/14)':>11}")
    pair = win_probability(1, args.islands, args.draws, rng)
    for seeds in (int(part) for part in args.seeds.split(",") if part.strip()):
        win = win_probability(seeds, args.islands, args.draws, rng)
        table = table_probability(win, contested, args.target - ALWAYS_TIED)
        print(f"{seeds:>5} {pair:>8.3f} {win:>12.3f} {table:>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
