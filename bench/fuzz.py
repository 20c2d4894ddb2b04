"""The long fuzz campaign: N hostile inputs through the frontend and the LLB loader, counted by outcome.

    .venv/bin/python bench/fuzz.py [-n 100000] [--seed 1] [--show 5]

Inputs are drawn like the hypothesis suite's (tests/fuzz/mutate.py): grammar-shaped Dockerfiles,
mutated conformance Dockerfiles, raw bytes, and generated or mutated LLB definitions, one seeded
random.Random each, so any input can be replayed from its number. Prints counts by outcome
(clean error / converted / uncaught / over 1 s) and the first uncaught or slow inputs. Figures only.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fuzz.harness import Kind, run_definition, run_frontend, seed_dockerfiles  # noqa: E402 (after the path set-up above)
from tests.fuzz.mutate import generate_definition, generate_dockerfile, mutate_bytes  # noqa: E402


def draw(number: int, seed: int, seeds: list[bytes]) -> tuple[str, bytes]:
    rnd = random.Random(seed * 1_000_003 + number)
    pick = rnd.random()
    if pick < 0.35:
        return "dockerfile-mutated", mutate_bytes(rnd.choice(seeds), rnd, seeds)
    if pick < 0.7:
        return "dockerfile-generated", generate_dockerfile(rnd)
    if pick < 0.8:
        return "dockerfile-bytes", bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 400)))
    return "definition", generate_definition(rnd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=5, help="uncaught/slow inputs to print")
    parser.add_argument("--progress", type=int, default=10_000, help="print a line every N inputs")
    args = parser.parse_args()
    seeds = seed_dockerfiles() or [b"FROM scratch\n"]
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    shown = 0
    slowest = 0.0
    start = time.monotonic()
    for number in range(args.n):
        kind, data = draw(number, args.seed, seeds)
        outcome = run_definition(data) if kind == "definition" else run_frontend(data)
        counts[outcome.kind.value] += 1
        kinds[kind] += 1
        slowest = max(slowest, outcome.seconds)
        if outcome.slow:
            counts["over 1 s"] += 1
        if (outcome.kind == Kind.uncaught or outcome.slow) and shown < args.show:
            shown += 1
            print(f"input {number} ({kind}, {outcome.seconds:.2f} s): {data[:160]!r}\n  {outcome.detail}", flush=True)
        if args.progress and (number + 1) % args.progress == 0:
            print(f"... {number + 1} inputs, {dict(counts)}", flush=True)
    elapsed = time.monotonic() - start
    print(f"\n{args.n} inputs in {elapsed:.0f} s (seed {args.seed}; {dict(kinds)}); slowest {slowest:.3f} s")
    for label in (Kind.clean.value, Kind.converted.value, Kind.uncaught.value, "over 1 s"):
        print(f"  {label:12} {counts[label]}")
    return 1 if counts[Kind.uncaught.value] or counts["over 1 s"] else 0


if __name__ == "__main__":
    sys.exit(main())
