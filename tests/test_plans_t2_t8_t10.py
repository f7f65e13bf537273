"""T2 (islanded V/f regulation), T8 (grid <-> island transition), T10 (black start): the islanded
figures on synthetic signals with known answers, and proof on the virtual bench that each plan
passes the healthy PCS and fails the defect it exists to catch, naming measurement and limit.

Each qualify run starts its own virtual bench (ports chosen by the OS); `-k` keeps them short.
"""
import math
from pathlib import Path

import numpy as np
import pytest

from bench.islanded import bus_signals, closing_figures, energising_figures, load_step_figures, time_back_within
from bench.sim.defects import DEFECTS
from plan_runs import failed_measurements, measurement_rows, qualify

FS, F0, V_LN, I_RATED = 5000.0, 60.0, 277.0, 300.0


def _three_phase(t, amplitude_pu, f_hz, phase0=0.0, scale=V_LN):
    """Balanced set whose magnitude (pu) and frequency may vary sample by sample."""
    angle = phase0 + 2 * np.pi * np.cumsum(np.broadcast_to(f_hz, t.shape)) / FS
    return np.vstack([math.sqrt(2) * scale * amplitude_pu * np.cos(angle - k * 2 * np.pi / 3) for k in range(3)])


# ------------------------------------------------------------------ analysis on synthetic signals
def test_bus_signals_read_magnitude_and_off_nominal_frequency():
    t = np.arange(-0.2, 1.0, 1 / FS)
    v = _three_phase(t, 0.95, 59.3)
    sig = bus_signals(t, v, v / V_LN * I_RATED / 2, sample_rate_hz=FS, f_nominal_hz=F0, v_ln_nom_v=V_LN,
                      i_rated_a=I_RATED)
    assert np.allclose(sig.v_pu, 0.95, atol=1e-3)
    assert np.allclose(sig.f_hz, 59.3, atol=2e-3)


def test_energising_overshoot_and_settled_values():
    t = np.arange(-0.3, 3.0, 1 / FS)
    ramp = np.clip(t / 0.5, 0.0, None)
    magnitude = np.where(t < 0, 0.0, np.where(t < 0.5, ramp * 1.2, 1.0 + 0.2 * np.exp(-(t - 0.5) / 0.1)))
    v = _three_phase(t, magnitude, 60.0)
    sig = bus_signals(t, v, v * 0, sample_rate_hz=FS, f_nominal_hz=F0, v_ln_nom_v=V_LN, i_rated_a=I_RATED)
    fig = energising_figures(sig, end_s=float(sig.t_s[-1]), settled_window_s=0.5)
    assert fig.overshoot_pu == pytest.approx(0.2, abs=0.01)
    assert fig.settled_v_pu == pytest.approx(1.0, abs=0.002) and fig.settled_f_hz == pytest.approx(60.0, abs=0.01)
    assert fig.energised_at_s == pytest.approx(0.05, abs=0.03)


def test_load_step_dip_recovery_and_damping_of_a_known_ring():
    t = np.arange(-0.5, 3.0, 1 / FS)
    zeta, fn = 0.1, 3.0
    wd = 2 * np.pi * fn * math.sqrt(1 - zeta ** 2)
    after = np.clip(t, 0.0, None)
    magnitude = 1.0 - np.where(t >= 0, 0.08 * np.exp(-zeta * 2 * np.pi * fn * after) * np.cos(wd * after), 0.0)
    freq = 60.0 - np.where(t >= 0, 0.5 * (1 - np.exp(-after / 0.05)), 0.0)
    v = _three_phase(t, magnitude, freq)
    sig = bus_signals(t, v, v * 0, sample_rate_hz=FS, f_nominal_hz=F0, v_ln_nom_v=V_LN, i_rated_a=I_RATED)
    fig = load_step_figures(sig, step_at_s=0.0, end_s=float(sig.t_s[-1]), pre_s=0.3, final_s=0.3, v_band_pu=0.02,
                            f_band_hz=0.1, fit_window_s=2.0, window_s=1 / F0)
    assert fig.v_dip_pu == pytest.approx(-0.08, abs=0.01)
    assert fig.f_final_hz - fig.f_initial_hz == pytest.approx(-0.5, abs=0.01)
    assert fig.oscillation.damping_ratio == pytest.approx(zeta, abs=0.02)
    assert fig.oscillation.natural_frequency_hz == pytest.approx(fn, rel=0.05)
    # |0.08 exp(-zeta wn t)| falls under 0.02 after ln(4) / (zeta wn) = 0.74 s (within a half period)
    assert 0.5 < fig.v_recovery_s < 0.8


def test_time_back_within_never_left_and_never_returned():
    t = np.linspace(0, 1, 101)
    assert time_back_within(t, np.ones_like(t), 1.0, 0.1, 0.0, 1.0) == 0.0
    assert time_back_within(t, np.where(t > 0.9, 2.0, 1.0), 1.0, 0.1, 0.0, 1.0) is None


