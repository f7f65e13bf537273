"""T11 (SOC management with competing missions): the SOC figures on synthetic data with known
answers, and proof on the virtual bench that the plan passes the healthy PCS and fails a PCS
whose SOC estimate drifts (soc_drift: discharged energy over-counted by 5 %).

The bench runs use a site profile written in tmp_path that inherits the shipped IEEE 2800
profile and shortens the 24 h duty: a few full charge/discharge swings at a high dispatch, so
that soc_drift's 5 % over-count of the discharged energy passes the ±5 % limit (more than one
battery capacity discharged) in a few hours of plant time.
"""
import numpy as np
import pytest

from bench.soc_check import (ai_duty_list, band_figures, dc_energy_wh, drift_series_pct, reference_soc_pct,
                             reserve_soc_pct, soc_drift_pct)
from plan_runs import ROOT, failed_measurements, measurement_rows, qualify

CAPACITY_WH = 500e3


# ------------------------------------------------------------------ analysis on synthetic data
def test_dc_energy_of_a_constant_discharge_and_of_a_charge():
    t = np.arange(0.0, 3600.0 + 1, 10.0)
    assert dc_energy_wh(t, np.full_like(t, 900.0), np.full_like(t, 100.0))[-1] == pytest.approx(90e3)
    assert dc_energy_wh(t, np.full_like(t, 900.0), np.full_like(t, -50.0))[-1] == pytest.approx(-45e3)
    assert dc_energy_wh(np.array([]), np.array([]), np.array([])).size == 0


def test_reference_soc_falls_by_the_counted_energy_over_the_capacity():
    t = np.arange(0.0, 7200.0 + 1, 1.37)
    soc = reference_soc_pct(t, np.full_like(t, 1000.0), np.full_like(t, 125.0), start_soc_pct=50.0,
                            capacity_wh=CAPACITY_WH)
    assert soc[0] == 50.0
    assert soc[-1] == pytest.approx(50.0 - 100.0 * 125e3 * t[-1] / 3600.0 / CAPACITY_WH)
    with pytest.raises(ValueError, match="capacity"):
        reference_soc_pct(t, t, t, start_soc_pct=50.0, capacity_wh=0.0)


def test_sampling_a_swinging_dc_power_off_its_period_counts_the_mean():
    # 2 s iterations at 70 % duty, polled every 1.37 s (200 phases of the iteration): the count converges on the mean
    t = np.arange(0.0, 4 * 3600.0, 1.37)
    current_a = np.where((t % 2.0) < 1.4, 200.0, -100.0)
    energy_wh = dc_energy_wh(t, np.full_like(t, 900.0), current_a)[-1]
    mean_w = 900.0 * (0.7 * 200.0 - 0.3 * 100.0)
    assert energy_wh == pytest.approx(mean_w * t[-1] / 3600.0, rel=0.01)


def test_band_figures_of_a_series_inside_and_of_one_that_leaves_it():
    t = np.arange(0.0, 100.0, 1.0)
    inside = band_figures(t, np.linspace(25.0, 75.0, t.size), 20.0, 80.0)
    assert (inside.excursion_pct, inside.excursion_at_s, inside.time_outside_s) == (0.0, None, 0.0)
    soc = np.full(t.size, 50.0)
    soc[10:20] = 83.0                       # 3 points over the top for 10 s
    soc[50:55] = 19.0                       # 1 point under the bottom for 5 s
    out = band_figures(t, soc, 20.0, 80.0)
    assert out.excursion_pct == pytest.approx(3.0)
    assert out.excursion_at_s == 10.0
    assert out.time_outside_s == pytest.approx(15.0)
    assert (out.lowest_pct, out.highest_pct) == (19.0, 83.0)


def test_drift_is_the_estimate_minus_the_bench_count():
    assert soc_drift_pct(42.0, 48.5) == pytest.approx(-6.5)
    series = drift_series_pct(np.array([0.0, 5.0]), np.array([50.0, 44.0]), np.array([0.0, 10.0]),
                              np.array([50.0, 40.0]))
    assert series == pytest.approx([0.0, -1.0])


def test_reserve_soc_of_rated_power_for_a_quarter_hour():
    assert reserve_soc_pct(power_w=250e3, duration_s=900.0, capacity_wh=CAPACITY_WH, floor_pct=5.0) == \
        pytest.approx(17.5)


