"""Tests of bench.analysis against synthetic signals whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from bench import analysis as an

F0_HZ = 60.0
A_OP = np.exp(2j * np.pi / 3)


def three_phase(t_s, v_rms, f_hz=F0_HZ, phase_rad=0.0, v2=0.0, v0=0.0):
    """Phase waveforms built from positive, negative and zero sequence RMS phasors at f_hz."""
    v1 = v_rms * np.exp(1j * phase_rad)
    phasors = an.phases_from_sequence(v0, v1, v2)
    carrier = np.exp(2j * np.pi * f_hz * t_s)
    return [np.sqrt(2.0) * np.real(p * carrier) for p in phasors], phasors


# --- cycles -------------------------------------------------------------------------------

# The windows integrate the straight line through the samples, so the only error is the
# interpolation error over the two partial end samples. That is ~(2*pi/N)^3 relative
# for N samples per cycle: ~1e-7 at 167 samples per cycle, ~2e-5 at 33. The tolerances
# sit a few times above those.
@pytest.mark.parametrize(
    "fs_hz, rel_tol",
    [(15_360.0, 1e-12), (10_000.0, 1e-6), (7_919.0, 1e-6), (2_000.0, 1e-4)],
)
def test_per_cycle_rms_of_sine(fs_hz, rel_tol):
    t = np.arange(int(fs_hz)) / fs_hz
    x = np.sqrt(2.0) * 230.0 * np.cos(2 * np.pi * F0_HZ * t + 0.7)
    t_c, rms = an.per_cycle_rms(x, fs_hz, F0_HZ)
    assert rms.size == 59  # one second holds 60 cycles, but the last window needs one more sample
    np.testing.assert_allclose(rms, 230.0, rtol=rel_tol)
    np.testing.assert_allclose(np.diff(t_c), 1.0 / F0_HZ, rtol=1e-12)
    assert t_c[0] == pytest.approx(0.5 / F0_HZ)


def test_per_cycle_rms_sliding_and_multichannel():
    fs = 10_000.0
    t = np.arange(5000) / fs
    x = np.where(t < 0.25, 1.0, 2.0) * np.sqrt(2.0) * np.sin(2 * np.pi * F0_HZ * t)
    res = an.per_cycle_rms(np.stack((x, 3 * x)), fs, F0_HZ, step_fraction=0.25, t0_s=1.0)
    assert res.rms.shape == (2, res.t_s.size)
    np.testing.assert_allclose(np.diff(res.t_s), 0.25 / F0_HZ, rtol=1e-9)
    assert res.t_s[0] == pytest.approx(1.0 + 0.5 / F0_HZ)
    # Windows entirely before or after the step read the plain RMS values.
    before = res.t_s < 1.25 - 0.5 / F0_HZ
    after = res.t_s > 1.25 + 0.5 / F0_HZ
    np.testing.assert_allclose(res.rms[0, before], 1.0, rtol=1e-6)
    np.testing.assert_allclose(res.rms[0, after], 2.0, rtol=1e-6)
    np.testing.assert_allclose(res.rms[1], 3 * res.rms[0], rtol=1e-12)


def test_per_cycle_rms_rejects_short_record():
    with pytest.raises(ValueError, match="shorter than one window"):
        an.per_cycle_rms(np.ones(100), 10_000.0, F0_HZ)


@pytest.mark.parametrize("fs_hz", [10_000.0, 7_919.0])
def test_per_cycle_phasor_magnitude_angle_and_harmonic_rejection(fs_hz):
    t = np.arange(int(fs_hz)) / fs_hz
    phi = np.deg2rad(-37.0)
    fundamental = np.sqrt(2.0) * 100.0 * np.cos(2 * np.pi * F0_HZ * t + phi)
    harmonics = 10.0 * np.cos(2 * np.pi * 5 * F0_HZ * t) + 5.0 * np.cos(2 * np.pi * 7 * F0_HZ * t + 1.0)
    res = an.per_cycle_phasor(fundamental + harmonics + 3.0, fs_hz, F0_HZ, step_fraction=0.5)
    # A one-cycle DFT nulls DC and harmonics; the residue is the end-sample interpolation
    # error, which grows with harmonic order, hence 1e-4 rather than the 1e-6 of a pure sine.
    np.testing.assert_allclose(res.phasor, 100.0 * np.exp(1j * phi), rtol=1e-4)


def test_per_cycle_phasor_time_reference_is_absolute():
    fs = 10_000.0
    t = np.arange(20_000) / fs
    x = np.sqrt(2.0) * np.cos(2 * np.pi * F0_HZ * t + 0.4)
    k0 = 1234  # a capture that starts later must give the same phasor angle
    late = an.per_cycle_phasor(x[k0:], fs, F0_HZ, t0_s=k0 / fs)
    np.testing.assert_allclose(late.phasor, np.exp(0.4j), rtol=1e-6)


# --- sequence -----------------------------------------------------------------------------


def test_sequence_components_of_unbalanced_waveforms():
    fs = 10_000.0
    t = np.arange(5000) / fs
    v1, v2, v0 = 277.0 * np.exp(0.2j), 27.7 * np.exp(1j * np.deg2rad(30)), 5.0 * np.exp(-0.3j)
    (va, vb, vc), _ = three_phase(t, abs(v1), phase_rad=np.angle(v1), v2=v2, v0=v0)
    ph = an.per_cycle_phasor((va, vb, vc), fs, F0_HZ).phasor
    seq = an.sequence_components(*ph)
    # Same interpolation bound as the phasor test: 1e-6 relative to the 277 V positive sequence.
    np.testing.assert_allclose(seq.positive, v1, atol=277.0 * 1e-6)
    np.testing.assert_allclose(seq.negative, v2, atol=277.0 * 1e-6)
    np.testing.assert_allclose(seq.zero, v0, atol=277.0 * 1e-6)


def test_clarke_and_park_of_balanced_set():
    t = np.linspace(0, 0.05, 1001)
    theta = 2 * np.pi * F0_HZ * t
    a, b, c = (2.0 * np.cos(theta - k * 2 * np.pi / 3) for k in range(3))
    alpha, beta, zero = an.clarke(a, b, c)
    np.testing.assert_allclose(alpha, 2.0 * np.cos(theta), atol=1e-12)
    np.testing.assert_allclose(beta, 2.0 * np.sin(theta), atol=1e-12)
    np.testing.assert_allclose(zero, 0.0, atol=1e-12)
    d, q = an.park(alpha, beta, theta)
    np.testing.assert_allclose(d, 2.0, atol=1e-12)
    np.testing.assert_allclose(q, 0.0, atol=1e-12)
    np.testing.assert_allclose(an.inverse_park(d, q, theta), (alpha, beta), atol=1e-12)
    np.testing.assert_allclose(an.inverse_clarke(alpha, beta, zero), (a, b, c), atol=1e-12)


# --- power --------------------------------------------------------------------------------

POWER_FACTOR = 0.8


@pytest.mark.parametrize("lagging, q_sign", [(True, +1.0), (False, -1.0)])
def test_power_with_known_power_factor(lagging, q_sign):
    fs = 10_000.0
    t = np.arange(3000) / fs
    phi = np.arccos(POWER_FACTOR) * (1.0 if lagging else -1.0)
    v, _ = three_phase(t, 277.0)
    i, _ = three_phase(t, 300.0, phase_rad=-phi)  # current lags V by phi when lagging
    p_expected = 3 * 277.0 * 300.0 * POWER_FACTOR
    q_expected = q_sign * 3 * 277.0 * 300.0 * np.sqrt(1 - POWER_FACTOR**2)

    inst = an.instantaneous_power(*v, *i)
    # Balanced set: p and q are constant; only floating-point rounding remains.
    np.testing.assert_allclose(inst.p_w, p_expected, rtol=1e-9)
    np.testing.assert_allclose(inst.q_var, q_expected, rtol=1e-9)

    cyc = an.per_cycle_power(*v, *i, fs, F0_HZ)
    np.testing.assert_allclose(cyc.p_w, p_expected, rtol=1e-6)
    np.testing.assert_allclose(cyc.q_var, q_expected, rtol=1e-6)

    vph = an.per_cycle_phasor(v, fs, F0_HZ).phasor
    iph = an.per_cycle_phasor(i, fs, F0_HZ).phasor
    s = an.phasor_power(*vph, *iph)
    np.testing.assert_allclose(s.p_w, p_expected, rtol=1e-6)
    np.testing.assert_allclose(s.q_var, q_expected, rtol=1e-6)

    cur = an.active_reactive_current_pu(
        an.sequence_components(*vph).positive, an.sequence_components(*iph).positive, i_base_a=300.0
    )
    np.testing.assert_allclose(cur.id_pu, POWER_FACTOR, atol=1e-6)
    np.testing.assert_allclose(cur.iq_pu, q_sign * 0.6, atol=1e-6)  # Iq has the sign of Q


def test_per_cycle_power_removes_unbalance_ripple():
    fs = 10_000.0
    t = np.arange(4000) / fs
    v, vph = three_phase(t, 277.0, v2=30.0)
    i, iph = three_phase(t, 100.0, phase_rad=-0.5, v2=20.0 * np.exp(1j))
    inst = an.instantaneous_power(*v, *i)
    assert np.ptp(inst.p_w) > 1e3  # unbalance puts a 2f ripple into p
    cyc = an.per_cycle_power(*v, *i, fs, F0_HZ, step_fraction=0.5)
    s = an.phasor_power(*vph, *iph)
    np.testing.assert_allclose(cyc.p_w, s.p_w, rtol=1e-6)
    np.testing.assert_allclose(cyc.q_var, s.q_var, rtol=1e-6)
    # The mean of the alpha-beta q is Q+ - Q-: the reason per_cycle_power does not use it.
    seq_v, seq_i = an.sequence_components(*vph), an.sequence_components(*iph)
    q_pos = 3 * np.imag(seq_v.positive * np.conj(seq_i.positive))
    q_neg = 3 * np.imag(seq_v.negative * np.conj(seq_i.negative))
    three_cycles = 500  # 3 cycles at 60 Hz are exactly 500 samples at 10 kHz
    assert np.mean(inst.q_var[:three_cycles]) == pytest.approx(q_pos - q_neg, rel=1e-9)


# --- frequency ----------------------------------------------------------------------------


def test_frequency_and_rocof_of_a_frequency_ramp():
    fs = 10_000.0
    rocof = 1.0  # Hz/s, starting at t_ramp from 59.5 Hz
    t_ramp = 1.0
    t = np.arange(int(3.0 * fs)) / fs
    f_true = lambda tt: 59.5 + rocof * np.clip(tt - t_ramp, 0.0, None)  # noqa: E731
    phase = 2 * np.pi * (59.5 * t + 0.5 * rocof * np.clip(t - t_ramp, 0.0, None) ** 2)
    v = [np.sqrt(2) * 277.0 * np.cos(phase - k * 2 * np.pi / 3) for k in range(3)]
    freq = an.frequency_hz(*v, fs, F0_HZ)
    # Away from the corner of the ramp, the positive-sequence estimate is exact up to the
    # phasor interpolation error (~1e-7 rad per cycle → ~1e-5 Hz); allow 1 mHz, 10x under
    # IEEE 1547's 10 mHz accuracy requirement.
    away = np.abs(freq.t_s - t_ramp) > 2.0 / F0_HZ
    np.testing.assert_allclose(freq.f_hz[away], f_true(freq.t_s[away]), atol=1e-3)

    rate = an.rocof_hz_per_s(freq.t_s, freq.f_hz, window_s=0.1)
    steady = rate.t_s < t_ramp - 0.1
    ramping = rate.t_s > t_ramp + 0.1
    np.testing.assert_allclose(rate.rocof_hz_per_s[steady], 0.0, atol=0.01)
    np.testing.assert_allclose(rate.rocof_hz_per_s[ramping], rocof, atol=0.01)


def test_frequency_from_single_phasor_rotation():
    t = np.arange(100) / F0_HZ
    ph = np.exp(2j * np.pi * 0.25 * t)  # rotates at +0.25 Hz relative to nominal
    res = an.frequency_from_phasors(t, ph, F0_HZ)
    np.testing.assert_allclose(res.f_hz, 60.25, atol=1e-9)


# --- step response ------------------------------------------------------------------------

TAU_S = 0.05


def first_order(fs=10_000.0, t_step=0.2, duration=1.0, y0=10.0, y1=20.0, noise=0.0, seed=0):
    t = np.arange(int(duration * fs)) / fs
    y = y0 + (y1 - y0) * np.where(t >= t_step, 1 - np.exp(-(t - t_step) / TAU_S), 0.0)
    return t, y + np.random.default_rng(seed).normal(0.0, noise, t.size)


def test_step_response_first_order():
    t, y = first_order()
    m = an.step_response(t, y, 0.2)
    # Interpolated crossings on a 0.1 ms grid of a smooth curve: error << 0.1 ms.
    assert m.response_time_s == pytest.approx(TAU_S * np.log(10), abs=1e-4)
    assert m.rise_time_s == pytest.approx(TAU_S * np.log(9), abs=1e-4)
    # The final value read from the last 10 % is 20 - 10*exp(-14) ~ 20, so the 2 % band is exact.
    assert m.settling_time_s == pytest.approx(TAU_S * np.log(50), abs=1e-4)
    # y_final (median of the last 10 %) sits 1e-6 below the asymptote, so the tail
    # "overshoots" it by that much.
    assert m.overshoot == pytest.approx(0.0, abs=1e-6)
    assert m.y_initial == pytest.approx(10.0) and m.y_final == pytest.approx(20.0, abs=1e-4)


def test_step_response_first_order_with_noise_and_downward_step():
    t, y = first_order(y0=20.0, y1=10.0, noise=0.05)  # noise std = 0.5 % of the step
    m = an.step_response(t, y, 0.2, smoothing_s=0.002)
    # A 20-sample average leaves noise of 0.05/sqrt(20) = 0.011 (0.11 % of the step). At
    # 90 % the curve moves 2 %/ms, so the timing scatter is ~0.06 ms and the smoothing
    # bias is second order. 1 ms leaves a wide margin.
    assert m.response_time_s == pytest.approx(TAU_S * np.log(10), abs=1e-3)
    assert m.noise_std == pytest.approx(0.05, rel=0.1)
    # The residual noise peak after smoothing (~4 sigma) stays within a 1 % overshoot.
    assert m.overshoot < 0.01


ZETA = 0.2
WN_RAD_S = 2 * np.pi * 5.0


def second_order_step(t, t_step):
    wd = WN_RAD_S * np.sqrt(1 - ZETA**2)
    tau = np.clip(t - t_step, 0.0, None)
    y = 1 - np.exp(-ZETA * WN_RAD_S * tau) / np.sqrt(1 - ZETA**2) * np.sin(wd * tau + np.arccos(ZETA))
    return np.where(t >= t_step, y, 0.0)


def test_step_response_second_order():
    fs = 10_000.0
    t = np.arange(int(3.0 * fs)) / fs
    y = second_order_step(t, 0.5)
    m = an.step_response(t, y, 0.5, y_final=1.0)
    wd = WN_RAD_S * np.sqrt(1 - ZETA**2)
    t90 = brentq(lambda tt: second_order_step(np.array([tt + 0.5]), 0.5)[0] - 0.9, 1e-4, np.pi / wd)
    assert m.response_time_s == pytest.approx(t90, abs=1e-4)
    # Textbook overshoot exp(-pi*zeta/sqrt(1-zeta^2)) = 0.5266; the sampled peak misses the
    # true peak by under half a sample, a relative error of about (wd*dt)^2 ~ 1e-5.
    assert m.overshoot == pytest.approx(np.exp(-np.pi * ZETA / np.sqrt(1 - ZETA**2)), abs=1e-4)
    assert m.peak_time_s == pytest.approx(np.pi / wd, abs=1e-4)
    # The envelope bound exp(-zeta*wn*t)/sqrt(1-zeta^2) = 2 % gives the latest possible
    # settling time. The true one lies within half a damped period before it.
    t_env = -np.log(0.02 * np.sqrt(1 - ZETA**2)) / (ZETA * WN_RAD_S)
    assert t_env - np.pi / wd <= m.settling_time_s <= t_env


def test_damping_ratio_and_frequency():
    fs = 2_000.0
    t = np.arange(int(2.0 * fs)) / fs
    y = second_order_step(t, 0.0)
    res = an.damping_ratio_and_frequency(t, y)
    # A noiseless record fits the model exactly, up to the optimiser's tolerance.
    assert res.damping_ratio == pytest.approx(ZETA, abs=1e-4)
    assert res.natural_frequency_hz == pytest.approx(5.0, abs=1e-3)
    assert res.damped_frequency_hz == pytest.approx(5.0 * np.sqrt(1 - ZETA**2), abs=1e-3)
    assert res.offset == pytest.approx(1.0, abs=1e-4)

    noisy = y + np.random.default_rng(3).normal(0.0, 0.02, t.size)  # 2 % of the step
    res_n = an.damping_ratio_and_frequency(t, noisy)
    # With 4000 samples of 2 % noise, the least-squares scatter in zeta is ~1e-3. 0.01 is 10 sigma.
    assert res_n.damping_ratio == pytest.approx(ZETA, abs=0.01)
    assert res_n.natural_frequency_hz == pytest.approx(5.0, abs=0.02)


def test_step_response_without_step_raises():
    rng = np.random.default_rng(1)
    t = np.arange(2000) / 1000.0
    with pytest.raises(ValueError, match="no step"):
        an.step_response(t, 5.0 + rng.normal(0, 0.1, t.size), 1.0)
    with pytest.raises(ValueError, match="before the step"):
        an.step_response(t, t, -1.0)


# --- ramp ---------------------------------------------------------------------------------


def test_max_ramp_rate_and_tracking_error():
    t = np.arange(0, 10, 0.01)
    y = 100.0 + 20.0 * np.clip(t - 2.0, 0.0, 3.0)  # 20 units/s from 2 s to 5 s
    assert an.max_ramp_rate(t, y, 1.0) == pytest.approx(20.0, rel=1e-9)
    assert an.max_ramp_rate(t, y, 5.0) == pytest.approx(60.0 / 5.0, rel=1e-9)  # window longer than ramp
    down = an.ramp_rate_at(t, -y, 0.5, direction="down")
    assert down.rate_per_s == pytest.approx(-20.0) and 2.0 <= down.t_start_s <= 4.5
    assert an.max_ramp_rate(t, y, 1.0, direction="down") == pytest.approx(0.0, abs=1e-9)

    ref = y
    err = an.tracking_error(y + 0.5 * np.sin(2 * np.pi * t), ref, base=50.0)
    assert err.max_abs == pytest.approx(0.5, rel=1e-3)  # 0.01 s grid catches the sine peak
    assert err.rms == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    assert err.max_fraction == pytest.approx(0.01, rel=1e-3)


# --- oscillation --------------------------------------------------------------------------


def test_band_oscillation_amplitude_in_and_out_of_band():
    fs = 1_000.0
    t = np.arange(int(20 * fs)) / fs
    y = (
        100.0 + 0.1 * t  # offset and drift: removed by the linear detrend
        + 3.0 * np.sin(2 * np.pi * 7.3 * t)  # in the 1–30 Hz band
        + 5.0 * np.sin(2 * np.pi * 45.0 * t + 1.0)  # above it
        + 2.0 * np.sin(2 * np.pi * 0.3 * t)  # below it
    )
    # Tones sit more than 10 bins (0.05 Hz each) from the band edges, where Hann
    # leakage is below 1e-4 of the power. 1 % covers leakage and the 0.3 Hz tone's
    # partial detrend.
    assert an.band_oscillation_amplitude(t, y, 1.0, 30.0) == pytest.approx(3.0, rel=0.01)
    assert an.band_oscillation_amplitude(t, y, 40.0, 50.0) == pytest.approx(5.0, rel=0.01)
    assert an.band_oscillation_amplitude(t, y, 10.0, 30.0) < 0.05
    welch = an.band_oscillation_amplitude(t, y, 1.0, 30.0, method="welch", segment_s=5.0)
    assert welch == pytest.approx(3.0, rel=0.02)

    dom = an.dominant_oscillation(t, y, 1.0, 30.0)
    # Log-parabolic interpolation of a Hann peak: better than 1/10 of a 0.05 Hz bin.
    assert dom.frequency_hz == pytest.approx(7.3, abs=0.005)
    assert dom.amplitude == pytest.approx(3.0, rel=0.01)
    assert an.dominant_oscillation(t, y, 30.0, 100.0).frequency_hz == pytest.approx(45.0, abs=0.005)


def test_band_oscillation_of_white_noise():
    fs = 1_000.0
    rng = np.random.default_rng(7)
    y = rng.normal(0.0, 1.0, 100_000)
    t = np.arange(y.size) / fs
    res = an.band_oscillation(t, y, 1.0, 30.0)
    # White noise of variance 1 has variance 29/500 in a 29 Hz band. With ~2900 bins, the
    # estimate's scatter is ~2 %, so allow 10 %.
    assert res.rms == pytest.approx(np.sqrt(29.0 / 500.0), rel=0.1)


# --- ride-through -------------------------------------------------------------------------


def test_sag_depth_and_duration_from_per_cycle_rms():
    fs = 10_000.0
    t = np.arange(int(1.5 * fs)) / fs
    sag_start, sag_len, depth = 0.5, 0.3, 0.5
    magnitude = np.where((t >= sag_start) & (t < sag_start + sag_len), depth, 1.0)
    v = [magnitude * np.sqrt(2) * np.cos(2 * np.pi * F0_HZ * t - k * 2 * np.pi / 3) for k in range(3)]
    res = an.per_cycle_rms(v, fs, F0_HZ, step_fraction=0.25)
    v_min_pu = res.rms.min(axis=0)
    below = an.time_below(res.t_s, v_min_pu, 0.88)
    # A one-cycle window smears each edge over one cycle, and the 0.88 crossing falls
    # partway into it. Duration and start are therefore good to within one cycle.
    cycle = 1.0 / F0_HZ
    assert below.longest_duration_s == pytest.approx(sag_len, abs=cycle)
    assert below.first_crossing_s == pytest.approx(sag_start, abs=cycle)
    assert below.total_duration_s == pytest.approx(below.longest_duration_s)
    assert v_min_pu.min() == pytest.approx(depth, rel=1e-6)
    assert an.time_below(res.t_s, v_min_pu, 0.3).first_crossing_s is None


def test_time_below_interpolates_runs():
    t = np.arange(11.0)
    y = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0], dtype=float)
    res = an.time_below(t, y, 0.5)
    assert res.first_crossing_s == pytest.approx(1.5)
    # Runs: 1.5 → 3.5 (2 s), and 6.5 → the record's end at 10 (3.5 s).
    assert res.longest_duration_s == pytest.approx(3.5) and res.longest_start_s == pytest.approx(6.5)
    assert res.total_duration_s == pytest.approx(5.5)


def test_first_time_reaching_and_current_ceased():
    t = np.linspace(0.0, 1.0, 1001)
    y = np.clip(2.0 * t, 0.0, 1.5)
    assert an.first_time_reaching(t, y, 1.0, after_s=0.0) == pytest.approx(0.5, abs=1e-9)
    assert an.first_time_reaching(t, y, 2.0, after_s=0.0) is None
    assert an.first_time_reaching(t, 1.5 - y, 0.5, after_s=0.2) == pytest.approx(0.5, abs=1e-9)

    i_rms = np.where(t < 0.3, 300.0, np.where(t < 0.6, 300.0 - 1000.0 * (t - 0.3), 0.0))
    i_rms = np.maximum(i_rms, 0.0)
    assert an.current_ceased(t, i_rms, 10.0, after_s=0.1) == pytest.approx(0.59, abs=1e-9)
    assert an.current_ceased(t, i_rms, 10.0, after_s=0.1, min_duration_s=0.2) == pytest.approx(0.59, abs=1e-9)
    blip = np.where((t > 0.2) & (t < 0.25), 0.0, 300.0)
    assert an.current_ceased(t, blip, 10.0, after_s=0.0, min_duration_s=0.1) is None
    assert an.current_ceased(t, blip, 10.0, after_s=0.0) == pytest.approx(0.2, abs=1e-3)


def test_mandatory_region_duration():
    cat3 = [(0.88, 1.10, np.inf), (0.70, 0.88, 20.0), (0.50, 0.70, 10.0)]
    assert an.mandatory_region_duration(cat3, 0.6) == 10.0
    assert an.mandatory_region_duration(cat3, 0.8) == 20.0
    assert an.mandatory_region_duration(cat3, 0.70) == 20.0  # shared edge: the stricter region
    assert an.mandatory_region_duration(cat3, 0.4) == 0.0
    np.testing.assert_array_equal(an.mandatory_region_duration(cat3, [0.4, 0.6, 0.8]), [0.0, 10.0, 20.0])
    sloped = an.RideThroughCurve.from_points([(0.65, 0.88, 3.0, 5.0)])
    assert an.mandatory_region_duration(sloped, 0.765) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        an.RideThroughCurve.from_points([(0.9, 0.7, 1.0)])


def test_stays_within_band_and_follows_reference():
    t = np.linspace(0.0, 1.0, 101)
    ref = 100.0 * t
    y = ref + np.where(t > 0.705, 3.0, 0.5)
    assert an.stays_within_band(t, y, -10.0, 110.0) is None
    v = an.stays_within_band(t, y, ref - 1.0, ref + 1.0)
    assert v is not None and v.side == "above" and v.t_s == pytest.approx(0.71)

    ok = an.follows_reference(t, y, ref, tolerance_abs=5.0)
    assert ok.passed and ok.max_abs_deviation == pytest.approx(3.0)
    bad = an.follows_reference(t, y, ref, tolerance_abs=1.0, tolerance_rel=0.02)
    # Allowed band 1 + 0.02*ref: 3 exceeds it until ref reaches 100 (t = 1.0), so the
    # worst ratio is at the first sample after 0.7 s, 3 / (1 + 1.42).
    assert not bad.passed
    assert bad.first_violation_t_s == pytest.approx(0.71)
    assert bad.worst_t_s == pytest.approx(0.71) and bad.worst_deviation == pytest.approx(3.0)
    assert bad.worst_ratio == pytest.approx(3.0 / 2.42)


def test_benchmark_runs_on_a_small_record():
    from bench.analysis.benchmark import analysis_benchmark

    res = analysis_benchmark(n_samples=200_000)
    assert {"n_samples", "rms_s", "phasor_s", "frequency_s", "total_s"} <= res.keys()
    assert res["f_mean_hz"] == pytest.approx(60.02, abs=1e-3)
    assert res["v_rms_mean_v"] == pytest.approx(277.1 * np.sqrt(1 + 0.02**2), rel=1e-3)
