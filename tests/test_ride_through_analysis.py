"""Ride-through figures from synthetic three-phase captures with known answers."""
import numpy as np
import pytest

from bench.ride_through import ride_through_signals, sag_figures

FS_HZ, F_HZ, V_LN, I_RATED = 20_000.0, 60.0, 277.13, 300.7


def _three_phase(t_s, magnitude, angle_rad):
    """Balanced set with time-varying rms magnitude and angle (relative to phase A of the voltage)."""
    return np.stack([np.sqrt(2) * magnitude * np.cos(2 * np.pi * F_HZ * t_s + angle_rad - k * 2 * np.pi / 3)
                     for k in range(3)])


def _capture(sag_s=1.0, residual_pu=0.5, iq_delay_s=0.02, iq_pu=0.8, p_recovery_s=0.3, cease_at_s=None):
    t_s = np.arange(-0.2, sag_s + 1.0, 1 / FS_HZ)
    v_pu = np.where((t_s >= 0) & (t_s < sag_s), residual_pu, 1.0)
    id_pu = np.ones_like(t_s)
    id_pu[(t_s >= 0) & (t_s < sag_s)] = 0.3
    ramp = (t_s >= sag_s) & (t_s < sag_s + p_recovery_s)
    id_pu[ramp] = 0.3 + 0.7 * (t_s[ramp] - sag_s) / p_recovery_s
    iq = np.where((t_s >= iq_delay_s) & (t_s < sag_s), iq_pu, 0.0)
    if cease_at_s is not None:
        id_pu[t_s >= cease_at_s] = 0.0
        iq[t_s >= cease_at_s] = 0.0
    v = _three_phase(t_s, V_LN * v_pu, 0.0)
    # Iq > 0 (supporting voltage) lags the voltage by 90 degrees.
    i_mag = I_RATED * np.hypot(id_pu, iq)
    i = _three_phase(t_s, i_mag, -np.arctan2(iq, id_pu))
    return t_s, v, i


def _figures(sag_s=1.0, **kw):
    t_s, v, i = _capture(sag_s=sag_s, **kw)
    sig = ride_through_signals(t_s, v, i, sample_rate_hz=FS_HZ, f_nominal_hz=F_HZ, v_ln_nom_v=V_LN,
                               i_rated_a=I_RATED)
    return sag_figures(sig, sag_duration_s=sag_s, window_s=1 / F_HZ, ceased_below_pu=0.05,
                       recovery_fraction=0.9)


def test_healthy_ride_through_figures():
    fig = _figures()
    assert fig.residual_v_pu == pytest.approx(0.5, abs=0.01)
    assert fig.pre_p_w == pytest.approx(3 * V_LN * I_RATED, rel=0.01)
    assert fig.current_ceased_at_s is None
    assert fig.delta_iq_pu == pytest.approx(0.8, abs=0.02)
    # the one-cycle window reaches 90 % at delay + 0.4 cycle (centred windows)
    assert fig.iq_response_s == pytest.approx(0.02 + 0.4 / F_HZ, abs=0.004)
    # P needs 0.9 pu of pre-fault: 0.3 + 0.7 x = 0.9 -> 0.857 of the ramp
    assert fig.p_recovery_s == pytest.approx(0.3 * 0.6 / 0.7, abs=0.02)


def test_cessation_is_timed():
    fig = _figures(cease_at_s=0.042)
    assert fig.current_ceased_at_s == pytest.approx(0.042, abs=1 / F_HZ)
    assert fig.p_recovery_s is None


def test_no_injection_has_no_response():
    fig = _figures(iq_pu=0.0)
    assert abs(fig.delta_iq_pu) < 0.01
    assert fig.iq_response_s is None
