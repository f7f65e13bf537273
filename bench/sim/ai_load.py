"""AI-factory load profiles for the virtual bench's AI-load emulator.

A profile is a function of time since it was applied (``power_w(t_s)`` on a numpy array,
W drawn from the PCC bus, negative = regenerating). The plant samples it once per step
and the emulator follows it with its own first-order power response and current limit
(see ``kernel_emt.ai_load_current``).

Shapes follow what AI training campuses show (see ../shared/reference/criteria.md,
"Large computational loads"): synchronous training iterations with compute and
communication phases (periods 1-10 s), checkpoint dips, a power-cap ramp at job start and a
ramp-down at job end, step changes, oscillations anywhere in 0.1-20 Hz, and replay of a
measured profile from CSV.
"""

from __future__ import annotations

import csv
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

OSCILLATION_BAND_HZ = (0.1, 20.0)
TRAINING_PERIOD_RANGE_S = (1.0, 10.0)
CSV_MAX_GAP_S = 1.0


@dataclass
class AiLoadConfig:
    """The emulator hardware: a regenerative AC load on the PCC bus."""
    s_rated_va: float = 250e3
    i_max_a: float = 361.0            # 1.2 pu of 250 kVA at 480 V
    power_tau_s: float = 0.005        # first-order power response of its current loop
    voltage_filter_tau_s: float = 0.0025   # each of two stages of its fundamental estimate


