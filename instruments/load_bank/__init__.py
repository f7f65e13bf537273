"""Role: a passive RLC load bank on the bench's AC bus, switched in steps by contactors.

A bank draws constant-impedance loads: resistive kW, inductive and capacitive kvar, each
branch a set of steps (contactors) rated at the bank's rated voltage. A request is quantised
to the combination of the bank's steps nearest to it; what is actually switched in is
returned, so a plan records the step it really made. Step sizes come from the bench file
(the bank's nameplate), in the order of the contactor bits of the bank's register.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

BRANCHES = ("resistive", "inductive", "capacitive")
#: bench-file option listing each branch's steps (W or var at the rated voltage)
STEP_OPTIONS = {"resistive": "resistive_steps_w", "inductive": "inductive_steps_var",
                "capacitive": "capacitive_steps_var"}
MAX_STEPS_PER_BRANCH = 16     # one 16-bit contactor register per branch


@dataclass(frozen=True)
class BankSetting:
    """Contactors of each branch (bit i = step i) and what they draw at the rated voltage."""

    resistive_mask: int
    inductive_mask: int
    capacitive_mask: int
    p_w: float
    q_inductive_var: float
    q_capacitive_var: float

    @property
    def all_off(self) -> bool:
        return not (self.resistive_mask or self.inductive_mask or self.capacitive_mask)


@dataclass(frozen=True)
class LoadBankReading:
    """What the bank's own meter reports, and the contactors it reports closed."""

    setting: BankSetting
    v_ln_rms_v: tuple[float, float, float]
    i_rms_a: tuple[float, float, float]
    p_w: float
    q_var: float                  # net reactive power drawn (inductive > 0)
    freq_hz: float
    alarms: tuple[str, ...]


def step_sum(mask: int, steps: Sequence[float]) -> float:
    return float(sum(size for i, size in enumerate(steps) if mask >> i & 1))


@lru_cache(maxsize=16)
def _combinations(steps: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(steps)
    masks = np.arange(1 << n, dtype=np.int64)
    bits = (masks[:, None] >> np.arange(n)) & 1
    return masks, bits @ np.asarray(steps, dtype=float), bits.sum(axis=1)


def nearest_combination(target: float, steps: Sequence[float]) -> tuple[int, float]:
    """(contactor mask, drawn) of the subset of ``steps`` whose sum is nearest ``target``;
    on a tie the smaller load, then the fewer contactors. Any set of step sizes works (a
    binary-weighted bank reaches every multiple of its smallest step)."""
    if not steps:
        return 0, 0.0
    masks, sums, counts = _combinations(tuple(float(s) for s in steps))
    order = np.lexsort((counts, sums, np.round(np.abs(sums - target), 6)))
    best = int(order[0])
    return int(masks[best]), float(sums[best])


__all__ = ["BRANCHES", "BankSetting", "LoadBankReading", "MAX_STEPS_PER_BRANCH", "STEP_OPTIONS",
           "nearest_combination", "step_sum"]
