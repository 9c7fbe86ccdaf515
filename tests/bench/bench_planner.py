"""Print how long the storage planner takes for 10, 100 and 1,000 disks (a figure, not a test).

Run from the repository root: ``python tests/bench/bench_planner.py`` (or ``make bench``).
"""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage  # noqa: E402

GiB = 1024 ** 3
TB = 1000 ** 4
SIZES = [TB, 2 * TB, 4 * TB, 8 * TB, 16 * TB]


def machine(disk_count):
    """A mixed machine: a quarter SSDs, the rest HDDs, in five size families with a little jitter."""
    disks = []
    for index in range(disk_count):
        size = SIZES[index % len(SIZES)]
        disks.append(
            {
                "name": "sd%05d" % index,
                "type": "disk",
                "size": size + (index % 7) * size // 1000,
                "rotational": index % 4 != 0,
                "removable": False,
                "read_only": False,
                "transport": "sas",
                "boot_medium": False,
                "in_use": index % 10 == 0,
                "in_use_reasons": ["partition table (gpt)"] if index % 10 == 0 else [],
            }
        )
    return disks


def best_time(disks, repeats):
    best = float("inf")
    for _repeat in range(repeats):
        started = time.perf_counter()
        plan_storage(disks, 64 * GiB)
        best = min(best, time.perf_counter() - started)
    return best


def main():
    print("storage planner, best of several runs (plan, summary and NixOS fragment included)")
    for disk_count, repeats in ((10, 50), (100, 20), (1000, 5)):
        seconds = best_time(machine(disk_count), repeats)
        print("  %5d disks: %8.2f ms" % (disk_count, seconds * 1000))


if __name__ == "__main__":
    main()