def test_closing_figures_read_the_phase_step_and_slip_across_the_breaker():
    t = np.arange(-0.5, 2.0, 1 / FS)
    # island at 59.9 Hz until t = 0.5 s; then locked to a 60 Hz grid that is 12 deg behind
    f = np.where(t < 0.5, 59.9, 60.0)
    v = _three_phase(t, 1.0, f)
    angle_island_at_close = 2 * np.pi * np.sum(f[t < 0.5]) / FS
    grid_t = np.where(t >= 0.5, 2 * np.pi * 60.0 * (t - 0.5) + angle_island_at_close - math.radians(12.0), 0.0)
    v = np.where(t < 0.5, v, np.vstack([math.sqrt(2) * V_LN * np.cos(grid_t - k * 2 * np.pi / 3) for k in range(3)]))
    sig = bus_signals(t, v, v * 0, sample_rate_hz=FS, f_nominal_hz=F0, v_ln_nom_v=V_LN, i_rated_a=I_RATED)
    grid_i_pu = np.where(sig.t_s >= 0.5 + 0.5 / F0, 0.2, 0.0)
    fig = closing_figures(sig, grid_i_pu, after_s=0.0, closed_above_pu=0.02, pre_s=0.2, post_from_s=0.1,
                          post_to_s=1.0, window_s=1 / F0)
    assert fig.closed_at_s == pytest.approx(0.5, abs=0.01)
    assert fig.angle_deg == pytest.approx(12.0, abs=1.0)
    assert fig.slip_hz == pytest.approx(-0.1, abs=0.01)


# ------------------------------------------------------------------ the plans on the virtual bench
def test_T2_T8_T10_pass_the_healthy_pcs(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T2 or T8 or T10", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for line in ("PASS  T10  test_T10_energise_dead_bus", "PASS  T10  test_T10_load_step[10%-to-25%]",
                 "PASS  T10  test_T10_load_step[25%-to-50%]", "PASS  T2   test_T2_islanded_load_step[resistive]",
                 "PASS  T2   test_T2_islanded_load_step[inductive]", "PASS  T2   test_T2_islanded_load_step[capacitive]",
                 "PASS  T8   test_T8_grid_loss_island_and_reconnect"):
        assert line in result.stdout
    judged = {r["name"] for r in measurement_rows(out) if r["clause"]}
    assert {"energising_voltage_overshoot", "voltage_dip", "frequency_dip", "voltage_recovery_time",
            "frequency_recovery_time", "voltage_deviation", "frequency_deviation", "settling_time", "damping_ratio",
            "load_voltage_min", "load_current_interruption", "closing_phase_step", "closing_slip"} <= judged
    # the load bank draws the T2 steps, quantised to its 5 kW / 5 kvar contactor steps
    drawn = [float(r["value"]) for r in measurement_rows(out) if r["test_id"] == "T2" and r["name"] == "step_drawn"]
    assert drawn == pytest.approx([0.30, 0.24, 0.24])
    assert len(list((out / "plots").rglob("*.png"))) == 7


def test_T10_fails_a_black_start_that_overshoots(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T10 and energise", "--defect", "blackstart_overshoot", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T10  test_T10_energise_dead_bus" in result.stdout
    assert "energising the dead bus, the positive-sequence voltage peaked at" in result.stdout
    assert "at most 0.1 pu above nominal is allowed" in result.stdout
    assert "energising_voltage_overshoot" in failed_measurements(out)


def test_T8_fails_a_transfer_that_drops_the_load(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T8", "--defect", "island_transfer_gap", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T8   test_T8_grid_loss_island_and_reconnect" in result.stdout
    assert "the load voltage fell to" in result.stdout and "at least 0.7 pu is required" in result.stdout
    assert "(loss of load)" in result.stdout
    failed = failed_measurements(out)
    assert {"load_voltage_min", "load_voltage_dip_duration", "load_current_min", "load_current_interruption"} <= failed


@pytest.mark.skipif(not DEFECTS["gfm_underdamped"].implemented,
                    reason="gfm_underdamped is catalogued but not implemented in the plant yet")
def test_T2_fails_an_underdamped_grid_former(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T2", "--defect", "gfm_underdamped", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    for kind in ("resistive", "inductive", "capacitive"):      # the load bank's reactive steps too
        assert f"FAIL  T2   test_T2_islanded_load_step[{kind}]" in result.stdout
        assert f"pu {kind} step; at least 0.2 is required" in result.stdout
    assert "with a damping ratio of" in result.stdout
    assert {r["outcome"] for r in measurement_rows(out) if r["name"] == "damping_ratio"} == {"FAIL"}


def _bench_without_load_bank(tmp_path: Path) -> Path:
    """The packaged virtual bench minus its RLC load bank: the AC load draws T2's steps."""
    lines = (Path(__file__).resolve().parents[1] / "bench" / "benches" / "virtual.toml").read_text().splitlines()
    kept, in_bank = [], False
    for line in lines:
        if line.startswith("["):
            in_bank = line.startswith("[instruments.load_bank")
        if not in_bank:
            kept.append(line)
    path = tmp_path / "no_load_bank.toml"
    path.write_text("\n".join(kept) + "\n")
    return path


def test_T2_reactive_steps_skip_where_only_an_ac_load_without_them_is_there(tmp_path):
    out = tmp_path / "run"
    result = qualify("--bench", str(_bench_without_load_bank(tmp_path)), "-k", "T2 and (inductive or resistive)",
                     "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS  T2   test_T2_islanded_load_step[resistive]" in result.stdout
    # the Chroma 63800 bank has no linear reactive mode: said, not passed
    assert "SKIP  T2   test_T2_islanded_load_step[inductive]" in result.stdout
    assert "cannot draw a linear inductive" in result.stdout
