"""The DC source's battery-emulation mode and the PCS's BMS limits, against closed forms.

Battery mode: terminal voltage = OCV(SOC) - R_int I, SOC by coulomb count against the
capacity. The DC-link step is a pure function on flat arrays, so the exact sums are checked
on it directly; the whole plant is checked against the same relations at its terminals.
The PCS's BMS limits shrink linearly near the SOC ends (PcsConfig taper points) and bound
what it asks of the battery; its telemetry and SunSpec 702 report them, the event log
names entry and exit.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.sim import kernel_emt as k
from bench.sim.plant import BatteryConfig, DcSourceConfig, PcsConfig, Plant, PlantConfig
from test_sim_modbus import addr, modbus_client, serving

CURVE = ((0.0, 780.0), (10.0, 860.0), (50.0, 900.0), (90.0, 940.0), (100.0, 980.0))


def ocv_closed_form(soc_pct: float) -> float:
    return float(np.interp(soc_pct, [s for s, _ in CURVE], [v for _, v in CURVE]))


# -- the DC-link step alone -------------------------------------------------------------------

def battery_link(capacity_ah: float, soc_pct: float, r_ohm: float, dt_s: float = 50e-6):
    """state, params of a DC link fed by the emulated battery (no bleed, no current limit)."""
    params = np.zeros(k.N_PARAMS)
    state = np.zeros(k.N_STATE)
    params[k.P_DT] = dt_s
    params[k.P_CDC] = 5e-3
    params[k.P_DC_BLEED_R] = 1e15
    params[k.P_DC_ON] = 1.0
    params[k.P_DC_MODE] = k.DC_MODE_BATTERY
    params[k.P_DC_ILIM_SRC] = params[k.P_DC_ILIM_SINK] = 1e6
    params[k.P_BAT_R] = r_ohm
    params[k.P_BAT_CAP_C] = capacity_ah * 3600.0
    params[k.P_SOC_DISCH_GAIN] = 1.0
    params[k.P_BAT_N_OCV] = len(CURVE)
    for i, (soc, v) in enumerate(CURVE):
        params[k.P_BAT_OCV_SOC + i], params[k.P_BAT_OCV_V + i] = soc, v
    state[k.S_BAT_SOC_PCT] = state[k.S_BAT_EST_PCT] = soc_pct
    state[k.S_VDC] = ocv_closed_form(soc_pct)
    return state, params


def test_ocv_interpolates_the_curve_and_holds_its_end_voltages():
    _, params = battery_link(10.0, 50.0, 0.05)
    for soc in (0.0, 5.0, 10.0, 37.5, 50.0, 89.9, 95.0, 100.0):
        assert k.battery_ocv_v(params, soc) == pytest.approx(ocv_closed_form(soc), abs=1e-9)
    assert k.battery_ocv_v(params, -3.0) == 780.0 and k.battery_ocv_v(params, 103.0) == 980.0


def test_coulomb_counted_soc_after_a_known_charge():
    # 100 A out of a 10 Ah battery for 2 s: 200 C of 36 000 C = 0.5556 % of its SOC
    state, params = battery_link(10.0, 60.0, 0.05)
    dt, n = params[k.P_DT], 40_000
    delivered_c = 0.0
    for _ in range(n):
        k.step_dc_link(state, params, 100.0)
        delivered_c += state[k.S_IDC_SRC] * dt
    assert delivered_c == pytest.approx(200.0, rel=1e-3)          # the link settled at once
    assert state[k.S_BAT_SOC_PCT] == pytest.approx(60.0 - delivered_c / 36_000.0 * 100.0, abs=1e-9)
    assert state[k.S_BAT_EST_PCT] == pytest.approx(state[k.S_BAT_SOC_PCT], abs=1e-12)
    # charging counts the other way
    for _ in range(n):
        k.step_dc_link(state, params, -100.0)
    assert state[k.S_BAT_SOC_PCT] == pytest.approx(60.0, abs=2e-3)


def test_terminal_voltage_is_ocv_minus_r_i_at_a_known_current():
    state, params = battery_link(1000.0, 50.0, 0.08)
    for current_a in (250.0, -180.0):
        for _ in range(2_000):                                    # ten link time constants
            k.step_dc_link(state, params, current_a)
        ocv = ocv_closed_form(state[k.S_BAT_SOC_PCT])
        assert state[k.S_IDC_SRC] == pytest.approx(current_a, rel=1e-6)
        assert state[k.S_VDC] == pytest.approx(ocv - 0.08 * current_a, abs=1e-3)


def test_soc_drift_defect_over_counts_discharge_in_battery_mode_too():
    state, params = battery_link(10.0, 60.0, 0.05)
    params[k.P_SOC_DISCH_GAIN] = 1.05
    for _ in range(20_000):
        k.step_dc_link(state, params, 100.0)
    used_true = 60.0 - state[k.S_BAT_SOC_PCT]
    used_estimated = 60.0 - state[k.S_BAT_EST_PCT]
    assert used_estimated == pytest.approx(1.05 * used_true, rel=1e-9)


# -- the plant ---------------------------------------------------------------------------------

def small_battery_plant(soc_pct: float, capacity_ah: float = 10.0, defects=()) -> Plant:
    battery = BatteryConfig(capacity_ah=capacity_ah, soc_pct=soc_pct, r_internal_ohm=0.05,
                            ocv_curve=CURVE)
    plant = Plant(PlantConfig(dc_source=DcSourceConfig(mode="battery", battery=battery),
                              defects=tuple(defects)))
    plant.pcs_settings.soc_min_pct, plant.pcs_settings.soc_max_pct = 0.0, 100.0  # no SOC manager
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.3)
    plant.pcs_command("start")
    plant.advance(0.5)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    return plant


def test_plant_battery_terminals_follow_ocv_minus_r_i_and_the_coulomb_count():
    plant = small_battery_plant(60.0)
    plant.pcs_settings.p_set_w = 150e3
    plant.advance(1.5)                                            # ramped and settled
    soc_before = plant.battery_soc_pct()
    dc = plant.dc_source_measurements()
    assert dc["mode"] == "battery" and dc["soc_pct"] == pytest.approx(soc_before, abs=1e-9)
    assert dc["voltage_v"] == pytest.approx(dc["ocv_v"] - 0.05 * dc["current_a"], abs=0.05)
    assert dc["current_a"] == pytest.approx(150e3 / dc["voltage_v"], rel=0.02)  # + PCS losses
    plant.advance(2.0)
    expected_drop_pct = dc["current_a"] * 2.0 / (10.0 * 3600.0) * 100.0
    assert soc_before - plant.battery_soc_pct() == pytest.approx(expected_drop_pct, rel=0.01)
    assert plant.pcs_telemetry()["soc_pct"] == pytest.approx(plant.battery_soc_pct(), abs=1e-9)


def test_discharge_limit_shrinks_near_empty_and_the_pcs_obeys_it():
    plant = small_battery_plant(5.0, capacity_ah=500.0)
    plant.pcs_settings.p_set_w = 250e3                            # asks for rated power
    plant.advance(1.5)
    tel = plant.pcs_telemetry()
    soc = tel["soc_pct"]
    assert tel["p_discharge_max_w"] == pytest.approx(250e3 * soc / 10.0, rel=1e-3)
    assert tel["p_charge_max_w"] == pytest.approx(250e3)
    assert tel["p_w"] == pytest.approx(tel["p_discharge_max_w"], rel=0.01)
    entries = [text for _, code, text in plant.pcs_events if code == "BMS_LIMIT"]
    assert entries and entries[0].startswith("discharge limit shrinking: SOC 5.0 %")


def test_charge_limit_shrinks_near_full():
    plant = small_battery_plant(95.0, capacity_ah=500.0)
    plant.pcs_settings.p_set_w = -250e3
    plant.advance(1.5)
    tel = plant.pcs_telemetry()
    assert tel["p_charge_max_w"] == pytest.approx(250e3 * (100.0 - tel["soc_pct"]) / 10.0, rel=1e-3)
    assert tel["p_w"] == pytest.approx(-tel["p_charge_max_w"], rel=0.01)
    assert tel["p_discharge_max_w"] == pytest.approx(250e3)


def bleed_deficit_pct(plant: Plant, seconds: float) -> float:
    """The most the DC link's own bleed resistor (a parasitic load the PCS does not control)
    can take out of the battery in ``seconds``, in % of its capacity."""
    v_max = max(v for _, v in plant.dc_battery().ocv_curve)
    bleed_c = v_max / plant.params[k.P_DC_BLEED_R] * seconds
    return bleed_c / (plant.dc_battery().capacity_ah * 3600.0) * 100.0


def test_the_pcs_never_drives_the_battery_past_empty_and_logs_leaving_the_taper():
    # 2 Ah: at rated power the taper's time constant is ~0.1 x 7 200 C x 800 V / 250 kW = 2.3 s
    plant = small_battery_plant(12.0, capacity_ah=2.0)
    plant.pcs_settings.p_set_w = 250e3
    lowest = 100.0
    for _ in range(40):
        plant.advance(0.5)
        lowest = min(lowest, float(plant.state[k.S_BAT_SOC_PCT]))
        tel = plant.pcs_telemetry()
        assert tel["p_w"] <= tel["p_discharge_max_w"] * 1.01 + 500.0
    # below empty only by the DC link's own bleed (0.45 A), not by the PCS (300 A for 20 s
    # would be 80 % of this battery); the reported SOC stops at 0
    assert lowest > -bleed_deficit_pct(plant, 20.0)
    assert plant.battery_soc_pct() >= 0.0
    assert plant.pcs_telemetry()["p_w"] < 0.01 * 250e3
    plant.pcs_settings.p_set_w = -100e3                           # recharge out of the taper
    plant.advance(30.0)
    texts = [text for _, code, text in plant.pcs_events if code == "BMS_LIMIT"]
    assert texts[0].startswith("discharge limit shrinking")
    assert texts[-1].startswith("discharge limit back to rated")


def test_voltage_mode_estimate_also_feeds_the_limits():
    plant = Plant(PlantConfig(pcs=PcsConfig(soc_initial_pct=3.0)))
    tel = plant.pcs_telemetry()
    assert tel["p_discharge_max_w"] == pytest.approx(0.3 * 250e3)
    assert plant.dc_source_measurements()["mode"] == "voltage"
    assert plant.dc_source_measurements()["soc_pct"] is None


def test_taper_points_are_pcs_config_fields():
    pcs = PcsConfig(bms_discharge_zero_soc_pct=5.0, bms_discharge_full_soc_pct=25.0)
    plant = Plant(PlantConfig(pcs=pcs, dc_source=DcSourceConfig(
        mode="battery", battery=BatteryConfig(soc_pct=15.0))))
    assert plant.pcs_telemetry()["p_discharge_max_w"] == pytest.approx(0.5 * 250e3)


def test_sunspec_702_reports_the_shrunken_rates():
    plant = small_battery_plant(95.0, capacity_ah=500.0)
    charge_max_w = plant.pcs_telemetry()["p_charge_max_w"]
    with serving(plant) as server, modbus_client(server) as client:
        def point(name: str) -> int:
            reply = client.read_holding_registers(addr(server, 702, name), count=1, device_id=1)
            return reply.registers[0]
        w_sf = point("W_SF")
        w_sf = w_sf - 0x10000 if w_sf & 0x8000 else w_sf
        assert point("WChaRteMax") * 10.0 ** w_sf == pytest.approx(charge_max_w, rel=0.01)
        assert point("WDisChaRteMax") * 10.0 ** w_sf == pytest.approx(250e3, rel=0.01)
        assert point("WChaRteMaxRtg") * 10.0 ** w_sf == pytest.approx(250e3, rel=0.01)


# -- refused inputs ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, complaint", [
    ({"ocv_curve": ((0.0, 800.0), (50.0, 790.0), (100.0, 900.0))}, "not monotonic"),
    ({"ocv_curve": ((0.0, 800.0), (0.0, 850.0))}, "SOC points must increase"),
    ({"ocv_curve": ((0.0, 800.0), (120.0, 850.0))}, "outside 0..100"),
    ({"ocv_curve": ((0.0, 800.0),)}, "2..16 points"),
    ({"ocv_curve": ((0.0, 800.0), (100.0, 800.0))}, "flat curve"),
    ({"r_internal_ohm": -0.01}, "r_internal_ohm must be > 0"),
    ({"r_internal_ohm": 0.0}, "r_internal_ohm must be > 0"),
    ({"capacity_ah": 0.0}, "capacity_ah must be > 0"),
    ({"capacity_ah": -5.0}, "capacity_ah must be > 0"),
    ({"soc_pct": 100.5}, "soc_pct must be within 0..100"),
    ({"soc_pct": -1.0}, "soc_pct must be within 0..100"),
])
def test_bad_battery_settings_are_refused_and_nothing_changes(kwargs, complaint):
    plant = Plant(PlantConfig())
    before = plant.dc_battery()
    params = plant.params.copy()
    with pytest.raises(ValueError, match=complaint):
        plant.set_dc_battery(soc_pct=20.0, **kwargs) if "soc_pct" not in kwargs \
            else plant.set_dc_battery(**kwargs)
    assert plant.dc_battery() == before
    np.testing.assert_array_equal(plant.params, params)


def test_bad_modes_and_configs_are_refused():
    plant = Plant(PlantConfig())
    with pytest.raises(ValueError, match="mode must be one of"):
        plant.set_dc_source(mode="current")
    with pytest.raises(ValueError, match="output_resistance_ohm must be >= 0"):
        plant.set_dc_source(output_resistance_ohm=-1.0)
    with pytest.raises(ValueError, match="dc_source.battery.capacity_ah"):
        Plant(PlantConfig(dc_source=DcSourceConfig(battery=BatteryConfig(capacity_ah=0.0))))
    with pytest.raises(ValueError, match="BMS tapers"):
        Plant(PlantConfig(pcs=PcsConfig(bms_discharge_full_soc_pct=0.0)))


def test_programmed_output_resistance_drops_the_voltage_in_voltage_mode():
    plant = small_battery_plant(50.0)
    plant.set_dc_source(mode="voltage", voltage_v=900.0, output_resistance_ohm=0.2)
    plant.pcs_settings.p_set_w = 100e3
    plant.advance(1.5)
    dc = plant.dc_source_measurements()
    r_total = plant.config.dc_source.r_internal_ohm + 0.2
    assert dc["voltage_v"] == pytest.approx(900.0 - r_total * dc["current_a"], abs=0.05)
    assert dc["mode"] == "voltage"


def test_phasor_mode_counts_and_limits_the_same_way():
    plant = small_battery_plant(12.0, capacity_ah=2.0)
    plant.set_fidelity("phasor", 5e-3)
    plant.pcs_settings.p_set_w = 250e3
    lowest = 100.0
    for _ in range(30):
        plant.advance(2.0)
        lowest = min(lowest, float(plant.state[k.S_BAT_SOC_PCT]))
        tel = plant.pcs_telemetry()
        assert tel["p_w"] <= tel["p_discharge_max_w"] * 1.01 + 500.0
    assert -bleed_deficit_pct(plant, 60.0) < lowest < 0.5
    dc = plant.dc_source_measurements()
    assert dc["voltage_v"] == pytest.approx(dc["ocv_v"] - 0.05 * dc["current_a"], abs=0.05)
    assert plant.pcs_telemetry()["soc_pct"] == pytest.approx(plant.battery_soc_pct(), abs=1e-9)
