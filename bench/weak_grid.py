"""Weak-grid emulation: which impedance the grid simulator must add, and what the PCC voltage did.

Short-circuit ratio (SCR) at the PCC, on the PCS rating: SCR = V_ll² / (|Z| · S_rated), with
Z the whole series impedance between the grid simulator's EMF and the PCC (the bench's own
wiring plus whatever the grid simulator emulates). The bench's wiring is a fact of the bench:
the virtual bench file gives it as [virtual] scr / x_over_r (the plant builds its wiring
from exactly that definition); a real bench states it in ohms and henries (see
``wiring_impedance``).

The grid simulator adds a series R-L of the profile's X/R whose size brings |Z_wiring + Z_added|
to the target: with Z_added = m·e^{jφ} (tan φ = X/R), |Z_w + m·e^{jφ}|² = |Z_target|² is a
quadratic in m whose positive root is the answer. A bench whose wiring alone is already
weaker than the target cannot reach it (``WeakerThanTarget``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

from bench.analysis import band_oscillation_amplitude, per_cycle_rms

#: grid simulator options a real bench file gives for its wiring impedance (per phase, series)
WIRING_OPTION_KEYS = ("wiring_r_ohm", "wiring_l_h")


class WeakerThanTarget(ValueError):
    """The bench's wiring alone gives a lower SCR than the one asked for."""


@dataclass(frozen=True)
class SeriesImpedance:
    """A per-phase series R-L."""

    r_ohm: float
    l_h: float

    def reactance_ohm(self, f_hz: float) -> float:
        return 2.0 * math.pi * f_hz * self.l_h

    def magnitude_ohm(self, f_hz: float) -> float:
        return math.hypot(self.r_ohm, self.reactance_ohm(f_hz))

    def __add__(self, other: "SeriesImpedance") -> "SeriesImpedance":
        return SeriesImpedance(self.r_ohm + other.r_ohm, self.l_h + other.l_h)


def base_impedance_ohm(v_ll_nom_v: float, s_rated_va: float) -> float:
    return v_ll_nom_v ** 2 / s_rated_va


def scr_of(z: SeriesImpedance, *, v_ll_nom_v: float, s_rated_va: float, f_hz: float) -> float:
    """The short-circuit ratio a series impedance gives at the PCC, on the PCS rating."""
    return base_impedance_ohm(v_ll_nom_v, s_rated_va) / z.magnitude_ohm(f_hz)


def impedance_for_scr(scr: float, x_over_r: float, *, v_ll_nom_v: float, s_rated_va: float,
                      f_hz: float) -> SeriesImpedance:
    """The series R-L with this X/R that gives this SCR on its own."""
    if scr <= 0 or x_over_r <= 0:
        raise ValueError(f"SCR and X/R must be positive, got {scr!r} and {x_over_r!r}")
    z_ohm = base_impedance_ohm(v_ll_nom_v, s_rated_va) / scr
    angle = math.atan(x_over_r)
    return SeriesImpedance(z_ohm * math.cos(angle), z_ohm * math.sin(angle) / (2.0 * math.pi * f_hz))


def added_impedance_for_scr(target_scr: float, wiring: SeriesImpedance, *, x_over_r: float,
                            v_ll_nom_v: float, s_rated_va: float, f_hz: float) -> SeriesImpedance:
    """What the grid simulator must add (at ``x_over_r``) in series with ``wiring`` so that the
    total gives ``target_scr`` at the PCC (see the module docstring)."""
    z_target = base_impedance_ohm(v_ll_nom_v, s_rated_va) / target_scr
    w = complex(wiring.r_ohm, wiring.reactance_ohm(f_hz))
    if abs(w) > z_target * (1.0 + 1e-12):
        raise WeakerThanTarget(
            f"the bench wiring alone gives SCR {scr_of(wiring, v_ll_nom_v=v_ll_nom_v, s_rated_va=s_rated_va, f_hz=f_hz):.2f}, "
            f"weaker than the SCR {target_scr:g} asked for")
    direction = complex(1.0, x_over_r) / abs(complex(1.0, x_over_r))
    b = (w * direction.conjugate()).real
    m = -b + math.sqrt(max(b * b - (abs(w) ** 2 - z_target ** 2), 0.0))
    added = m * direction
    return SeriesImpedance(added.real, added.imag / (2.0 * math.pi * f_hz))


def wiring_impedance(bench_config: Any) -> SeriesImpedance | None:
    """The bench's own impedance between the grid simulator and the PCC, or None if the bench
    file does not say. Virtual bench: [virtual] scr / x_over_r. Real bench (until bench files
    have a key for it): the grid simulator's options ``wiring_r_ohm`` and ``wiring_l_h``,
    which include any external impedance a lab inserts for weak-grid tests."""
    pcs = bench_config.pcs
    if bench_config.virtual is not None:
        return impedance_for_scr(bench_config.virtual.scr, bench_config.virtual.x_over_r,
                                 v_ll_nom_v=pcs.v_ll_nom_v, s_rated_va=pcs.s_rated_va, f_hz=pcs.f_nom_hz)
    grid = bench_config.instruments.get("grid_simulator")
    options: Mapping[str, Any] = grid.options if grid is not None else {}
    if not all(key in options for key in WIRING_OPTION_KEYS):
        return None
    return SeriesImpedance(float(options["wiring_r_ohm"]), float(options["wiring_l_h"]))


@dataclass(frozen=True)
class PccVoltageFigures:
    """Per-cycle rms of the PCC phase voltages, in pu of nominal, and their oscillation."""

    t_s: np.ndarray
    v_pu: np.ndarray               # (3, windows)
    min_pu: float
    min_at_s: float
    max_pu: float
    max_at_s: float
    oscillation_pu: float          # band amplitude of the three-phase mean rms


def pcc_voltage_figures(v_phases: ArrayLike, *, sample_rate_hz: float, f_nominal_hz: float, v_ln_nom_v: float,
                        band_hz: tuple[float, float], t0_s: float = 0.0) -> PccVoltageFigures:
    """Extremes of the per-cycle rms over the three phases and the in-band oscillation amplitude
    of their mean (a sustained oscillation shows as band energy; a slow sag does not)."""
    rms = per_cycle_rms(np.asarray(v_phases, dtype=np.float64), sample_rate_hz, f_nominal_hz, t0_s=t0_s)
    v_pu = rms.rms / v_ln_nom_v
    lowest = np.unravel_index(int(np.argmin(v_pu)), v_pu.shape)[1]
    highest = np.unravel_index(int(np.argmax(v_pu)), v_pu.shape)[1]
    mean_pu = v_pu.mean(axis=0)
    oscillation = band_oscillation_amplitude(rms.t_s, mean_pu, float(band_hz[0]), float(band_hz[1]))
    return PccVoltageFigures(t_s=rms.t_s, v_pu=v_pu, min_pu=float(v_pu.min()), min_at_s=float(rms.t_s[lowest]),
                             max_pu=float(v_pu.max()), max_at_s=float(rms.t_s[highest]),
                             oscillation_pu=float(oscillation))
