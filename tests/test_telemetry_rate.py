"""The simulated PCS reports telemetry as a real one does: a register image refreshed at its
own period (PcsConfig.telemetry_period_s, whole one-cycle windows), stamped with the
refresh instant, its one-cycle means through a first-order filter (telemetry_filter_s)
(bench/sim/kernel_telemetry.py); and T1's time-alignment estimate, which must not take the
refresh's quantisation for misalignment (bench.telemetry_check.stamp_misalignment_s).

Plant time only; every expected value is computed here from the PCS's own one-cycle
measurements (Plant.pcs_telemetry, the live probe) or in closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.sim import kernel_emt as k
from bench.sim.plant import Plant, PlantConfig, PcsConfig, telemetry_period_s
from bench.telemetry_check import (as_declared, clock_offset_s, distinct_device_samples, reference_from_waveforms,
                                   stamp_misalignment_s)

P_RATED_W = 250e3
F_NOM_HZ = 60.0
CYCLE_S = 1.0 / F_NOM_HZ
POLL_S = 0.013          # faster than the refresh and not a divisor of it (as T1 polls)
SIGNALS = ["pcc_va_v", "pcc_vb_v", "pcc_vc_v", "pcs_ia_a", "pcs_ib_a", "pcs_ic_a"]


def running_plant(**pcs) -> Plant:
    plant = Plant(PlantConfig(ring_s=3.0, pcs=PcsConfig(**pcs)))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.3)
    plant.pcs_settings.p_set_w = 0.5 * P_RATED_W
    plant.pcs_command("start")
    plant.advance(1.0)
    assert plant.pcs_telemetry_image()["state"] == "RUNNING"
    return plant


def poll(plant: Plant, duration_s: float, period_s: float = POLL_S,
         at: tuple[float, callable] | None = None) -> list[tuple[float, dict, dict]]:
    """(read time, image, live one-cycle measurement) every period_s; ``at``: (time from
    now, action) run once on the way."""
    reads = []
    t_end = plant.t_s + duration_s
    action_at = None if at is None else plant.t_s + at[0]
    while plant.t_s < t_end - 1e-9:
        if action_at is not None and plant.t_s >= action_at:
            at[1](plant)
            action_at = None
        reads.append((plant.t_s, plant.pcs_telemetry_image(), plant.pcs_telemetry()))
        plant.advance(min(period_s, t_end - plant.t_s))
    return reads


def test_the_default_refresh_is_100_ms_in_whole_cycles():
    assert telemetry_period_s(PcsConfig()) == pytest.approx(0.1)                      # 6 cycles at 60 Hz
    assert telemetry_period_s(PcsConfig(f_nom_hz=50.0)) == pytest.approx(0.1)         # 5 at 50 Hz
    assert telemetry_period_s(PcsConfig(telemetry_period_s=0.02)) == pytest.approx(CYCLE_S)   # at least one
    assert telemetry_period_s(PcsConfig(telemetry_period_s=0.05)) == pytest.approx(3 * CYCLE_S)


def test_a_reader_polling_faster_sees_each_image_again_stamped_at_its_refresh():
    plant = running_plant()
    period_s = telemetry_period_s(plant.config.pcs)
    reads = poll(plant, 1.0)
    stamps = np.array([image["t_s"] for _, image, _ in reads])
    distinct = np.unique(stamps)
    # one image per refresh: stamps on the refresh grid, one period apart
    assert np.diff(distinct) == pytest.approx(period_s, abs=1e-9)
    assert distinct / period_s == pytest.approx(np.round(distinct / period_s), abs=1e-6)
    # each read returns the newest image: stamped at or before the read, less than a period ago
    ages = np.array([t - image["t_s"] for t, image, _ in reads])
    assert ages.min() >= -1e-9 and ages.max() < period_s
    # repeated reads of one image return it unchanged, values and status alike
    for stamp in distinct[1:-1]:                   # the images read through a whole period
        same = [image for _, image, _ in reads if image["t_s"] == stamp]
        assert len(same) >= 7                      # 100 ms / 13 ms
        assert all(image == same[0] for image in same)


def test_a_step_shows_at_the_next_refresh_through_the_filter():
    """The image at each refresh is the first-order filter (per one-cycle window) of the
    PCS's own one-cycle means, computed here from those means."""
    plant = running_plant()
    tau_s = plant.config.pcs.telemetry_filter_s
    a = 1.0 - math.exp(-CYCLE_S / tau_s)
    step_after_s = 0.237                           # between two refreshes
    reads = poll(plant, 0.8, period_s=1e-3,
                 at=(step_after_s, lambda p: setattr(p.pcs_settings, "q_set_var", 0.2 * P_RATED_W)))
    t_step = reads[0][0] + step_after_s
    windows = {}                                   # window end -> the live one-cycle mean of Q
    for _, _, live in reads:
        windows[round(live["t_s"], 9)] = live["q_var"]
    ends = np.array(sorted(windows))
    assert np.diff(ends) == pytest.approx(CYCLE_S, abs=1e-9)      # no window missed
    images = {round(image["t_s"], 9): image["q_var"] for _, image, _ in reads}
    filtered = windows[ends[0]]                    # steady before the step
    checked = 0
    for end in ends[1:]:
        filtered += a * (windows[end] - filtered)
        if end in images:
            assert images[end] == pytest.approx(filtered, abs=1e-6 * P_RATED_W), end
            checked += 1
    assert checked >= 7
    # quantisation: until the first refresh after the step the image shows no change at all
    first_after = min(s for s in images if s > t_step)
    before = [image["q_var"] for t, image, _ in reads if t_step <= t < first_after]
    assert before and max(abs(q) for q in before) < 1e-3 * P_RATED_W
    assert images[first_after] > 0.5 * 0.2 * P_RATED_W


