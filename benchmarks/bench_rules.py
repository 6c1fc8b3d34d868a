"""Time per weight update of every pcbp rule, side by side; writes a CSV and prints ratios to BP.

    .venv/bin/python benchmarks/bench_rules.py            # the full grid (several minutes)
    .venv/bin/python benchmarks/bench_rules.py --quick    # a small grid (seconds)

Ratios are medians of interleaved repetitions in one process (see pcbp.benchmark): compare them,
not the milliseconds, across machines. This is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pcbp.benchmark import Setting, benchmark, machine, write_csv

HERE = Path(__file__).resolve().parent


def grid(quick: bool, device: str = "cpu", activation: str = "tanh") -> list[Setting]:
    """Depth scaling at width 256, batch 64; plus widths and batch sizes at depth 3."""
    if quick:
        return [Setting(depth=d, width=64, batch=32, device=device, activation=activation) for d in (2, 4, 8)]
    depths = [Setting(depth=d, device=device, activation=activation) for d in (2, 4, 8, 16, 32)]
    shapes = [Setting(depth=3, width=w, batch=b, device=device, activation=activation)
              for w in (128, 512) for b in (16, 64, 256)]
    return depths + shapes


def too_slow(setting: Setting, rule: str) -> bool:
    """IL with T = 100 on the deepest nets costs minutes and tells nothing new."""
    return rule.startswith("IL") and setting.depth > 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small grid, for a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per rule (default 20; 5 quick)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--activation", default="tanh", help="tanh (default), relu, ...")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "rules.csv")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 20)
    rows = benchmark(grid(args.quick, args.device, args.activation), repeats=repeats, skip=too_slow)
    print(f"written {write_csv(rows, args.out)}")
    print("; ".join(f"{k}: {v}" for k, v in machine().items()))
    print(f"device: {args.device}; activation: {args.activation}")
    print(f"{'depth':>5} {'width':>5} {'batch':>5}  {'rule':<20} {'median ms':>9}  {'x BP':>6}")
    for r in rows:
        print(f"{r['depth']:>5} {r['width']:>5} {r['batch']:>5}  {r['rule']:<20} "
              f"{1e3 * r['median_s']:9.2f}  {r['ratio_to_bp']:6.2f}")


if __name__ == "__main__":
    main()