def test_ai_duty_cycle_is_training_then_a_checkpoint():
    duty = ai_duty_list(base_w=100.0, swing_w=60.0, period_s=2.0, compute_fraction=0.7, iterations=3,
                        checkpoint_dip_w=60.0, checkpoint_s=10.0)
    assert duty.times_s == pytest.approx((0.0, 1.4, 2.0, 3.4, 4.0, 5.4, 6.0))
    assert duty.powers_w == (160.0, 100.0, 160.0, 100.0, 160.0, 100.0, 40.0)
    assert duty.end_s == pytest.approx(16.0)
    with pytest.raises(ValueError):
        ai_duty_list(base_w=1.0, swing_w=1.0, period_s=1.0, compute_fraction=0.5, iterations=0,
                     checkpoint_dip_w=0.0, checkpoint_s=1.0)


# ------------------------------------------------------------------ T11 on the virtual bench
# Down to the bottom, then two full charge/discharge swings, then back to mid-band: at 0.8 pu each
# dispatch asks for longer than the band allows (the SOC manager bounds it), and about 750 kWh
# (1.5 capacities) leave the battery, so soc_drift ends some 7 points off.
SHORT_DUTY = """
[profile]
id = "t11_short_duty"
title = "IEEE 2800-2022 with T11's duty shortened for the framework's tests"
inherits = "ieee2800_2022"

[soc_management.procedure]
duty_s = 28000.0
phasor_step_s = 0.01                # the coarsest phasor step: twice as fast
swing_pu = 0.15                     # 0.8 pu dispatch + swing stays within the rating (no current limiting)
dc_poll_s = 3.37
telemetry_poll_s = 60.0
dispatches = [
  { at_s = 60.0, target_pu = 0.8, within_s = 2.0 },
  { at_s = 2900.0, target_pu = -0.8, within_s = 60.0 },
  { at_s = 8400.0, target_pu = 0.8, within_s = 2.0 },
  { at_s = 13900.0, target_pu = -0.8, within_s = 60.0 },
  { at_s = 19400.0, target_pu = 0.8, within_s = 2.0 },
  { at_s = 24900.0, target_pu = -0.8, within_s = 60.0 },
  { at_s = 27600.0, target_pu = 0.0, within_s = 2.0 },
]
"""


@pytest.fixture(scope="module")
def short_bench(tmp_path_factory):
    """The virtual bench file judged against the shortened-duty site profile next to it."""
    folder = tmp_path_factory.mktemp("t11_bench")
    (folder / "t11_short_duty.toml").write_text(SHORT_DUTY)
    text = (ROOT / "bench" / "benches" / "virtual.toml").read_text()
    head, _, rest = text.partition('profile = "ieee2800_2022"')
    assert rest, "the virtual bench file no longer names its profile as expected"
    bench = folder / "bench.toml"
    bench.write_text(head + 'profile = "t11_short_duty.toml"' + rest)
    return bench


def test_T11_passes_the_healthy_pcs(short_bench, tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T11", "--bench", str(short_bench), "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS  T11  test_T11_soc_management" in result.stdout
    rows = {r["name"]: r for r in measurement_rows(out)}
    judged = {"soc_drift", "soc_band_excursion", "reserve_soc_at_event", "reserve_power_before_sag",
              "stayed_connected", "active_power_recovery_time"}
    assert judged <= set(rows)
    assert all(rows[name]["clause"] for name in judged)
    assert abs(float(rows["soc_drift"]["value"])) < 1.0
    assert float(rows["energy_discharged"]["value"]) > 600.0          # the duty really cycled the battery
    assert float(rows["soc_lowest"]["value"]) < 21.0 and float(rows["soc_highest"]["value"]) > 79.0
    assert (out / "plots" / "test_T11_soc_management" / "soc_duty.png").exists()
    captures = out / "captures" / "test_T11_soc_management"
    assert {"dc_energy_count.parquet", "pcs_telemetry.parquet", "end_sag.parquet"} <= {p.name for p in captures.iterdir()}


def test_T11_fails_a_pcs_whose_soc_estimate_drifts(short_bench, tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T11", "--bench", str(short_bench), "--defect", "soc_drift", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "FAIL  T11  test_T11_soc_management" in result.stdout
    assert "the PCS's SOC estimate read" in result.stdout and "at most ±5 % is allowed" in result.stdout
    assert "soc_drift" in failed_measurements(out)