def test_without_a_filter_and_at_one_cycle_the_image_is_the_live_measurement():
    plant = running_plant(telemetry_period_s=CYCLE_S, telemetry_filter_s=0.0)
    for t, image, live in poll(plant, 0.3):
        if image["t_s"] == live["t_s"]:
            assert image["p_w"] == pytest.approx(live["p_w"], rel=1e-9)
            assert image["v_ln_rms_v"] == pytest.approx(live["v_ln_rms_v"], rel=1e-9)
            assert image["i_rms_a"] == pytest.approx(live["i_rms_a"], rel=1e-9)


def test_status_is_latched_with_the_image():
    plant = running_plant()
    plant.advance(0.03)                            # between two refreshes
    plant.pcs_command("stop")
    plant.advance(0.01)
    assert plant.pcs_telemetry()["state"] == "OFF"                  # the PCS itself knows
    image = plant.pcs_telemetry_image()
    assert image["state"] == "RUNNING" and image["t_s"] < plant.t_s  # its registers: not yet
    plant.advance(telemetry_period_s(plant.config.pcs))
    assert plant.pcs_telemetry_image()["state"] == "OFF"


@pytest.mark.parametrize("name, value", [("telemetry_period_s", 0.0), ("telemetry_period_s", -0.1),
                                         ("telemetry_filter_s", -0.01), ("telemetry_filter_s", float("nan"))])
def test_impossible_telemetry_settings_are_refused(name, value):
    with pytest.raises(ValueError, match=f"pcs.{name}"):
        Plant(PlantConfig(pcs=PcsConfig(**{name: value})))


def test_the_timestamp_lag_defect_serves_images_120_ms_late():
    plant = Plant(PlantConfig(ring_s=2.0, defects=("telemetry_timestamp_lag",)))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(1.0)
    reads = poll(plant, 1.0)
    ages = np.array([t - image["t_s"] for t, image, _ in reads])
    assert ages.min() >= 0.120 - 1e-9
    assert ages.min() < 0.120 + 0.002                                # the freshest read sees 120 ms
    assert ages.max() < 0.120 + telemetry_period_s(plant.config.pcs)


# ------------------------------------------------------------------ T1's alignment estimate

