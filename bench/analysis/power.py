"""Three-phase active and reactive power, and active/reactive current in per unit.

Sign convention (the plant and the PCS telemetry use it too, when currents are measured out of the
PCS, as in the ``pcs_i*_a`` ring signals):

* P > 0: active power flows in the reference direction of the currents. For PCS output
  currents, that means the PCS exports.
* Q > 0: reactive power flows in the same direction. Q > 0 means the PCS injects
  reactive power, which is capacitive and raises the voltage. In that current reference,
  this is a current that **lags** the voltage: S = V * conj(I), as a synchronous
  generator that is over-excited.
* Iq follows the sign of Q: Iq > 0 means reactive current is injected to support the voltage.

Instantaneous q uses the line-voltage form, which is equivalent to the Clarke form:
q = (v_bc*i_a + v_ca*i_b + v_ab*i_c) / sqrt(3) = 3/2 * (v_beta*i_alpha - v_alpha*i_beta).
It is insensitive to zero sequence. Under unbalance, its mean is Q+ - Q-
(positive-sequence minus negative-sequence reactive power). That is why the per-cycle Q
comes from phasors instead (see :func:`per_cycle_power`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .cycles import _window_geometry, _window_integrals

__all__ = [
    "InstantaneousPower",
    "PerCyclePower",
    "ActiveReactiveCurrent",
    "instantaneous_power",
    "per_cycle_power",
    "phasor_power",
    "active_reactive_current_pu",
]


class InstantaneousPower(NamedTuple):
    p_w: NDArray[np.float64]
    q_var: NDArray[np.float64]


@dataclass(frozen=True)
class PerCyclePower:
    """P and Q averaged over windows of whole nominal cycles; ``t_s`` = window centres."""

    t_s: NDArray[np.float64]
    p_w: NDArray[np.float64]
    q_var: NDArray[np.float64]


class ActiveReactiveCurrent(NamedTuple):
    id_pu: NDArray[np.float64]  # along the positive-sequence voltage
    iq_pu: NDArray[np.float64]  # > 0: reactive current injected (current lags V, Q > 0)


_INV_SQRT3 = 1.0 / np.sqrt(3.0)


def instantaneous_power(
    va_v: ArrayLike,
    vb_v: ArrayLike,
    vc_v: ArrayLike,
    ia_a: ArrayLike,
    ib_a: ArrayLike,
    ic_a: ArrayLike,
) -> InstantaneousPower:
    """Instantaneous three-phase p = sum(v*i) and q from line-to-neutral voltages and phase currents."""
    va, vb, vc, ia, ib, ic = (np.asarray(s, dtype=np.float64) for s in (va_v, vb_v, vc_v, ia_a, ib_a, ic_a))
    p_w = va * ia + vb * ib + vc * ic
    q_var = ((vb - vc) * ia + (vc - va) * ib + (va - vb) * ic) * _INV_SQRT3
    return InstantaneousPower(p_w=p_w, q_var=q_var)


def per_cycle_power(
    va_v: ArrayLike,
    vb_v: ArrayLike,
    vc_v: ArrayLike,
    ia_a: ArrayLike,
    ib_a: ArrayLike,
    ic_a: ArrayLike,
    sample_rate_hz: float,
    f_nominal_hz: float,
    *,
    window_cycles: float = 1.0,
    step_fraction: float = 1.0,
    t0_s: float = 0.0,
) -> PerCyclePower:
    """Active and reactive power per window of whole nominal cycles.

    ``p_w`` is the mean of the instantaneous p: the true active power, harmonics
    included, and free of the 2f ripple that unbalance causes. ``q_var`` is the
    fundamental reactive power summed over the phases, sum(Im(V_k * conj(I_k))) from
    per-cycle phasors, which is what a power analyzer reports per phase. The window
    mean of the alpha-beta q is not used here: it counts negative-sequence reactive
    power with the opposite sign, so it misreads Q under unbalance.
    """
    va, vb, vc, ia, ib, ic = (np.ascontiguousarray(s, dtype=np.float64) for s in (va_v, vb_v, vc_v, ia_a, ib_a, ic_a))
    p_w = va * ia + vb * ib + vc * ic
    starts, length = _window_geometry(p_w.size, sample_rate_hz, f_nominal_hz, window_cycles, step_fraction)
    mean_p_w = _window_integrals([p_w], starts, length)[0] / length
    omega = 2.0 * np.pi * f_nominal_hz / sample_rate_hz
    # Window integrals are proportional to the RMS phasors (same factor sqrt(2)/length for all).
    ph = _window_integrals([va, vb, vc, ia, ib, ic], starts, length, omega_rad_per_sample=omega)
    ph *= np.sqrt(2.0) / length
    q_var = np.imag(ph[0] * np.conj(ph[3]) + ph[1] * np.conj(ph[4]) + ph[2] * np.conj(ph[5]))
    t_s = t0_s + (starts + 0.5 * length) / sample_rate_hz
    return PerCyclePower(t_s=t_s, p_w=mean_p_w, q_var=q_var)


def phasor_power(
    va: ArrayLike, vb: ArrayLike, vc: ArrayLike, ia: ArrayLike, ib: ArrayLike, ic: ArrayLike
) -> InstantaneousPower:
    """Three-phase P and Q from RMS phasors: S = sum(V * conj(I))."""
    s = sum(
        np.asarray(v, dtype=np.complex128) * np.conj(np.asarray(i, dtype=np.complex128))
        for v, i in ((va, ia), (vb, ib), (vc, ic))
    )
    return InstantaneousPower(p_w=np.real(s), q_var=np.imag(s))


def active_reactive_current_pu(
    v_positive: ArrayLike,
    i_positive: ArrayLike,
    i_base_a: float,
) -> ActiveReactiveCurrent:
    """Active and reactive parts of the positive-sequence current, per unit of ``i_base_a``.

    ``v_positive`` and ``i_positive`` are positive-sequence RMS phasors, e.g. from
    :func:`bench.analysis.sequence.sequence_components` applied to per-cycle phasors,
    and ``i_base_a`` is the rated RMS phase current. Id lies along V, and Iq > 0 is the
    reactive current that goes with Q > 0 (see the module docstring). Where |V| is
    zero, the angle is undefined and the result is NaN.
    """
    if i_base_a <= 0:
        raise ValueError("i_base_a must be positive")
    v = np.asarray(v_positive, dtype=np.complex128)
    i = np.asarray(i_positive, dtype=np.complex128)
    magnitude = np.abs(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit_v = np.where(magnitude > 0, v / magnitude, np.nan)
    i_in_v_frame = i * np.conj(unit_v)
    return ActiveReactiveCurrent(
        id_pu=np.real(i_in_v_frame) / i_base_a,
        iq_pu=-np.imag(i_in_v_frame) / i_base_a,
    )

