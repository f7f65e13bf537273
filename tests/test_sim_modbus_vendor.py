"""The simulated PCS's vendor block 41000-41049, checked against docs/vendor_points_vpcs.md
from the outside with pymodbus's client: live reads, writes reaching the plant, the
exception codes the manual promises, and a walk through the event log."""

from __future__ import annotations

import logging

import pytest
from pymodbus.client import ModbusTcpClient

from bench.sim import vendor_block
from bench.sim.plant import Plant
from test_sim_modbus import exception_code, modbus_client, new_plant, serving

ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 0x02, 0x03, 0x04
# first/last of the two contiguous runs of listed points
EVENT_RUN = (41000, 38)          # 41000..41037
RECORD_RUN = (41040, 6)          # 41040..41045


def read(client: ModbusTcpClient, address: int, count: int = 1) -> list[int]:
    response = client.read_holding_registers(address, count=count, device_id=1)
    assert not response.isError(), response
    return response.registers


def u32(regs: list[int]) -> int:
    return (regs[0] << 16) | regs[1]


def s16(reg: int) -> int:
    return reg - 0x10000 if reg >= 0x8000 else reg


def running_plant() -> Plant:
    plant = new_plant()
    plant.advance(0.5)
    plant.pcs_settings.p_set_w = 50e3
    plant.pcs_command("start")
    plant.advance(1.0)
    return plant


def test_reads_show_settings_telemetry_and_manual_layout():
    plant = running_plant()
    with serving(plant) as server, modbus_client(server) as client:
        regs = read(client, *EVENT_RUN)
        by_addr = {41000 + i: r for i, r in enumerate(regs)}
        assert by_addr[41000] == 1                                   # map_version
        assert by_addr[41001] == 0                                   # GRID_FOLLOWING
        assert by_addr[41002] == 1                                   # limit priority Q
        assert by_addr[41003] == 200                                 # k 2.00
        assert by_addr[41004] == 1                                   # DVS enabled
        assert by_addr[41005] == 100                                 # deadband 0.100 pu
        assert (by_addr[41006], by_addr[41007]) == (500, 500)       # droops 5.00 %
        assert (by_addr[41008], by_addr[41009], by_addr[41010]) == (200, 200, 100)
        assert (by_addr[41011], by_addr[41012]) == (0, 200)         # smoothing off, 20.0 %/s
        assert (by_addr[41013], by_addr[41014], by_addr[41015]) == (200, 800, 0)
        assert u32(regs[16:18]) == 0 and by_addr[41018] == 20        # dr_target 0 W, dr_time 2.0 s
        assert (by_addr[41019], by_addr[41020], by_addr[41021]) == (0, 0, 0)
        telemetry = plant.pcs_telemetry_image()                     # what the registers serve
        assert by_addr[41022] == 2                                   # RUNNING
        assert (by_addr[41023], by_addr[41024], by_addr[41025]) == (0, 0, 0)
        assert u32(regs[26:28]) == round(telemetry["t_s"] * 1000)    # PCS clock, ms
        assert by_addr[41028] == pytest.approx(telemetry["vdc_v"] * 10, abs=1)
        assert s16(by_addr[41029]) == pytest.approx(telemetry["idc_a"] * 10, abs=1)
        assert s16(by_addr[41030]) == pytest.approx(telemetry["temperature_c"] * 10, abs=1)
        assert by_addr[41031] == len(plant.pcs_events)
        assert by_addr[41032] == 0 and by_addr[41037] == 0
        assert read(client, *RECORD_RUN) == [0, 0, 0, 0, 0, 0]        # no disturbance yet
        # FC4 reads the same image
        assert client.read_input_registers(41000, count=22, device_id=1).registers == regs[:22]
        # unlisted addresses answer 02, also inside an otherwise good read
        for address, count in ((41038, 1), (41039, 1), (41047, 3), (41000, 50), (40990, 12)):
            response = client.read_holding_registers(address, count=count, device_id=1)
            assert exception_code(response) == ILLEGAL_ADDRESS, (address, count)


def test_writes_reach_the_plant_and_are_logged(caplog):
    plant = new_plant()
    caplog.set_level(logging.INFO, logger="bench.sim.modbus_pcs")
    with serving(plant) as server, modbus_client(server) as client:
        # one FC16 across 41001..41015: GFM VSM, mixed priority, k 3.5, DVS off, deadband
        # 0.05, droops 4 % / 3 %, H 5 s, D 50 pu, X 0.2 pu, smoothing on at 10 %/s, SOC 15-90 %,
        # smoothing first
        values = [2, 2, 350, 0, 50, 400, 300, 500, 500, 200, 1, 100, 150, 900, 2]
        assert not client.write_registers(41001, values, device_id=1).isError()
        s = plant.pcs_settings
        assert (s.control_mode, s.limit_priority, s.dvs_enabled) == ("GFM_VSM", "mixed", False)
        assert s.k_factor == pytest.approx(3.5)
        assert s.dvs_deadband_pu == pytest.approx(0.05)
        assert (s.droop_f_pct, s.droop_v_pct) == (pytest.approx(4.0), pytest.approx(3.0))
        assert (s.vsm_inertia_h_s, s.vsm_damping_pu, s.virtual_x_pu) == \
            (pytest.approx(5.0), pytest.approx(50.0), pytest.approx(0.2))
        assert s.smoothing_enabled and s.smoothing_ramp_pu_per_s == pytest.approx(0.10)
        assert (s.soc_min_pct, s.soc_max_pct) == (pytest.approx(15.0), pytest.approx(90.0))
        assert s.mission_priority == "SMOOTHING"
        assert read(client, 41001, 15) == values                     # read back as written

        # FC6 on a single register; int32 dispatch target, high word first
        assert not client.write_register(41001, 1, device_id=1).isError()
        assert s.control_mode == "GFM_DROOP"
        target = client.convert_to_registers(-120_000, client.DATATYPE.INT32)
        assert not client.write_registers(41016, target + [55], device_id=1).isError()
        assert (s.dr_target_w, s.dr_time_s) == (-120_000.0, pytest.approx(5.5))
        assert read(client, 41016, 2) == target
    assert "modbus write at 41001: [2, 2, 350, 0, 50, 400, 300, 500, 500, 200, 1, 100, 150, 900, 2]" \
        in caplog.messages
    assert "modbus write at 41016: [%d, %d, 55]" % tuple(target) in caplog.messages
    plant.advance(0.01)          # the plant accepts what the device wrote