def _step_reference(step_s: float, ramp_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A sliding one-cycle mean (stamped at window ends) of a 0 -> 1 ramp of ramp_s."""
    t = np.arange(0.0, 2.0, CYCLE_S / 20)
    fine = np.arange(-CYCLE_S, 2.0, 1e-5)
    x = np.clip((fine - step_s) / ramp_s, 0.0, 1.0) if ramp_s > 0 else (fine >= step_s).astype(float)
    cum = np.concatenate(([0.0], np.cumsum(x) * 1e-5))
    window = int(round(CYCLE_S / 1e-5))
    idx = np.searchsorted(fine, t)
    mean = (cum[idx + 1] - cum[np.maximum(idx + 1 - window, 0)]) / CYCLE_S
    return t, mean


@pytest.mark.parametrize("step_phase", [0.0, 0.17, 0.41, 0.66, 0.93])
@pytest.mark.parametrize("stale_s", [0.0, 0.120, -0.004])
def test_alignment_of_a_100_ms_refresh_is_its_stamps_not_its_quantisation(step_phase, stale_s):
    """A PCS refreshing every 100 ms with a 30 ms filter: wherever the step falls between
    two refreshes the estimate is the stamps' true shift (0, 120 ms stale, 4 ms early),
    where the halfway crossing of its samples would be off by tens of ms."""
    period_s, filter_s = 0.1, 0.03
    step_s = 1.0 + step_phase * period_s
    t, ref = _step_reference(step_s, ramp_s=0.05)
    stamps = np.arange(0.5, 1.9, period_s)
    reported = 3.0 + 2.0 * as_declared(t, ref, stamps - stale_s, window_s=CYCLE_S, filter_s=filter_s)  # gain, offset
    shift = stamp_misalignment_s(t, ref, stamps, reported, window_s=CYCLE_S, filter_s=filter_s, after_s=0.6,
                                 max_shift_s=0.3)
    assert shift == pytest.approx(stale_s, abs=5e-4)


def test_alignment_is_none_for_a_flat_channel():
    t, ref = _step_reference(1.03, ramp_s=0.0)
    stamps = np.arange(0.5, 1.9, 0.1)
    assert stamp_misalignment_s(t, ref, stamps, np.full(stamps.size, 7.0), window_s=CYCLE_S, filter_s=0.03,
                                after_s=0.6, max_shift_s=0.3) is None


def test_the_plants_image_aligns_with_the_bench_reference_to_its_stamps():
    """End to end at plant level: the PCS's image, read every 13 ms across a Q step, against
    the one-cycle reference computed from the scope ring, through the declared filter."""
    plant = running_plant()
    t0 = plant.t_s
    reads = poll(plant, 1.2, at=(0.6123, lambda p: setattr(p.pcs_settings, "q_set_var", 0.1 * P_RATED_W)))
    read_t = np.array([t for t, _, _ in reads])
    stamps = np.array([image["t_s"] for _, image, _ in reads])
    q = np.array([image["q_var"] for _, image, _ in reads])
    offset_s = clock_offset_s(read_t[read_t < t0 + 0.6], stamps[read_t < t0 + 0.6])
    assert 0.0 <= offset_s < 0.005                # reads at 13 ms find an image a few ms old
    n = int(round(1.2 * plant.sample_rate_hz))
    x = plant.read_ring(SIGNALS, t0, n)
    reference = reference_from_waveforms(t0, x[:3], x[3:], sample_rate_hz=plant.sample_rate_hz, f_nominal_hz=F_NOM_HZ,
                                         window_cycles=1, step_fraction=0.05, source="scope ring")
    pcs_t, pcs_q = distinct_device_samples(stamps, q)
    shift = stamp_misalignment_s(reference.t_s, reference.values["q_var"], pcs_t + offset_s, pcs_q,
                                 window_s=CYCLE_S, filter_s=plant.config.pcs.telemetry_filter_s, after_s=t0 + 0.2,
                                 max_shift_s=0.3)
    assert abs(shift - offset_s) < 1e-3           # what is left is the offset estimate's own error
