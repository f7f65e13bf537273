"""The simulated SCPI instruments, the control endpoint and the launcher, over real sockets.

Deliberately talks plain pyvisa (and plain sockets), not the project's drivers in
`instruments/`: the two sides are written independently so that one cannot hide the
other's mistakes. The bench runs in lockstep in a background thread with its own asyncio
loop; plant time moves only through the control endpoint's `advance` op.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from sim_bench_helpers import BenchInThread, ControlClient

REPO_ROOT = Path(__file__).resolve().parents[1]
V_LN_NOM_V = 480.0 / math.sqrt(3.0)
PROBE_ATTENUATION = 100.0  # CH1..3: 100:1 differential probes on the PCC phases


@pytest.fixture(scope="module")
def bench():
    running = BenchInThread()
    yield running.bench
    running.close()


@pytest.fixture(scope="module")
def control(bench):
    client = ControlClient(bench.endpoints()["control"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def resource_manager():
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def open_instrument(resource_manager, bench, role: str):
    instrument = resource_manager.open_resource(bench.endpoints()["instruments"][role])
    instrument.read_termination = "\n"
    instrument.write_termination = "\n"
    instrument.timeout = 10_000
    return instrument


@pytest.fixture(scope="module")
def grid(resource_manager, bench):
    instrument = open_instrument(resource_manager, bench, "grid_simulator")
    yield instrument
    instrument.close()


@pytest.fixture(scope="module")
def dc(resource_manager, bench):
    instrument = open_instrument(resource_manager, bench, "dc_source")
    yield instrument
    instrument.close()


@pytest.fixture(scope="module")
def scope(resource_manager, bench):
    instrument = open_instrument(resource_manager, bench, "oscilloscope")
    instrument.write("HEADer OFF")
    yield instrument
    instrument.close()


def drain_errors(instrument) -> list[str]:
    errors = []
    while not (reply := instrument.query("SYST:ERR?")).startswith("0,"):
        errors.append(reply)
    return errors


# --- identity and the SCPI dialect -------------------------------------------------------


def test_each_instrument_identifies_as_its_model(grid, dc, scope):
    assert grid.query("*IDN?").startswith("AMETEK Programmable Power,MX45-3Pi-HV,")
    assert dc.query("*IDN?").startswith("Keysight Technologies,RP7962A,")
    assert scope.query("*IDN?").startswith("TEKTRONIX,MSO58,")


def test_unknown_command_pushes_undefined_header_and_the_queue_drains(grid):
    grid.write("*CLS")
    grid.write("VOLTage:BOGUS 12")
    assert grid.query("SYST:ERR?").startswith('-113,"Undefined header')
    assert grid.query("SYSTem:ERRor?") == '0,"No error"'


def test_missing_and_illegal_parameters_are_reported(grid):
    grid.write("*CLS")
    grid.write("VOLT")
    grid.write("INST:COUP SOME")
    errors = drain_errors(grid)
    assert errors[0].startswith('-109,"Missing parameter')
    assert errors[1].startswith('-224,"Illegal parameter value')


def test_short_long_forms_case_and_compound_messages(grid):
    grid.write("*RST;*CLS")
    grid.write(":INSTrument:COUPle ALL;:voltage:ac 120.5;:FREQuency 50")
    assert float(grid.query("VOLT:AC?")) == pytest.approx(120.5)
    assert float(grid.query("SOURce:VOLTage:LEVel:IMMediate:AMPLitude?")) == pytest.approx(120.5)
    assert [float(x) for x in grid.query("VOLT?;FREQ?").split(";")] == pytest.approx([120.5, 50.0])
    assert grid.query("*ESR?") == "0"
    assert drain_errors(grid) == []


def test_out_of_range_settings_are_refused_and_leave_the_setting(grid, dc, scope):
    grid.write("*RST;*CLS;VOLT 230")
    grid.write("VOLT 450")  # above the 400 V (L-N) high range of the MX -HV
    assert grid.query("SYST:ERR?").startswith('-222,"Data out of range')
    assert float(grid.query("VOLT?")) == pytest.approx(230.0)
    dc.write("*RST;*CLS")
    dc.write("VOLT 2000")  # above 102 % of the RP7962A's 950 V
    assert dc.query("SYST:ERR?").startswith('-222,"Data out of range')
    scope.write("*CLS")
    scope.write("HORizontal:MODE:RECOrdlength 100000000")  # MSO58 holds 62.5 Mpoints
    assert scope.query("SYST:ERR?").startswith('-222,"Data out of range')


def test_common_commands(dc):
    dc.write("*CLS")
    assert dc.query("*OPC?") == "1"
    dc.write("*OPC")
    assert int(dc.query("*ESR?")) & 1
    dc.write("NOT:A:COMMAND")
    assert int(dc.query("*ESR?")) & 32  # command error bit
    dc.write("*CLS")
    assert dc.query("SYST:ERR?") == '0,"No error"'


# --- the DC source drives the plant ------------------------------------------------------


def test_dc_source_setpoints_reach_the_plant(dc, control):
    dc.write("*RST;*CLS")
    dc.write("FUNC VOLT;VOLT 880;CURR:LIM 350;CURR:LIM:NEG -350;VOLT:PROT 960;OUTP ON")
    assert drain_errors(dc) == []
    control.advance(0.2)
    assert dc.query("OUTP?") == "1"
    assert float(dc.query("MEAS:VOLT?")) == pytest.approx(880.0, rel=0.02)
    dc.write("VOLT 920")
    assert dc.query("VOLT?") == "9.200000E+02"
    control.advance(0.2)
    assert float(dc.query("MEAS:VOLT?")) == pytest.approx(920.0, rel=0.02)
    assert drain_errors(dc) == []


def test_dc_overvoltage_protection_latches_until_cleared(dc):
    dc.write("*RST;*CLS;VOLT 900;VOLT:PROT 960;OUTP ON")
    dc.write("VOLT:PROT 850")  # below the output: trips
    assert dc.query("OUTP?") == "0"
    dc.write("VOLT:PROT 960;OUTP:PROT:CLE")
    assert dc.query("OUTP?") == "1"


# --- a list sag on the grid simulator, captured by the scope on its AUX trigger ----------


def cycle_rms(volts: np.ndarray, t_s: np.ndarray, t_from_s: float, t_to_s: float) -> float:
    window = (t_s >= t_from_s) & (t_s < t_to_s)
    return float(np.sqrt(np.mean(volts[window] ** 2)))


def test_list_sag_is_captured_by_the_scope_through_the_aux_trigger(grid, dc, scope, control):
    sag_depth_pu, sag_s, record_points, sample_rate_hz, pretrigger_pct = 0.5, 0.2, 50_000, 100_000.0, 20.0
    dc.write("*RST;VOLT 900;CURR:LIM 400;CURR:LIM:NEG -400;OUTP ON")
    grid.write(f"*RST;*CLS;INST:COUP ALL;VOLT:RANG 300;VOLT {V_LN_NOM_V:.2f};FREQ 60;OUTP ON")
    assert drain_errors(grid) == [] and drain_errors(dc) == []
    control.advance(0.3)

    scope.write("*CLS;HEADer OFF")
    for channel in (1, 2, 3):
        scope.write(f"CH{channel}:SCAle 1.0;CH{channel}:OFFSet 0;CH{channel}:POSition 0")
    scope.write(f"HORizontal:MODE MANual;HORizontal:MODE:SAMPLERate {sample_rate_hz:g};"
                f"HORizontal:MODE:RECOrdlength {record_points};HORizontal:POSition {pretrigger_pct:g}")
    scope.write("TRIGger:A:TYPe EDGE;TRIGger:A:EDGE:SOUrce AUX;TRIGger:A:EDGE:SLOpe RISe;TRIGger:A:MODe NORMal")
    scope.write("ACQuire:STOPAfter SEQuence;ACQuire:STATE ON")
    assert scope.query("TRIGger:STATE?") == "ARMED"  # pre-trigger still filling
    record_s = record_points / float(scope.query("HORizontal:MODE:SAMPLERate?"))
    control.advance(record_s * pretrigger_pct / 100.0 + 0.05)
    assert scope.query("TRIGger:STATE?") == "READY"

    grid.write(f"LIST:DWELl {sag_s},0.05;LIST:VOLTage {sag_depth_pu * V_LN_NOM_V:.2f},{V_LN_NOM_V:.2f};"
               "LIST:COUNt 1;VOLTage:MODE LIST;FREQuency:MODE FIX;TRIGger:TRANsient:SOURce IMM;INIT")
    assert drain_errors(grid) == []
    control.advance(record_s)
    assert scope.query("ACQuire:STATE?") == "0"
    assert scope.query("TRIGger:STATE?") == "SAVE"

    rms_pre, rms_sag, rms_after = [], [], []
    for channel in (1, 2, 3):
        scope.write(f"DATa:SOUrce CH{channel};DATa:ENCdg SRIbinary;WFMOutpre:BYT_Nr 2;"
                    f"DATa:STARt 1;DATa:STOP {record_points}")
        preamble = dict(zip(("XINCR", "XZERO", "PT_OFF", "YMULT", "YOFF", "YZERO", "NR_PT"),
                            map(float, scope.query("WFMOutpre:XINcr?;XZEro?;PT_Off?;YMUlt?;YOFf?;YZEro?;"
                                                   "NR_Pt?").split(";"))))
        codes = scope.query_binary_values("CURVe?", datatype="h", is_big_endian=False, container=np.array)
        assert codes.size == preamble["NR_PT"] == record_points
        volts = (codes - preamble["YOFF"]) * preamble["YMULT"] + preamble["YZERO"]
        t_s = preamble["XZERO"] + (np.arange(codes.size) - preamble["PT_OFF"]) * preamble["XINCR"]
        assert t_s[0] == pytest.approx(-record_s * pretrigger_pct / 100.0, abs=2.0 / sample_rate_hz)
        v_ln = volts * PROBE_ATTENUATION
        rms_pre.append(cycle_rms(v_ln, t_s, -5 / 60, 0.0))
        rms_sag.append(cycle_rms(v_ln, t_s, 3 / 60, 9 / 60))
        rms_after.append(cycle_rms(v_ln, t_s, sag_s + 3 / 60, sag_s + 9 / 60))  # list ended: last point holds

    for pre, sag, after in zip(rms_pre, rms_sag, rms_after):
        assert pre == pytest.approx(V_LN_NOM_V, rel=0.05)
        assert sag / pre == pytest.approx(sag_depth_pu, abs=0.08)
        assert after / pre == pytest.approx(1.0, abs=0.05)
    assert drain_errors(scope) == []


def test_edge_trigger_on_a_channel_captures_around_the_crossing(grid, scope, control):
    grid.write(f"*RST;INST:COUP ALL;VOLT {V_LN_NOM_V:.2f};FREQ 60;OUTP ON")
    control.advance(0.1)
    scope.write("*CLS;HEADer OFF;CH1:SCAle 1.0;CH1:OFFSet 0;CH1:POSition 0")
    scope.write("HORizontal:MODE MANual;HORizontal:MODE:SAMPLERate 50000;HORizontal:MODE:RECOrdlength 5000;"
                "HORizontal:POSition 50")
    scope.write("TRIGger:A:EDGE:SOUrce CH1;TRIGger:A:EDGE:SLOpe RISe;TRIGger:A:LEVel:CH1 0.0;"
                "TRIGger:A:MODe NORMal;ACQuire:STOPAfter SEQuence;ACQuire:STATE ON")
    assert scope.query("*OPC?") == "1"  # armed before plant time moves
    control.advance(0.25)
    assert scope.query("ACQuire:STATE?") == "0"
    scope.write("DATa:SOUrce CH1;DATa:ENCdg RIBinary;WFMOutpre:BYT_Nr 1;DATa:STARt 1;DATa:STOP 5000")
    x_zero_s, x_incr_s, y_mult, y_off, y_zero = map(
        float, scope.query("WFMOutpre:XZEro?;XINcr?;YMUlt?;YOFf?;YZEro?").split(";"))
    codes = scope.query_binary_values("CURVe?", datatype="b", is_big_endian=True, container=np.array)
    volts = (codes - y_off) * y_mult + y_zero
    trigger_index = int(round(-x_zero_s / x_incr_s))
    # a rising zero crossing of CH1 sits at the trigger point
    assert volts[trigger_index - 3] < 0.0 < volts[trigger_index + 3]


def test_scope_refuses_a_record_longer_than_its_memory_span(scope):
    scope.write("*CLS;HORizontal:MODE MANual;HORizontal:MODE:SAMPLERate 1e6;HORizontal:MODE:RECOrdlength 62500000")
    scope.write("ACQuire:STOPAfter SEQuence;ACQuire:STATE ON")  # 62.5 s at 1 MSa/s
    assert scope.query("SYST:ERR?").startswith('-221,"Settings conflict')
    assert scope.query("ACQuire:STATE?") == "0"
    scope.write("HORizontal:MODE:RECOrdlength 10000")


def test_scope_waveform_codes_clip_at_the_top_code(grid, scope, control):
    grid.write(f"*RST;INST:COUP ALL;VOLT {V_LN_NOM_V:.2f};FREQ 60;OUTP ON")
    scope.write("*CLS;HEADer OFF;CH1:SCAle 0.2;CH1:POSition 0;CH1:OFFSet 0")  # ±1 V screen, 3.9 V peak
    scope.write("HORizontal:MODE MANual;HORizontal:MODE:SAMPLERate 20000;HORizontal:MODE:RECOrdlength 2000;"
                "HORizontal:POSition 10;TRIGger:A:MODe AUTO;ACQuire:STOPAfter SEQuence;ACQuire:STATE ON")
    assert scope.query("*OPC?") == "1"
    control.advance(0.5)
    assert scope.query("ACQuire:STATE?") == "0"
    scope.write("DATa:SOUrce CH1;DATa:ENCdg SRIbinary;WFMOutpre:BYT_Nr 1;DATa:STARt 1;DATa:STOP 2000")
    codes = scope.query_binary_values("CURVe?", datatype="b", container=np.array)
    assert codes.max() == 127 and codes.min() == -128


# --- control endpoint --------------------------------------------------------------------


def test_control_time_advance_and_endpoints(control, bench):
    t0_s = control.request(op="time")["t_s"]
    t1_s = control.advance(0.25)
    assert t1_s == pytest.approx(t0_s + 0.25, abs=1e-4)
    endpoints = control.request(op="endpoints")
    assert endpoints["ok"] and endpoints["control"] == bench.endpoints()["control"]
    assert set(endpoints["instruments"]) == {"grid_simulator", "dc_source", "oscilloscope"}
    assert all(r.startswith("TCPIP::127.0.0.1::") and r.endswith("::SOCKET") for r in endpoints["instruments"].values())


def test_control_rejects_unknown_ops_and_bad_requests(control):
    assert control.request(op="teleport")["ok"] is False
    assert control.request(op="advance", dt_s=-1)["ok"] is False
    assert control.request(op="fault", what="meteor")["ok"] is False


# --- the launcher as a process -------------------------------------------------------------


def run_launcher(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, dict]:
    endpoints_file = tmp_path / "endpoints.json"
    process = subprocess.Popen([sys.executable, "-m", "bench.sim", "--endpoints-file", str(endpoints_file), *args],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120.0
    while not endpoints_file.exists():
        if process.poll() is not None:
            raise AssertionError(f"launcher exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("launcher did not write its endpoints file")
        time.sleep(0.1)
    return process, json.loads(endpoints_file.read_text())


def test_launcher_real_time_serves_until_shutdown(tmp_path, resource_manager):
    process, endpoints = run_launcher(tmp_path)
    try:
        assert set(endpoints) >= {"control", "instruments", "pcs"}
        grid = resource_manager.open_resource(endpoints["instruments"]["grid_simulator"],
                                              read_termination="\n", write_termination="\n", timeout=10_000)
        assert "MX45-3Pi" in grid.query("*IDN?")
        grid.close()
        control = ControlClient(endpoints["control"])
        refused = control.request(op="advance", dt_s=0.1)
        assert refused["ok"] is False and "real time" in refused["error"]
        assert control.request(op="time")["ok"]
        assert control.request(op="shutdown")["ok"]
        control.close()
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_launcher_exits_cleanly_on_sigint(tmp_path):
    process, _ = run_launcher(tmp_path, "--lockstep")
    try:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_launcher_refuses_an_unknown_defect_with_status_2():
    result = subprocess.run([sys.executable, "-m", "bench.sim", "--defect", "no_such_defect"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2
    assert "no_such_defect" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
