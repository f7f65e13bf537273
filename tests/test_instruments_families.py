"""The second product family of each role, against in-test fake instruments.

Keysight InfiniiVision scope, Chroma 61800 grid simulator, Chroma 62000P DC source and the
Chroma 63800 AC load: the command sequences the manuals describe, preambles decoded with
known answers, and limits refused before anything reaches the instrument. Also the fast
socket path of the SCPI layer's block reader against the generic VISA path.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from instruments.ac_load import AcLoad, LoadProfile
from instruments.dc_source import BatteryEmulation, NoBatteryEmulation
from instruments.errors import IdentityError, InstrumentError, LimitError
from instruments.grid_simulator import GridSegment, NoProgrammableImpedance, OutputImpedance
from instruments.registry import DRIVERS, driver_families, open_instrument
from test_instruments import KNOWN_CODES, FakeInstrument, block, fakes, rm  # noqa: F401 (fixtures)

KS_IDN = "KEYSIGHT TECHNOLOGIES,DSOX3034T,MY12345678,07.50.2021102830"
ASTERION_IDN = "AMETEK Programmable Power,AST6003-HV,AST0001,2.1.0"
CHROMA_GRID_IDN = "Chroma ATE,61845,618450001,1.00,1.01,1.02"
CHROMA_DC_IDN = "Chroma ATE,62150P-1000-15,62150001,1.20"
CHROMA_DC_D_IDN = "Chroma ATE,62180D-1200,62180001,1.20"      # a bidirectional 62000D
CHROMA_LOAD_IDN = "Chroma ATE,63803,638030001,1.00"
N8900_IDN = "Keysight Technologies,N8957A,MY61000001,A.02.01"
RP_DC_IDN = "Keysight Technologies,RP7962A,MY59000001,B.03.02.1232"

# a 6-point WORD record: format 1, type 0, 6 points, count 1, xinc 1 µs, xorig −2 µs, xref 0,
# yinc 1 mV, yorig 0.5 V, yref 10 (codes)
KS_PREAMBLE = "+1,+0,+6,+1,+1.00000000E-06,-2.00000000E-06,+0,+1.00000000E-03,+5.00000000E-01,+10"


def ks_replies(**overrides):
    replies = {"*IDN?": KS_IDN, ":WAVEFORM:PREAMBLE?": KS_PREAMBLE, ":TER?": "+0",
               ":ACQUIRE:POINTS?": "6", ":ACQUIRE:SRATE?": "+1.0E+06",
               ":WAVEFORM:DATA?": block(KNOWN_CODES.tobytes())}
    replies.update({k.upper(): v for k, v in overrides.items()})
    return replies


def _open(fakes, rm, role, driver, replies, **kwargs):
    fake = fakes(replies)
    instrument = open_instrument(role, driver, fake.resource, resource_manager=rm,
                                 timeout_s=kwargs.pop("timeout_s", 0.5), **kwargs)
    return fake, instrument


# -- registry ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, role", [
    ("keysight_infiniivision", "oscilloscope"), ("chroma_61800", "grid_simulator"),
    ("chroma_62000p", "dc_source"), ("chroma_63800", "ac_load"), ("keysight_n8900", "dc_source"),
    ("ametek_asterion", "grid_simulator"),
])
def test_new_drivers_are_registered_with_role_and_identity_patterns(name, role):
    assert DRIVERS[name].ROLE == role
    family = driver_families()[name]
    assert family["role"] == role and family["manufacturers"] and family["models"]


def test_a_chroma_dc_source_at_the_grid_simulator_address_is_refused(fakes, rm):
    fake = fakes({"*IDN?": CHROMA_DC_IDN})
    with pytest.raises(IdentityError, match="62150P"):
        open_instrument("grid_simulator", "chroma_61800", fake.resource, resource_manager=rm)


def test_ac_load_driver_is_not_a_dc_source(rm):
    with pytest.raises(InstrumentError, match="drives a ac_load, not a dc_source"):
        open_instrument("dc_source", "chroma_63800", "TCPIP::127.0.0.1::5025::SOCKET",
                        resource_manager=rm)


# -- Keysight InfiniiVision --------------------------------------------------------------------

def test_infiniivision_channel_count_comes_from_the_model(fakes, rm):
    _, scope = _open(fakes, rm, "oscilloscope", "keysight_infiniivision", ks_replies())
    assert scope.channel_count == 4
    scope.close()
    _, scope = _open(fakes, rm, "oscilloscope", "keysight_infiniivision",
                     ks_replies(**{"*IDN?": "AGILENT TECHNOLOGIES,DSO-X 3012A,MY1,02.41"}))
    assert scope.channel_count == 2
    scope.close()


def test_infiniivision_single_shot_sequence(fakes, rm):
    fake, scope = _open(fakes, rm, "oscilloscope", "keysight_infiniivision",
                        ks_replies(**{":OPERegister:CONDition?": ["+8", "+8", "+0"]}))
    start = len(fake.settled())
    scope.configure_channel(2, 2.0, offset_v=0.5)
    scope.configure_acquisition(1e6, 100_000, 0.25)       # 0.1 s window → 10 ms/div
    scope.trigger_external(level_v=1.5, slope="rise")
    scope.arm_single()
    assert scope.is_acquisition_complete() is False
    assert scope.is_acquisition_complete() is False
    assert scope.is_acquisition_complete() is True
    sent = fake.settled()[start:]
    expected = [":CHANnel2:PROBe 1", ":CHANnel2:SCALe 2", ":CHANnel2:OFFSet 0.5",
                ":CHANnel2:DISPlay ON", ":ACQuire:TYPE NORMal", ":TIMebase:REFerence LEFT",
                ":TIMebase:SCALe 0.01", ":TIMebase:POSition -0.025", ":TRIGger:MODE EDGE",
                ":TRIGger:EDGE:SOURce EXTernal", ":TRIGger:EDGE:LEVel 1.5",
                ":TRIGger:EDGE:SLOPe POSitive", ":TRIGger:SWEep NORMal", ":TER?", ":SINGle"]
    positions = [sent.index(command) for command in expected]
    assert positions == sorted(positions)                 # in the manual's order
    assert "SYST:ERR?" in sent[sent.index(":TRIGger:SWEep NORMal"):]     # errors drained
    scope.trigger_edge(3, -0.2, "fall")
    sent = fake.settled()
    assert ":TRIGger:EDGE:SOURce CHANnel3" in sent and ":TRIGger:EDGE:SLOPe NEGative" in sent
    scope.close()


def test_infiniivision_known_word_record_decodes_to_exact_volts_and_times(fakes, rm):
    fake, scope = _open(fakes, rm, "oscilloscope", "keysight_infiniivision", ks_replies())
    scope.configure_acquisition(1e6, 6 * 100, 0.0)        # asks RAW points for 600
    wave = scope.read_waveform(4)
    expected_volts = (KNOWN_CODES.astype(float) - 10) * 1e-3 + 0.5
    np.testing.assert_allclose(wave.volts, expected_volts, rtol=1e-6)
    np.testing.assert_array_equal(wave.t_s, np.arange(6) * 1e-6 - 2e-6)
    assert wave.volts[-1] == (32767 - 10) * 1e-3 + 0.5
    assert wave.sample_rate_hz == pytest.approx(1e6)
    assert wave.trigger_index == 2 and wave.t_s[2] == 0.0
    sent = fake.settled()
    for command in (":WAVeform:SOURce CHANnel4", ":WAVeform:FORMat WORD",
                    ":WAVeform:BYTeorder LSBFirst", ":WAVeform:UNSigned OFF",
                    ":WAVeform:POINts:MODE RAW", ":WAVeform:POINts 600", ":WAVeform:DATA?"):
        assert command in sent
    assert sent.index(":WAVeform:PREamble?") < sent.index(":WAVeform:DATA?")
    scope.close()


def test_infiniivision_x_reference_shifts_the_time_axis(fakes, rm):
    # xreference 3, xorigin +1 µs: point 3 is at +1 µs, so the trigger (t = 0) is point 2
    preamble = "1,0,6,1,1.0E-6,1.0E-6,3,2.0E-3,-1.0,0"
    _, scope = _open(fakes, rm, "oscilloscope", "keysight_infiniivision",
                     ks_replies(**{":WAVeform:PREamble?": preamble}))
    wave = scope.read_waveform(1)
    np.testing.assert_allclose(wave.t_s, (np.arange(6) - 3) * 1e-6 + 1e-6, rtol=0, atol=1e-18)
    assert wave.trigger_index == 2
    np.testing.assert_allclose(wave.volts, KNOWN_CODES.astype(float) * 2e-3 - 1.0, rtol=1e-6)
    scope.close()


@pytest.mark.parametrize("preamble, complaint", [
    ("0,0,6,1,1E-6,0,0,1E-3,0,0", "format = 0"),                  # BYTE while WORD was asked
    ("1,0,0,1,1E-6,0,0,1E-3,0,0", "points = 0"),
    ("1,0,6,1,0,0,0,1E-3,0,0", "xincrement"),
    ("1,0,6,1,-1E-6,0,0,1E-3,0,0", "xincrement"),
    ("1,0,6,1,1E-6,0,0,0,0,0", "yincrement = 0"),
    ("1,0,6,1,1E-6,nan,0,1E-3,0,0", "not a finite number"),
    ("1,0,6,1,1E-6,0,0,1E-3,0", "9 fields"),
    ("1,0,6.5,1,1E-6,0,0,1E-3,0,0", "not an integer"),
    ("1,0,7,1,1E-6,0,0,1E-3,0,0", "14 were expected"),            # block holds 6 points
])
def test_infiniivision_impossible_preamble_is_an_error(fakes, rm, preamble, complaint):
    _, scope = _open(fakes, rm, "oscilloscope", "keysight_infiniivision",
                     ks_replies(**{":WAVeform:PREamble?": preamble}))
    with pytest.raises(InstrumentError, match=complaint):
        scope.read_waveform(1)
    scope.close()


def test_infiniivision_argument_checks_send_nothing(fakes, rm):
    fake, scope = _open(fakes, rm, "oscilloscope", "keysight_infiniivision", ks_replies())
    before = fake.settled()
    with pytest.raises(LimitError, match="channel 5"):
        scope.configure_channel(5, 1.0)
    with pytest.raises(LimitError, match="pretrigger_fraction"):
        scope.configure_acquisition(1e6, 10_000, -0.1)
    with pytest.raises(LimitError, match="sample_rate_hz"):
        scope.configure_acquisition(0.0, 10_000, 0.1)
    with pytest.raises(LimitError, match="timebase_scale"):
        scope.configure_acquisition(1.0, 1_000_000, 0.1)         # 100 000 s/div
    with pytest.raises(LimitError, match="slope"):
        scope.trigger_edge(1, 0.0, "sideways")
    with pytest.raises(LimitError, match="probe_ratio"):
        scope.configure_channel(1, 1.0, probe_ratio=1e6)
    assert fake.settled() == before
    scope.close()


# -- Chroma 61800 ------------------------------------------------------------------------------

def test_chroma_grid_nominal_sequence(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "chroma_61800", {"*IDN?": CHROMA_GRID_IDN},
                       options={"current_limit_a": 350.0, "voltage_slew_v_per_ms": 0})
    start = len(fake.settled())
    grid.configure_nominal(277.1, 60.0)
    grid.output_on()
    sent = fake.settled()[start:]
    assert sent[:11] == ["TRIG OFF", "INST:PHAS THREE", "INST:COUP ALL", "OUTP:MODE FIXED",
                         "SOUR:FREQ 60", "SOUR:VOLT:LEV:IMM:AMPL:AC 277.1", "SOUR:PHASE:P12 120",
                         "SOUR:PHASE:P13 240", "SOUR:CURR:LIM 350", "OUTP:SLEW:VOLT:AC 0",
                         "SYST:ERR?"]
    assert sent[-3:] == ["OUTP:RELAY ON", "OUTP:STATE ON", "SYST:ERR?"]
    grid.close()


def test_chroma_grid_list_transient_sequence(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "chroma_61800", {"*IDN?": CHROMA_GRID_IDN})
    start = len(fake.settled())
    grid.program_transient([GridSegment(0.1, (138.5,) * 3, 60.0),
                            GridSegment(0.5, (277.0,) * 3, 60.0)])
    grid.start_transient()
    sent = fake.settled()[start:]
    # no list-length command: the list is as long as its value lists (the driver's notes)
    assert sent == ["TRIG OFF", "OUTP:MODE FIXED", "INST:COUP ALL", "LIST:COUNT 1",
                    "LIST:BASE TIME", "LIST:DWEL 100,500", "LIST:SHAPE A,A",
                    "LIST:FREQ:STAR 60,60", "LIST:FREQ:END 60,60",
                    "LIST:VOLT:AC:STAR 138.5,277", "LIST:VOLT:AC:END 138.5,277",
                    "OUTP:MODE LIST", "SYST:ERR?", "TRIG ON", "SYST:ERR?"]
    grid.close()


def test_chroma_grid_unbalanced_list_and_dialect_options(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "chroma_61800", {"*IDN?": CHROMA_GRID_IDN},
                       options={"list_dwell_unit": "s", "list_trigger_command": "TRIG:STATE ON"})
    start = len(fake.settled())
    grid.program_transient([GridSegment(0.25, (277.0, 277.0, 277.0), 60.0),
                            GridSegment(0.15, (138.5, 277.0, 277.0), 59.5)])
    grid.start_transient()
    sent = fake.settled()[start:]
    assert "LIST:DWEL 0.25,0.15" in sent and not any(c.startswith("LIST:POINT") for c in sent)
    assert "LIST:FREQ:STAR 60,59.5" in sent
    i = sent.index("INST:COUP NONE")
    assert sent[i:i + 10] == ["INST:COUP NONE",
                              "INST:NSEL 1", "LIST:VOLT:AC:STAR 277,138.5", "LIST:VOLT:AC:END 277,138.5",
                              "INST:NSEL 2", "LIST:VOLT:AC:STAR 277,277", "LIST:VOLT:AC:END 277,277",
                              "INST:NSEL 3", "LIST:VOLT:AC:STAR 277,277", "LIST:VOLT:AC:END 277,277"]
    assert "TRIG:STATE ON" in sent
    grid.close()


def test_chroma_grid_limits_refused_before_anything_is_sent(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "chroma_61800", {"*IDN?": CHROMA_GRID_IDN},
                       limits={"max_voltage_ln_v": 290.0, "max_current_a": 400.0})
    before = fake.settled()
    with pytest.raises(LimitError, match="segment 2 phase C.*max_voltage_ln_v"):
        grid.program_transient([GridSegment(0.1, (277.0,) * 3, 60.0),
                                GridSegment(0.1, (277.0, 277.0, 295.0), 60.0)])
    with pytest.raises(LimitError, match="instrument range 0 … 300 V"):
        grid.set_voltage_ln_v(310.0, phase="B")
    with pytest.raises(LimitError, match="instrument range"):
        grid.set_frequency_hz(20.0)                            # below the 61800's 30 Hz
    with pytest.raises(LimitError, match="duration_s"):
        grid.program_transient([GridSegment(0.0, (277.0,) * 3, 60.0)])
    with pytest.raises(LimitError, match="101 segments"):
        grid.program_transient([GridSegment(0.1, (277.0,) * 3, 60.0)] * 101)
    with pytest.raises(LimitError, match="phase 'D'"):
        grid.set_voltage_ln_v(230.0, phase="D")
    assert fake.settled() == before
    with pytest.raises(LimitError, match="list_dwell_unit"):
        _open(fakes, rm, "grid_simulator", "chroma_61800", {"*IDN?": CHROMA_GRID_IDN},
              options={"list_dwell_unit": "minutes"})
    grid.close()


def test_chroma_grid_measures_each_phase(fakes, rm):
    selected = {"phase": 1}

    def select(command: str) -> None:
        selected["phase"] = int(command.split()[-1])

    fake, grid = _open(fakes, rm, "grid_simulator", "chroma_61800", {
        "*IDN?": CHROMA_GRID_IDN, "INST:NSEL 1": select, "INST:NSEL 2": select,
        "INST:NSEL 3": select,
        "FETC:VOLT:AC?": lambda _: f"{276 + selected['phase']:.1f}",
        "FETC:CURR:AC?": lambda _: f"{10 * selected['phase']:.1f}",
        "FETC:POW:AC?": lambda _: "2000.0", "FETC:FREQ?": "59.98"})
    reading = grid.measure()
    assert reading.v_ln_rms_v == (277.0, 278.0, 279.0) and reading.i_rms_a == (10.0, 20.0, 30.0)
    assert reading.p_total_w == 6000.0 and reading.freq_hz == 59.98
    sent = fake.settled()
    assert sent[sent.index("INST:NSEL 3") + 4] == "INST:COUP ALL"          # coupled again
    grid.close()


# -- AMETEK Asterion ---------------------------------------------------------------------------

def test_asterion_and_mx_drivers_refuse_each_other(fakes, rm):
    fake = fakes({"*IDN?": "AMETEK Programmable Power,MX45-3Pi,MX0001,4.12"})
    with pytest.raises(IdentityError, match="AST"):
        open_instrument("grid_simulator", "ametek_asterion", fake.resource, resource_manager=rm)
    fake = fakes({"*IDN?": ASTERION_IDN})
    with pytest.raises(IdentityError, match="MX"):
        open_instrument("grid_simulator", "ametek_mx", fake.resource, resource_manager=rm)


def test_asterion_nominal_sequence_is_the_california_instruments_one(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "ametek_asterion", {"*IDN?": ASTERION_IDN},
                       options={"current_limit_a": 350.0})
    start = len(fake.settled())
    grid.configure_nominal(277.1, 60.0)
    grid.output_on()
    sent = fake.settled()[start:]
    assert sent == ["INST:COUP ALL", "VOLT:MODE FIXed", "FREQ:MODE FIXed", "FREQ 60", "VOLT:AC 277.1",
                    "CURR 350", "INST:COUP NONE", "INST:NSEL 2", "PHAS 240", "INST:NSEL 3", "PHAS 120",
                    "INST:COUP ALL", "SYST:ERR?", "OUTP ON", "SYST:ERR?"]
    grid.close()


def test_asterion_left_in_one_phase_mode_is_reported_with_its_own_error(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "ametek_asterion",
                       {"*IDN?": ASTERION_IDN,
                        "SYST:ERR?": ['-222,"Data out of range"', '0,"No error"']})
    with pytest.raises(InstrumentError, match=r'configuring nominal.*-222,"Data out of range"'):
        grid.configure_nominal(277.1, 60.0)
    grid.close()


def test_asterion_list_transient_and_its_limits(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "ametek_asterion", {"*IDN?": ASTERION_IDN, "FREQ?": "60"},
                       limits={"max_voltage_ln_v": 330.0})
    before = fake.settled()
    with pytest.raises(LimitError, match=r"segment 1 duration_s = 0.0005 s .* 0.001 … 90000 s"):
        grid.program_transient([GridSegment(0.0005, (277.0,) * 3, 60.0)])     # the MX takes 0.2 ms
    with pytest.raises(LimitError, match="101 segments exceed the 100-point"):
        grid.program_transient([GridSegment(0.1, (277.0,) * 3, 60.0)] * 101)
    with pytest.raises(LimitError, match="an Asterion list point slews from where the output is"):
        grid.program_transient([GridSegment(1.0, (277.0,) * 3, 58.0, freq_start_hz=59.0)])
    with pytest.raises(LimitError, match="instrument range 16 … 1000 Hz"):
        grid.set_frequency_hz(1200.0)
    assert [c for c in fake.settled() if not c.endswith("?")] == [c for c in before if not c.endswith("?")]
    start = len(fake.settled())
    grid.program_transient([GridSegment(0.1, (138.5,) * 3, 60.0),
                            GridSegment(0.4, (277.0,) * 3, 59.0, freq_start_hz=60.0)])
    grid.start_transient()
    sent = fake.settled()[start:]
    # the ramp starts where segment 1 ends: nothing to ask the source first
    assert sent[:4] == ["ABORT", "INST:COUP ALL", "LIST:DWEL 0.1,0.4", "LIST:FREQ 60,59"]
    for command in ("LIST:FREQ:SLEW MAX,2.5", "LIST:VOLT 138.5,277", "LIST:COUN 1", "VOLT:MODE LIST",
                    "FREQ:MODE LIST", "FREQ:SLEW:MODE LIST", "PHAS:MODE FIXed", "TRIG:TRAN:SOUR IMMediate",
                    "OUTP:TTLT:SOUR BOT", "OUTP:TTLT ON", "INIT"):
        assert command in sent
    grid.close()


def test_asterion_has_no_programmable_impedance_unless_the_bench_says_so(fakes, rm):
    fake, grid = _open(fakes, rm, "grid_simulator", "ametek_asterion", {"*IDN?": ASTERION_IDN})
    before = fake.settled()
    with pytest.raises(NoProgrammableImpedance, match="programmable_output_impedance = true; nothing was sent"):
        grid.set_output_impedance(0.05, 200e-6)
    with pytest.raises(LimitError, match="output_impedance r_ohm"):
        grid.set_output_impedance(-0.1, 0.0)
    grid.set_output_impedance(0.0, 0.0)                 # nothing to emulate: already the case
    assert grid.output_impedance().is_zero
    assert fake.settled() == before
    grid.close()
    fake, grid = _open(fakes, rm, "grid_simulator", "ametek_asterion",
                       {"*IDN?": ASTERION_IDN, "OUTP:IMP?": "1", "OUTP:IMP:REAL?": "0.05",
                        "OUTP:IMP:REAC?": "0.2"},
                       options={"programmable_output_impedance": True})
    start = len(fake.settled())
    grid.set_output_impedance(0.05, 200e-6)
    assert fake.settled()[start:] == ["INST:COUP ALL", "OUTP:IMP:REAL 0.05", "OUTP:IMP:REAC 0.2", "OUTP:IMP ON",
                                      "SYST:ERR?"]
    assert grid.output_impedance() == OutputImpedance(0.05, 200e-6)
    grid.close()
    with pytest.raises(LimitError, match="programmable_output_impedance = 'yes' is not true or false"):
        _open(fakes, rm, "grid_simulator", "ametek_asterion", {"*IDN?": ASTERION_IDN},
              options={"programmable_output_impedance": "yes"})


# -- Chroma 62000P ------------------------------------------------------------------------------

def test_chroma_dc_sequence(fakes, rm):
    fake, dc = _open(fakes, rm, "dc_source", "chroma_62000p",
                     {"*IDN?": CHROMA_DC_IDN, "FETC:VOLT?": "899.8", "FETC:CURR?": "-0.2"},
                     limits={"max_dc_voltage_v": 1000.0, "max_dc_current_a": 15.0},
                     options={"rated_voltage_v": 1000.0, "rated_current_a": 15.0,
                              "overvoltage_protection_v": 980.0})
    sent = fake.settled()
    assert sent[:5] == ["*IDN?", "*CLS", "CONF:REM ON", "SOUR:VOLT:PROT:HIGH 980", "SYST:ERR?"]
    start = len(sent)
    dc.set_current_limits_a(12.0, 0.0)
    dc.set_voltage_v(900.0)
    dc.output_on()
    assert dc.measure_voltage_v() == 899.8 and dc.measure_current_a() == -0.2
    sent = fake.settled()[start:]
    assert sent == ["SOUR:CURR:LIM:HIGH 12", "SOUR:CURR:LIM:LOW 0", "SOUR:CURR 12", "SYST:ERR?",
                    "SOUR:VOLT 900", "SYST:ERR?", "CONF:OUTP ON", "SYST:ERR?",
                    "FETC:VOLT?", "FETC:CURR?"]
    dc.close()


def test_chroma_dc_refuses_sinking_unless_the_bench_says_it_can(fakes, rm):
    fake, dc = _open(fakes, rm, "dc_source", "chroma_62000p", {"*IDN?": CHROMA_DC_IDN},
                     limits={"max_dc_voltage_v": 1000.0, "max_dc_current_a": 350.0})
    before = fake.settled()
    with pytest.raises(LimitError, match="cannot absorb current"):
        dc.set_current_limits_a(10.0, 5.0)
    with pytest.raises(LimitError, match="max_dc_voltage_v"):
        dc.set_voltage_v(1100.0)
    with pytest.raises(LimitError, match="max_dc_current_a"):
        dc.set_current_limits_a(360.0, 0.0)
    assert fake.settled() == before
    dc.close()
    fake, dc = _open(fakes, rm, "dc_source", "chroma_62000p", {"*IDN?": CHROMA_DC_D_IDN},
                     options={"sink_capable": True, "rated_current_a": 300.0})
    dc.set_current_limits_a(250.0, 200.0)
    assert "SOUR:CURR:LIM:LOW -200" in fake.settled()
    dc.close()


def test_chroma_dc_a_p_model_claimed_bidirectional_is_refused_at_open(fakes, rm):
    fake = fakes({"*IDN?": CHROMA_DC_IDN})
    with pytest.raises(IdentityError, match="identifies as 62150P-1000-15, a source-only 62000P"):
        open_instrument("dc_source", "chroma_62000p", fake.resource, resource_manager=rm,
                        options={"sink_capable": True})
    assert fake.settled() == ["*IDN?"]


def test_chroma_dc_overvoltage_protection_above_the_safety_limit_is_refused_at_open(fakes, rm):
    fake = fakes({"*IDN?": CHROMA_DC_IDN})
    with pytest.raises(LimitError, match="max_dc_voltage_v"):
        open_instrument("dc_source", "chroma_62000p", fake.resource, resource_manager=rm,
                        limits={"max_dc_voltage_v": 1000.0},
                        options={"overvoltage_protection_v": 1050.0})
    assert not any(line.startswith("SOUR:VOLT:PROT") for line in fake.settled())


# -- Keysight N8900 --------------------------------------------------------------------------------

def test_n8900_sequence(fakes, rm):
    fake, dc = _open(fakes, rm, "dc_source", "keysight_n8900",
                     {"*IDN?": N8900_IDN, "MEAS:VOLT?": "899.9", "MEAS:CURR?": "12.5",
                      "MEAS:POW?": "11248.75"},
                     limits={"max_dc_voltage_v": 1000.0, "max_dc_current_a": 350.0},
                     options={"units_in_parallel": 20, "overvoltage_protection_v": 980.0})
    sent = fake.settled()
    assert sent[:4] == ["*IDN?", "*CLS", "VOLT:PROT 980", "SYST:ERR?"]
    start = len(sent)
    dc.set_current_limits_a(300.0, 0.0)
    dc.set_voltage_v(900.0)
    dc.output_on()
    assert (dc.measure_voltage_v(), dc.measure_current_a(), dc.measure_power_w()) == (899.9, 12.5, 11248.75)
    dc.clear_protection()
    assert fake.settled()[start:] == ["CURR 300", "SYST:ERR?", "VOLT 900", "SYST:ERR?", "OUTP ON",
                                      "SYST:ERR?", "MEAS:VOLT?", "MEAS:CURR?", "MEAS:POW?",
                                      "OUTP:PROT:CLE", "SYST:ERR?"]
    # autoranging: 20 x 15 kW at 900 V is 333 A, under the 20 x 30 A rating
    assert dc.power_limited_current_a(900.0) == pytest.approx(300e3 / 900.0)
    assert dc.power_limited_current_a(100.0) == pytest.approx(20 * 30.0 * 1.02)
    dc.close()


def test_n8900_is_a_source_only_and_limits_are_refused_before_sending(fakes, rm):
    fake, dc = _open(fakes, rm, "dc_source", "keysight_n8900", {"*IDN?": N8900_IDN},
                     limits={"max_dc_voltage_v": 1000.0, "max_dc_current_a": 350.0})
    before = fake.settled()
    with pytest.raises(LimitError, match="one-quadrant source and cannot absorb"):
        dc.set_current_limits_a(20.0, 50.0)
    with pytest.raises(LimitError, match="max_dc_voltage_v"):
        dc.set_voltage_v(1100.0)
    with pytest.raises(LimitError, match="instrument range"):
        dc.set_current_limits_a(31.0, 0.0)                     # one unit: 30.6 A at most
    with pytest.raises(LimitError, match="max_dc_current_a"):
        _open(fakes, rm, "dc_source", "keysight_n8900", {"*IDN?": N8900_IDN},
              limits={"max_dc_current_a": 350.0},
              options={"units_in_parallel": 20})[1].set_current_limits_a(360.0, 0.0)
    assert fake.settled() == before
    with pytest.raises(IdentityError, match="N89"):
        _open(fakes, rm, "dc_source", "keysight_n8900", {"*IDN?": RP_DC_IDN})
    dc.close()


# -- battery emulation in the DC-source role ---------------------------------------------------------

BATTERY = BatteryEmulation.build(((0.0, 800.0), (50.0, 900.0), (100.0, 960.0)),
                                 r_internal_ohm=0.05, capacity_ah=10.0, soc_pct=50.0)


@pytest.mark.parametrize("driver, idn, family", [
    ("keysight_n8900", N8900_IDN, "Keysight N8900"),
    ("chroma_62000p", CHROMA_DC_IDN, "Chroma 62000P"),
    ("keysight_rp7900", RP_DC_IDN, "Keysight RP7900 keeps no battery emulation .* output resistance"),
])
def test_families_without_a_battery_refuse_emulation_unless_the_bench_opts_in(fakes, rm, driver, idn,
                                                                             family):
    fake, dc = _open(fakes, rm, "dc_source", driver, {"*IDN?": idn})
    before = fake.settled()
    with pytest.raises(NoBatteryEmulation, match=family):
        dc.configure_battery_emulation(BATTERY)
    assert fake.settled() == before
    dc.close()


def test_rp7900_host_emulation_uses_its_output_resistance_and_follows_the_charge(fakes, rm):
    current = {"a": 0.0}
    fake, dc = _open(fakes, rm, "dc_source", "keysight_rp7900",
                     {"*IDN?": RP_DC_IDN, "MEAS:CURR?": lambda _: f"{current['a']:.6f}"},
                     options={"battery_emulation": "host", "units_in_parallel": 10,
                              "rated_voltage_v": 1000.0, "rated_current_a": 400.0})
    start = len(fake.settled())
    host = dc.configure_battery_emulation(BATTERY)
    assert fake.settled()[start:] == ["VOLT:RES 0.05", "SYST:ERR?", "VOLT 900", "SYST:ERR?"]
    host.update(0.0)                                          # first reading: no charge yet
    current["a"] = 100.0
    host.update(18.0)                                         # 0 -> 100 A: 900 C = 2.5 % of 10 Ah
    assert host.soc_pct == pytest.approx(47.5)
    assert fake.settled()[-2:] == [f"VOLT {BATTERY.ocv_v(47.5):.10g}", "SYST:ERR?"]
    assert BATTERY.ocv_v(47.5) == pytest.approx(895.0)       # the instrument applies R x I itself
    start = len(fake.settled())
    dc.battery_emulation_off()
    host.update(30.0)                                         # stopped: nothing more is sent
    assert fake.settled()[start:] == ["VOLT:RES 0", "SYST:ERR?"]
    dc.close()


def test_host_emulation_applies_the_resistance_itself_where_the_family_has_none(fakes, rm):
    current = {"a": 200.0}
    fake, dc = _open(fakes, rm, "dc_source", "keysight_n8900",
                     {"*IDN?": N8900_IDN, "MEAS:CURR?": lambda _: f"{current['a']:.6f}"},
                     options={"battery_emulation": "host", "units_in_parallel": 20})
    host = dc.configure_battery_emulation(BATTERY)
    host.update(0.0)
    host.update(9.0)                                          # 1800 C = 5 % of 10 Ah
    assert host.soc_pct == pytest.approx(45.0)
    expected_v = BATTERY.ocv_v(45.0) - 0.05 * 200.0           # 890 - 10 V
    assert fake.settled()[-2:] == [f"VOLT {expected_v:.10g}", "SYST:ERR?"]
    dc.safe_state()                                           # the bench stops following it
    start = len(fake.settled())
    host.update(20.0)
    assert fake.settled()[start:] == []
    dc.close()


def test_battery_emulation_is_checked_before_anything_is_sent(fakes, rm):
    fake, dc = _open(fakes, rm, "dc_source", "keysight_rp7900", {"*IDN?": RP_DC_IDN},
                     limits={"max_dc_voltage_v": 950.0},
                     options={"battery_emulation": "host", "rated_voltage_v": 1000.0,
                              "rated_current_a": 400.0, "units_in_parallel": 10})
    before = fake.settled()
    bad_curve = BatteryEmulation(((0.0, 800.0), (50.0, 790.0), (100.0, 900.0)), 0.05, 10.0, 50.0)
    with pytest.raises(LimitError, match="not monotonic"):
        dc.configure_battery_emulation(bad_curve)
    with pytest.raises(LimitError, match="highest OCV = 980 V is beyond the bench safety limit"):
        dc.configure_battery_emulation(BatteryEmulation.build(
            ((0.0, 800.0), (100.0, 980.0)), r_internal_ohm=0.05, capacity_ah=10.0, soc_pct=50.0))
    with pytest.raises(LimitError, match="r_internal_ohm = 0.5 ohm is outside the instrument range"):
        dc.configure_battery_emulation(BatteryEmulation.build(
            ((0.0, 800.0), (100.0, 900.0)), r_internal_ohm=0.5, capacity_ah=10.0, soc_pct=50.0))
    for kwargs, complaint in (({"capacity_ah": 0.0}, "capacity_ah must be > 0"),
                              ({"soc_pct": 101.0}, "soc_pct must be within 0..100"),
                              ({"r_internal_ohm": -0.1}, "r_internal_ohm must be > 0")):
        with pytest.raises(ValueError, match=complaint):
            BatteryEmulation.build(((0.0, 800.0), (100.0, 900.0)),
                                   **{"r_internal_ohm": 0.05, "capacity_ah": 10.0, "soc_pct": 50.0,
                                      **kwargs})
    assert fake.settled() == before
    dc.close()


# -- Chroma 63800 AC load ---------------------------------------------------------------------------

def test_load_profile_shape_checks():
    profile = LoadProfile.build([0.0, 0.2, 0.5], [1000.0, 3000.0, 500.0])
    assert profile.dwells_s == pytest.approx((0.2, 0.3, 0.3))
    assert LoadProfile.build([0.0], [10.0]).dwells_s == (1.0,)
    for times, powers in (([0.1, 0.2], [1, 2]), ([0.0, 0.0], [1, 2]), ([0.0], [1, 2]), ([], [])):
        with pytest.raises(ValueError):
            LoadProfile.build(times, powers)


def test_chroma_load_constant_power_and_current(fakes, rm):
    fake, load = _open(fakes, rm, "ac_load", "chroma_63800", {
        "*IDN?": CHROMA_LOAD_IDN, "MEAS:VOLT?": "277.0", "MEAS:CURR?": "5.4",
        "MEAS:POW?": "1496.0", "MEAS:FREQ?": "60.0"})
    assert isinstance(load, AcLoad) and load.power_span_w == (0.0, 3600.0)   # 63803 rating
    start = len(fake.settled())
    load.set_constant_power_w(1500.0)
    load.load_on()
    reading = load.measure()
    load.set_constant_current_a(10.0)
    sent = fake.settled()[start:]
    assert sent[:2] == ["MODE POW", "POW 1500"]
    assert "LOAD ON" in sent and sent[-3:-1] == ["MODE CURR", "CURR 10"]
    assert reading.p_w == 1496.0 and reading.v_rms_v == 277.0 and reading.freq_hz == 60.0
    load.close()


def test_chroma_load_profile_sequence(fakes, rm):
    fake, load = _open(fakes, rm, "ac_load", "chroma_63800", {"*IDN?": CHROMA_LOAD_IDN})
    start = len(fake.settled())
    load.program_profile([0.0, 0.2, 0.5], [1000.0, 3000.0, 500.0], end_s=1.0, repeat=5)
    load.start_profile()
    load.stop_profile()
    sent = fake.settled()[start:]
    assert sent == ["LIST:STAT OFF", "MODE POW", "LIST:DWEL 0.2,0.3,0.5", "LIST:POW 1000,3000,500",
                    "LIST:COUN 5", "SYST:ERR?", "LIST:STAT ON", "SYST:ERR?", "LIST:STAT OFF",
                    "SYST:ERR?"]
    load.close()


def test_chroma_load_limits_refused_before_anything_is_sent(fakes, rm):
    fake, load = _open(fakes, rm, "ac_load", "chroma_63800", {"*IDN?": CHROMA_LOAD_IDN},
                       limits={"max_ac_load_power_w": 2500.0, "max_current_a": 30.0})
    before = fake.settled()
    with pytest.raises(LimitError, match="max_ac_load_power_w"):
        load.set_constant_power_w(3000.0)
    with pytest.raises(LimitError, match="instrument range"):
        load.set_constant_current_a(40.0)                       # 63803: 36 A
    with pytest.raises(LimitError, match="point 2 p_w"):
        load.program_profile([0.0, 0.1], [1000.0, 2600.0])
    with pytest.raises(LimitError, match="increase strictly"):
        load.program_profile([0.0, 0.3, 0.2], [1.0, 2.0, 3.0])
    with pytest.raises(LimitError, match="101 profile points"):
        load.program_profile([0.01 * k for k in range(101)], [10.0] * 101)
    assert fake.settled() == before
    load.close()


def test_chroma_load_profile_dialect_can_be_overridden(fakes, rm):
    fake, load = _open(fakes, rm, "ac_load", "chroma_63800", {"*IDN?": CHROMA_LOAD_IDN},
                       options={"profile_commands": {"start": "SEQ:RUN", "stop": "SEQ:STOP"}})
    load.program_profile([0.0], [100.0])
    load.start_profile()
    sent = fake.settled()
    assert "SEQ:STOP" in sent and "SEQ:RUN" in sent and "LIST:POW 100" in sent
    load.close()


# -- safe states ------------------------------------------------------------------------------------

@pytest.mark.parametrize("driver, role, idn, commands", [
    ("chroma_61800", "grid_simulator", CHROMA_GRID_IDN, ["TRIG OFF", "OUTP:STATE OFF"]),
    ("ametek_asterion", "grid_simulator", ASTERION_IDN, ["ABORT", "OUTP OFF"]),
    ("chroma_62000p", "dc_source", CHROMA_DC_IDN, ["CONF:OUTP OFF"]),
    ("keysight_n8900", "dc_source", N8900_IDN, ["OUTP OFF"]),
    ("keysight_infiniivision", "oscilloscope", KS_IDN, [":STOP"]),
    ("chroma_63800", "ac_load", CHROMA_LOAD_IDN, ["LIST:STAT OFF", "LOAD OFF"]),
])
def test_new_safe_states_are_idempotent_and_survive_a_dead_link(fakes, rm, driver, role, idn,
                                                                commands):
    fake = fakes({"*IDN?": idn})
    instrument = open_instrument(role, driver, fake.resource, resource_manager=rm, timeout_s=0.5)
    instrument.safe_state()
    instrument.safe_state()
    sent = fake.settled()
    for command in commands:
        assert sent.count(command) == 2
    fake.stop()
    time.sleep(0.05)
    instrument.safe_state()                                    # logs, does not raise
    instrument.close()


# -- the block reader's two paths -------------------------------------------------------------------

@pytest.mark.parametrize("socket_reads, path", [(True, "socket"), (False, "visa")])
def test_large_block_is_exact_through_both_read_paths(fakes, rm, socket_reads, path):
    codes = (np.arange(1_500_000) % 65536 - 32768).astype("<i2")   # every code, 0x0A included
    fake = fakes({"*IDN?": CHROMA_DC_IDN, "DATA?": block(codes.tobytes())})
    dc = open_instrument("dc_source", "chroma_62000p", fake.resource, resource_manager=rm,
                         options={"socket_block_reads": socket_reads})
    data = dc.query_block("DATA?", expected_bytes=codes.nbytes)
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<i2"), codes)
    assert dc.last_block_transfer.path == path and dc.last_block_transfer.n_bytes == codes.nbytes
    assert dc.query_float("*OPC?") == 1.0                      # in step afterwards
    dc.close()


def test_truncated_block_on_the_socket_path_says_how_many_bytes_arrived(fakes, rm):
    fake = fakes({"*IDN?": CHROMA_DC_IDN, "DATA?": b"#212" + KNOWN_CODES.tobytes()[:7]})
    dc = open_instrument("dc_source", "chroma_62000p", fake.resource, resource_manager=rm,
                         timeout_s=0.3)
    with pytest.raises(InstrumentError, match="announced 12 bytes; the instrument went silent "
                                              "after 7 of them"):
        dc.query_block("DATA?")
    dc.close()


def test_block_terminator_missing_on_the_socket_path(fakes, rm):
    fake = fakes({"*IDN?": CHROMA_DC_IDN, "DATA?": block(KNOWN_CODES.tobytes(), terminator=b"")})
    dc = open_instrument("dc_source", "chroma_62000p", fake.resource, resource_manager=rm,
                         timeout_s=0.3)
    with pytest.raises(InstrumentError, match="not followed by its newline terminator"):
        dc.query_block("DATA?")
    dc.close()
