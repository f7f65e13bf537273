"""Current-limit figures: the split a limiter with a declared priority must deliver, and what
a three-phase capture shows it delivered. Pure functions, arrays in, numbers out.

Currents are in per unit of the rated current; Id is along the positive-sequence voltage,
Iq > 0 is reactive current injected to support the voltage (see bench.analysis.power).
Time zero is the start of the disturbance that drives the PCS into its limit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.analysis import band_oscillation_amplitude, clarke
from bench.ride_through import RideThroughSignals, first_time, mean_between

PRIORITIES = ("P", "Q", "mixed")


@dataclass(frozen=True)
class CurrentSplit:
    id_pu: float
    iq_pu: float

    @property
    def magnitude_pu(self) -> float:
        return math.hypot(self.id_pu, self.iq_pu)


def limited_current_split_pu(reference: CurrentSplit, i_limit_pu: float, priority: str) -> CurrentSplit:
    """The current a limiter with this priority delivers for a reference beyond its limit.

    P: active current kept (up to the limit), reactive current gets what is left.
    Q: reactive current kept (up to the limit), active current gets what is left.
    mixed: both scaled by the same factor, so the angle of the reference is kept.
    A reference within the limit comes back unchanged.
    """
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {PRIORITIES}, got {priority!r}")
    if i_limit_pu <= 0:
        raise ValueError("i_limit_pu must be positive")
    if reference.magnitude_pu <= i_limit_pu:
        return reference
    if priority == "mixed":
        scale = i_limit_pu / reference.magnitude_pu
        return CurrentSplit(reference.id_pu * scale, reference.iq_pu * scale)
    kept, other = (reference.id_pu, reference.iq_pu) if priority == "P" else (reference.iq_pu, reference.id_pu)
    kept = max(-i_limit_pu, min(kept, i_limit_pu))
    room = math.sqrt(max(i_limit_pu ** 2 - kept ** 2, 0.0))
    other = math.copysign(min(abs(other), room), other)
    return CurrentSplit(kept, other) if priority == "P" else CurrentSplit(other, kept)


def sag_current_reference_pu(pre_event: CurrentSplit, v_pu: float, k_factor: float) -> CurrentSplit:
    """What the PCS asks for during a sag before limiting: the pre-sag currents held, plus
    reactive current in proportion to the voltage depression (ΔIq = k·(1 − V))."""
    return CurrentSplit(pre_event.id_pu, pre_event.iq_pu + k_factor * max(0.0, 1.0 - v_pu))


def current_space_vector_pu(i_abc_a: np.ndarray, i_rated_a: float) -> np.ndarray:
    """Instantaneous current magnitude |i_αβ| in pu of the rated peak current.

    Constant for balanced sinusoidal currents, so anything that moves in it (a limiter
    entering and leaving saturation) shows without the one-cycle smoothing of phasors.
    """
    alpha, beta, _ = clarke(i_abc_a[0], i_abc_a[1], i_abc_a[2])
    return np.hypot(alpha, beta) / (math.sqrt(2.0) * i_rated_a)


@dataclass(frozen=True)
class LimitEpisode:
    pre_p_w: float
    pre_current: CurrentSplit      # before the event, mean over the pre-trigger record
    v_pu: float                    # positive-sequence PCC voltage, settled part of the event
    current: CurrentSplit          # Id, Iq over the settled part of the event
    i_settled_pu: float            # |I1| over the settled part
    peak_phase_a: float            # largest instantaneous phase current from the event on
    peak_phase: str
    time_to_limit_s: float | None  # |I1| first reaches the "limit reached" level
    limit_cycle_amplitude_pu: float  # in-band oscillation of |i_αβ| over the settled part
    p_recovery_s: float | None     # after the release, P back to the recovery fraction of pre_p_w


def limit_episode(sig: RideThroughSignals, t_s: np.ndarray, i_abc_a: np.ndarray, *,
                  phase_names: list[str], release_s: float, window_s: float, i_rated_a: float,
                  limit_reached_pu: float, band_hz: tuple[float, float],
                  recovery_fraction: float) -> LimitEpisode:
    """Figures of one drive into the current limit, from the event start (t = 0) to its release.

    sig: per-cycle signals of the capture; t_s, i_abc_a: the raw record (A, shape (3, n));
    window_s: one nominal cycle; the settled part is the second half of the event.
    """
    pre_start_s, pre_end_s = sig.t_s[0] + window_s, -window_s
    pre = CurrentSplit(mean_between(sig.t_s, sig.id_pu, pre_start_s, pre_end_s),
                       mean_between(sig.t_s, sig.iq_pu, pre_start_s, pre_end_s))
    pre_p_w = mean_between(sig.t_s, sig.p_w, pre_start_s, pre_end_s)
    settled_start_s, settled_end_s = release_s / 2.0, release_s - window_s / 2.0
    settled = CurrentSplit(mean_between(sig.t_s, sig.id_pu, settled_start_s, settled_end_s),
                           mean_between(sig.t_s, sig.iq_pu, settled_start_s, settled_end_s))
    after_start = t_s >= 0.0
    peaks = np.max(np.abs(i_abc_a[:, after_start]), axis=1)
    worst = int(np.argmax(peaks))
    settled_raw = (t_s >= settled_start_s) & (t_s <= settled_end_s)
    magnitude_pu = current_space_vector_pu(i_abc_a[:, settled_raw], i_rated_a)
    oscillation_pu = band_oscillation_amplitude(t_s[settled_raw], magnitude_pu, *band_hz)
    reached = first_time(sig.t_s, sig.i_pu >= limit_reached_pu, 0.0)
    back = None
    if pre_p_w > 0:
        back = first_time(sig.t_s, sig.p_w >= recovery_fraction * pre_p_w, release_s, hold_s=window_s)
    return LimitEpisode(
        pre_p_w=pre_p_w, pre_current=pre,
        v_pu=mean_between(sig.t_s, sig.v_pu, settled_start_s, settled_end_s),
        current=settled,
        i_settled_pu=mean_between(sig.t_s, sig.i_pu, settled_start_s, settled_end_s),
        peak_phase_a=float(peaks[worst]), peak_phase=phase_names[worst],
        time_to_limit_s=reached,
        limit_cycle_amplitude_pu=oscillation_pu,
        p_recovery_s=None if back is None else back - release_s,
    )
