"""The PCS's reactive-power setpoint ramp (PcsSettings.q_ramp_var_per_s; vendor point
var_ramp, 41046, docs/vendor_points_vpcs.md): 0 keeps the setpoint a step, a rate moves the
reference linearly; volt-var hands over to the setpoint along the ramp. Plant time only:
the reactive power is the PCS's own one-cycle measurement, read once per cycle.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymodbus.constants import ExcCodes

from bench.sim.plant import Plant, PlantConfig
from bench.sim.recorder import recorder_for
from bench.sim.vendor_block import VendorBlock, WriteRejected

P_RATED_W = 250e3
CYCLE_S = 1.0 / 60.0
VAR_RAMP_ADDR = 41046


def running_plant(**settings) -> Plant:
    plant = Plant(PlantConfig(ring_s=2.0))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.3)
    plant.pcs_settings.p_set_w = 0.5 * P_RATED_W
    for name, value in settings.items():
        setattr(plant.pcs_settings, name, value)
    plant.pcs_command("start")
    plant.advance(1.0)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    return plant


def q_per_cycle(plant: Plant, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(end of each one-cycle window from now, its mean Q) over duration_s."""
    t0 = plant.t_s
    rows = []
    for _ in range(int(round(duration_s / CYCLE_S))):
        plant.advance(CYCLE_S)
        tel = plant.pcs_telemetry()
        rows.append((tel["t_s"] - t0, tel["q_var"]))
    t, q = np.array(rows).T
    return t, q


def test_without_a_ramp_the_setpoint_is_a_step():
    plant = running_plant()
    assert plant.pcs_settings.q_ramp_var_per_s == 0.0             # the default
    plant.pcs_settings.q_set_var = 0.3 * P_RATED_W
    t, q = q_per_cycle(plant, 0.2)
    # the first whole window after the change already carries it (current loop ~1 ms)
    assert q[t > 2 * CYCLE_S] == pytest.approx(0.3 * P_RATED_W, rel=5e-3)


@pytest.mark.parametrize("target_pu, rate_pu_per_s", [(0.3, 0.5), (-0.2, 1.0)])
def test_a_ramp_moves_q_linearly_at_the_set_rate(target_pu, rate_pu_per_s):
    plant = running_plant(q_ramp_var_per_s=rate_pu_per_s * P_RATED_W)
    plant.pcs_settings.q_set_var = target_pu * P_RATED_W
    ramp_s = abs(target_pu) / rate_pu_per_s
    t, q = q_per_cycle(plant, ramp_s + 0.3)
    on_ramp = (t > 2 * CYCLE_S) & (t < ramp_s - CYCLE_S)
    slope_w_per_s, _ = np.polyfit(t[on_ramp], q[on_ramp], 1)
    assert slope_w_per_s == pytest.approx(np.sign(target_pu) * rate_pu_per_s * P_RATED_W, rel=0.01)
    assert np.all(np.abs(q[t < ramp_s - CYCLE_S]) < abs(target_pu) * P_RATED_W * 0.99)
    assert q[t > ramp_s + 2 * CYCLE_S] == pytest.approx(target_pu * P_RATED_W, rel=5e-3)


def test_switching_volt_var_off_ramps_from_its_output_to_the_setpoint():
    plant = running_plant(vv_enabled=True, vv_olrt_s=0.1, q_ramp_var_per_s=0.5 * P_RATED_W)
    plant.set_source(v_ln_rms_v=0.92 * 480 / np.sqrt(3.0))       # volt-var injects here
    plant.advance(1.0)
    q_vv = plant.pcs_telemetry()["q_var"]
    assert q_vv > 0.1 * P_RATED_W
    plant.pcs_settings.vv_enabled = False                           # setpoint 0 var
    t, q = q_per_cycle(plant, 0.2)
    # no jump to the setpoint: from volt-var's output down at 0.5 pu/s
    assert q[0] > 0.9 * q_vv
    assert q[-1] == pytest.approx(q_vv - 0.5 * P_RATED_W * t[-1], abs=0.02 * P_RATED_W)


def test_a_negative_ramp_is_refused_before_anything_applies():
    plant = running_plant()
    plant.pcs_settings.q_ramp_var_per_s = -1.0
    with pytest.raises(ValueError, match="q_ramp_var_per_s must be >= 0"):
        plant.advance(0.01)


def test_the_vendor_point_sets_and_reads_the_ramp_in_percent_per_second():
    plant = running_plant()
    block = VendorBlock(plant, recorder_for(plant))
    block.write(VAR_RAMP_ADDR, [125])                               # 12.5 %/s of 250 kVA
    assert plant.pcs_settings.q_ramp_var_per_s == pytest.approx(0.125 * P_RATED_W)
    registers = [0] * 50
    block.refresh(registers, 41000, VAR_RAMP_ADDR, 1)
    assert registers[VAR_RAMP_ADDR - 41000] == 125
    block.write(VAR_RAMP_ADDR, [0])                                 # back to a step
    assert plant.pcs_settings.q_ramp_var_per_s == 0.0
    with pytest.raises(WriteRejected) as refused:
        block.write(VAR_RAMP_ADDR, [10001])
    assert refused.value.code == ExcCodes.ILLEGAL_VALUE
    assert plant.pcs_settings.q_ramp_var_per_s == 0.0