def test_dispatch_command_reaches_the_plant_in_one_request():
    plant = running_plant()
    with serving(plant) as server, modbus_client(server) as client:
        regs = client.convert_to_registers(80_000, client.DATATYPE.INT32) + [10, 1]   # 1.0 s, execute
        assert not client.write_registers(41016, regs, device_id=1).isError()
        assert read(client, 41019) == [0]                            # a command reads 0
        assert plant.pcs_settings.dr_target_w == 80_000.0
        assert any(code == "CMD" and text.startswith("dr_execute") for _, code, text in plant.pcs_events)
        plant.advance(1.2)
        assert plant.pcs_telemetry()["p_w"] == pytest.approx(80e3, rel=0.02)


def test_illegal_writes_answer_the_manual_exceptions(monkeypatch):
    plant = new_plant()
    before = dict(vars(plant.pcs_settings))
    with serving(plant) as server, modbus_client(server) as client:
        def code_of(address: int, values: list[int]) -> int | None:
            if len(values) == 1:
                return exception_code(client.write_register(address, values[0], device_id=1))
            return exception_code(client.write_registers(address, values, device_id=1))

        # read-only points, unlisted addresses, half of an int32, a span into read-only points
        for address, values in ((41000, [1]), (41022, [0]), (41031, [5]), (41038, [0]),
                                (41047, [0]), (41016, [0]), (41017, [0]), (41020, [1, 0, 0])):
            assert code_of(address, values) == ILLEGAL_ADDRESS, address
        # outside the range or enumeration
        for address, values in ((41001, [3]), (41002, [7]), (41003, [1001]), (41004, [2]),
                                (41005, [201]), (41006, [49]), (41007, [1001]), (41008, [9]),
                                (41009, [2001]), (41010, [501]), (41012, [0]), (41013, [1001]),
                                (41015, [3]), (41018, [0]), (41018, [6001]), (41019, [2]),
                                (41021, [2]), (41032, [0]), (41032, [60000]), (41041, [1]),
                                (41046, [10001])):
            assert code_of(address, values) == ILLEGAL_VALUE, (address, values)
        beyond_wmax = client.convert_to_registers(250_001, client.DATATYPE.INT32)
        assert code_of(41016, beyond_wmax) == ILLEGAL_VALUE
        # soc_min must stay below soc_max, alone or together
        assert code_of(41013, [800]) == ILLEGAL_VALUE
        assert code_of(41013, [500, 400]) == ILLEGAL_VALUE
        # one bad value refuses the whole request
        assert code_of(41001, [1, 1, 5000]) == ILLEGAL_VALUE
        assert dict(vars(plant.pcs_settings)) == before

        # a command the plant cannot carry out answers 04 and changes nothing
        known = vendor_block.known_plant_commands() - {"black_start"}
        monkeypatch.setattr(vendor_block, "known_plant_commands", lambda: known)
        assert code_of(41020, [1]) == DEVICE_FAILURE
        assert not any(code == "CMD" for _, code, _ in plant.pcs_events)
        # writing 0 to a command point does nothing and is fine
        assert code_of(41020, [0]) is None
        # the server still answers
        assert read(client, 41000) == [1]


def test_event_log_walk_matches_the_plant_log():
    plant = running_plant()
    nominal_ln_v = 480.0 / 3 ** 0.5
    plant.set_source(v_ln_rms_v=[0.3 * nominal_ln_v] * 3)             # momentary cessation, then trip
    plant.advance(2.5)
    log = plant.pcs_events
    assert any(code == "TRIP" for _, code, _ in log)
    with serving(plant) as server, modbus_client(server) as client:
        count = read(client, 41031)[0]
        assert count == len(log)
        walked = []
        for index in range(1, count + 1):
            assert not client.write_register(41032, index, device_id=1).isError()
            regs = read(client, 41032, 6)
            assert regs[0] == index
            walked.append((u32(regs[1:3]), regs[3], s16(regs[4]), regs[5]))
    codes = {"STATE": 1, "TRIP": 2, "LIMIT_ENTER": 3, "LIMIT_EXIT": 4, "RT_ENTER": 5, "RT_EXIT": 6,
             "MC_ENTER": 7, "MC_EXIT": 8, "CMD": 10}
    states = {"OFF": 0, "STARTING": 1, "RUNNING": 2, "MOMENTARY_CESSATION": 3, "TRIPPED": 4}
    for (t_ms, code, value, reserved), (t_s, plant_code, text) in zip(walked, log):
        assert t_ms == round(t_s * 1000)
        assert code == codes[plant_code], plant_code
        assert reserved == 0
        if plant_code == "STATE":
            assert value == states[text]
        elif plant_code == "TRIP":
            assert value == 1                                        # LV must-trip
        else:
            assert value == 0
    assert [w[1] for w in walked].count(1) >= 4                      # STARTING, RUNNING, MC, TRIPPED
