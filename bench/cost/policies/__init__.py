"""The policies the benchmark compares; each turns one job on one world into an ``Outcome``."""

from __future__ import annotations

from typing import Protocol

from bench.cost.model import Job, Outcome
from bench.cost.world import World


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, world: World, job: Job) -> Outcome: ...

    def describe(self) -> str:
        """What the policy is, in a sentence, for the results file."""
        ...