class ProfileError(ValueError):
    """A profile that cannot be run: bad parameters or a bad CSV file."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ProfileError(message)


class AiLoadProfile(ABC):
    """Power drawn (W) as a function of time since the profile was applied."""

    @abstractmethod
    def power_w(self, t_s: np.ndarray) -> np.ndarray: ...


def _smooth_edge(x: np.ndarray, edge_s: float) -> np.ndarray:
    """0..1 ramp over edge_s starting at x = 0 (GPU clocks do not jump in zero time)."""
    if edge_s <= 0.0:
        return (x >= 0.0).astype(float)
    return np.clip(x / edge_s, 0.0, 1.0)


@dataclass
class ConstantLoad(AiLoadProfile):
    level_w: float

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        return np.full_like(t_s, self.level_w, dtype=float)


@dataclass
class StepChanges(AiLoadProfile):
    """Level initial_w, then powers_w[i] from times_s[i] on (each reached over edge_s)."""
    times_s: Sequence[float]
    powers_w: Sequence[float]
    initial_w: float = 0.0
    edge_s: float = 0.0

    def __post_init__(self) -> None:
        _check(len(self.times_s) == len(self.powers_w), "times_s and powers_w differ in length")
        _check(all(b > a for a, b in zip(self.times_s, self.times_s[1:])),
               "step times must increase")

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        p = np.full_like(t_s, self.initial_w, dtype=float)
        previous = self.initial_w
        for t_step, level in zip(self.times_s, self.powers_w):
            p += (level - previous) * _smooth_edge(t_s - t_step, self.edge_s)
            previous = level
        return p


@dataclass
class TrainingIterations(AiLoadProfile):
    """Synchronous training: every GPU computes (high power), then all communicate
    (low power), in lockstep, period_s apart. Levels are fractions of rating_w."""
    rating_w: float
    period_s: float = 2.0
    compute_fraction_of_period: float = 0.7
    high_fraction: float = 0.9
    swing_fraction: float = 0.4           # high - low, fraction of rating
    edge_s: float = 0.02

    def __post_init__(self) -> None:
        lo, hi = TRAINING_PERIOD_RANGE_S
        _check(lo <= self.period_s <= hi, f"training period {self.period_s} s not in {lo}..{hi} s")
        _check(0.0 < self.compute_fraction_of_period < 1.0, "compute fraction must be in (0, 1)")
        _check(0.0 <= self.swing_fraction <= self.high_fraction <= 1.5,
               "need 0 <= swing_fraction <= high_fraction <= 1.5")

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        phase_s = np.mod(t_s, self.period_s)
        t_compute = self.compute_fraction_of_period * self.period_s
        # rises at phase 0, falls at t_compute
        up = _smooth_edge(phase_s, self.edge_s) - _smooth_edge(phase_s - t_compute, self.edge_s)
        low = self.high_fraction - self.swing_fraction
        return self.rating_w * (low + self.swing_fraction * up)


@dataclass
class CheckpointDips(AiLoadProfile):
    """Another profile with periodic checkpoint dips: while the model state is written
    out, the GPUs idle and power falls to dip_level_w for dip_duration_s."""
    inner: AiLoadProfile
    interval_s: float
    dip_duration_s: float
    dip_level_w: float
    first_s: float | None = None
    edge_s: float = 0.05

    def __post_init__(self) -> None:
        _check(0.0 < self.dip_duration_s < self.interval_s,
               "checkpoint dip must be shorter than its interval")

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        first = self.interval_s if self.first_s is None else self.first_s
        since = t_s - first
        phase = np.mod(since, self.interval_s)
        in_dip = (_smooth_edge(phase, self.edge_s)
                  - _smooth_edge(phase - self.dip_duration_s, self.edge_s)) * (since >= 0.0)
        p = self.inner.power_w(t_s)
        return p + (self.dip_level_w - p) * in_dip


@dataclass
class JobEnvelope(AiLoadProfile):
    """Job start and end around another profile: idle until start_s, a power-cap ramp
    over cap_ramp_s (the scheduler lifts the cap gradually), then at end_s a ramp-down
    over end_ramp_s to idle (a 'power burner' keeps the fall bounded)."""
    inner: AiLoadProfile
    idle_w: float = 0.0
    start_s: float = 0.0
    cap_ramp_s: float = 10.0
    end_s: float | None = None
    end_ramp_s: float = 10.0

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        weight = _smooth_edge(t_s - self.start_s, self.cap_ramp_s)
        if self.end_s is not None:
            weight = weight * (1.0 - _smooth_edge(t_s - self.end_s, self.end_ramp_s))
        return self.idle_w + (self.inner.power_w(t_s) - self.idle_w) * weight


@dataclass
class Oscillation(AiLoadProfile):
    mean_w: float
    amplitude_w: float
    freq_hz: float

    def __post_init__(self) -> None:
        lo, hi = OSCILLATION_BAND_HZ
        _check(lo <= self.freq_hz <= hi, f"oscillation {self.freq_hz} Hz not in {lo}..{hi} Hz")

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        return self.mean_w + self.amplitude_w * np.sin(2.0 * math.pi * self.freq_hz * t_s)


@dataclass
class MeasuredProfile(AiLoadProfile):
    """Replay of a measured profile (linear between samples, last value held after)."""
    time_s: np.ndarray
    power_values_w: np.ndarray
    source: str = "<memory>"

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        return np.interp(t_s, self.time_s, self.power_values_w)

    @classmethod
    def from_csv(cls, path: str | Path, max_gap_s: float = CSV_MAX_GAP_S) -> "MeasuredProfile":
        """Columns time_s, power_w (an optional header line). Refuses non-numeric values,
        non-increasing time and gaps over max_gap_s, naming the file and line."""
        path = Path(path)
        times: list[float] = []
        powers: list[float] = []
        with path.open(newline="") as handle:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if line_no == 1 and not _is_number(row[0]):
                    continue                       # header
                _check(len(row) >= 2, f"{path}:{line_no}: expected 2 columns (time_s, power_w), "
                                      f"got {len(row)}")
                cells = [c.strip() for c in row[:2]]
                for name, cell in zip(("time_s", "power_w"), cells):
                    _check(_is_number(cell) and math.isfinite(float(cell)),
                           f"{path}:{line_no}: {name} {cell!r} is not a finite number")
                t, p = float(cells[0]), float(cells[1])
                if times:
                    _check(t > times[-1], f"{path}:{line_no}: time {t} s does not increase "
                                          f"(previous {times[-1]} s)")
                    _check(t - times[-1] <= max_gap_s,
                           f"{path}:{line_no}: gap of {t - times[-1]:g} s after {times[-1]} s "
                           f"exceeds {max_gap_s:g} s")
                times.append(t)
                powers.append(p)
        _check(len(times) >= 2, f"{path}: needs at least 2 samples, got {len(times)}")
        return cls(np.asarray(times) - times[0], np.asarray(powers), str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------- JSON specs
_SIMPLE_KINDS: dict[str, type] = {"constant": ConstantLoad, "steps": StepChanges,
                                  "training": TrainingIterations, "oscillation": Oscillation}


def profile_from_spec(spec: dict) -> AiLoadProfile:
    """A profile from a JSON-able dict (the control endpoint's "ai_load" op), e.g.
    {"kind": "training", "rating_w": 2e5, "period_s": 2}, {"kind": "csv", "path": "p.csv"},
    {"kind": "checkpoints", "inner": {...}, "interval_s": 60, ...},
    {"kind": "job", "inner": {...}, "cap_ramp_s": 10, ...}."""
    _check(isinstance(spec, dict) and "kind" in spec, f"profile spec needs a 'kind': {spec!r}")
    kind = spec["kind"]
    args = {key: value for key, value in spec.items() if key != "kind"}
    try:
        if kind in _SIMPLE_KINDS:
            return _SIMPLE_KINDS[kind](**args)
        if kind == "csv":
            return MeasuredProfile.from_csv(args["path"])
        if kind in ("checkpoints", "job"):
            args["inner"] = profile_from_spec(args["inner"])
            return (CheckpointDips if kind == "checkpoints" else JobEnvelope)(**args)
    except TypeError as error:         # unknown or missing parameter names
        raise ProfileError(f"profile {kind!r}: {error}") from None
    except KeyError as error:
        raise ProfileError(f"profile {kind!r}: missing {error}") from None
    known = sorted([*_SIMPLE_KINDS, "csv", "checkpoints", "job"])
    raise ProfileError(f"unknown profile kind {kind!r} (known: {', '.join(known)})")
