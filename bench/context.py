"""What every scenario is given: how hard to try, where to work, how to say what it does."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BenchContext:
    # quick: a smoke run (make bench-quick, and developing a scenario): fewer repeats and
    # smaller loads, numbers not worth quoting.
    quick: bool
    workdir: Path  # scratch space on the same disk as /var/lib would be, removed afterwards

    def repeats(self, full: int, quick: int = 2) -> int:
        return quick if self.quick else full

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def say(self, text: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
