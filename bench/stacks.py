"""Summarise py-spy collapsed stacks (`--format raw`): top functions by own and by total samples.

    python bench/stacks.py bench/out/capacity.stacks [--top 25] [--grep ocr_watch]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grep", default="", help="only count frames containing this text in the total list")
    args = parser.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(args.path, encoding="utf-8", errors="replace") as collapsed:
        lines = collapsed.read().splitlines()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            if args.grep in frame:
                total[frame] += n
    print(f"{samples} samples")
    print("-- own time --")
    for frame, n in own.most_common(args.top):
        print(f"{100 * n / samples:5.1f}%  {frame}")
    print("-- total time --")
    for frame, n in total.most_common(args.top):
        print(f"{100 * n / samples:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
