"""The simulated PCS's disturbance recorder: triggers, captures, keeps COMTRADE records.

What it records (per record, one COMTRADE file pair, see `comtrade_writer`):
- analogs: PCC phase-to-neutral voltages VA, VB, VC; PCS output currents IA, IB, IC;
  P and Q (instantaneous three-phase power, averaged over one nominal cycle); F (frequency of
  the positive-sequence voltage, missing while the bus is dead);
- digitals: CURRENT_LIMITED, RIDE_THROUGH_ACTIVE, TRIPPED, MOMENTARY_CESSATION, replayed
  from the PCS's own event log (the PCS knows its states, it does not measure them).
Sample rate 32 samples per nominal cycle (1920 Sa/s at 60 Hz), 0.1 s pre-trigger, 1.0 s in
all, at most 16 records (the oldest is dropped) - above the NERC PRC-002 practice of
>= 16 samples/cycle, >= 2 cycles pre-trigger and >= 30 cycles per fault record.

Triggers (the earliest wins; while a record is being captured further triggers are ignored):
- FAULT: the positive-sequence PCC voltage leaves 0.9..1.1 pu (an edge: a bus that was never
  healthy, e.g. before the grid simulator is switched on, does not trigger);
- TRIP: a TRIP or FAULT entry in `plant.pcs_events`;
- LIMIT_ENTER: a LIMIT_ENTER entry in `plant.pcs_events`;
- PHASE_JUMP: the positive-sequence angle moves by more than 10 degrees from one cycle to
  the next beyond what the cycle before showed (a steady frequency offset does not count).

How it runs: `recorder_for(plant)` creates the one recorder of a plant and registers a
periodic callback with `plant.schedule` every 50 ms of plant time. The callback examines the
plant's scope ring (`plant.read_ring`) since the last check, vectorised with numpy (no
per-sample Python), and writes a record once its post-trigger time has elapsed in plant
time. So records appear while whoever owns the plant (the launcher, a test) advances it, at
most 20 ms of plant time after they are complete, and never depend on a Modbus client
polling. The ring (30 s) is far longer than the check period, so nothing is missed.

Seeded defects (bench/sim/defects.py, caught by the DR plan) applied here:
- `recorder_short_pretrigger`: the pre-trigger buffer holds 5 ms instead of 0.1 s;
- `recorder_missing_channels`: the per-phase currents are not recorded.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.comtrade_writer import (
    AnalogChannel,
    ComtradeFiles,
    ComtradeRecord,
    DigitalChannel,
    write_comtrade,
)

# The PCS clock is plant time; COMTRADE needs calendar time stamps: plant time 0 is this date.
BASE_DATE = dt.datetime(2026, 1, 1)
CAUSE_CODES = {"FAULT": 1, "TRIP": 2, "LIMIT_ENTER": 3, "PHASE_JUMP": 4}
# when triggers coincide, the more telling cause names the record
_CAUSE_PRECEDENCE = {"TRIP": 0, "FAULT": 1, "LIMIT_ENTER": 2, "PHASE_JUMP": 3}
_TRIGGER_EVENTS = {"TRIP": "TRIP", "FAULT": "TRIP", "LIMIT_ENTER": "LIMIT_ENTER"}

VOLTAGE_SIGNALS = ("pcc_va_v", "pcc_vb_v", "pcc_vc_v")
CURRENT_SIGNALS = ("pcs_ia_a", "pcs_ib_a", "pcs_ic_a")

DEFECT_SHORT_PRETRIGGER = "recorder_short_pretrigger"
DEFECT_MISSING_CHANNELS = "recorder_missing_channels"
SHORT_PRETRIGGER_S = 0.005


PHASOR_CHECK_PERIOD_S = 1.0    # records appear this late at most in phasor mode (hours of SOC work)


@dataclass(frozen=True)
class RecorderSettings:
    samples_per_cycle: int = 32
    pre_trigger_s: float = 0.1
    total_s: float = 1.0
    max_records: int = 16
    v1_low_pu: float = 0.9
    v1_high_pu: float = 1.1
    phase_jump_deg: float = 10.0
    angle_valid_pu: float = 0.5        # angles of a weaker voltage are noise, not jumps
    frequency_valid_pu: float = 0.1    # below this the bus is dead: frequency "missing"
    check_period_s: float = 0.05       # records appear at most this late (plant time)


@dataclass(frozen=True)
class DisturbanceRecord:
    number: int                        # 1, 2, ... since PCS power-up
    cause: str                         # a key of CAUSE_CODES
    trigger_time_s: float              # PCS clock (plant time)
    start_time_s: float                # time of the first sample
    sample_rate_hz: float
    n_samples: int
    files: ComtradeFiles

    @property
    def cause_code(self) -> int:
        return CAUSE_CODES[self.cause]

    @property
    def cfg_file_number(self) -> int:
        """Modbus file number (FC20) of the .cfg; the .dat is the next one. Numbers are
        never reused, so a client cannot fetch a newer record under an old number."""
        return 2 * self.number - 1

    @property
    def dat_file_number(self) -> int:
        return self.cfg_file_number + 1


@dataclass(frozen=True)
class _Capture:
    number: int
    cause: str
    trigger_time_s: float
    k_first: int                       # recorder sample indices (time = k / sample rate)
    k_last: int


@dataclass(frozen=True)
class _Trigger:
    time_s: float
    cause: str


class DisturbanceRecorder:
    """Watches one plant; keeps its last `max_records` records. Thread-safe for readers
    (the Modbus server may run in another thread than the one advancing the plant)."""

    def __init__(self, plant: Any, settings: RecorderSettings = RecorderSettings()) -> None:
        # No reference to the plant is kept (see recorder_for); it comes with each callback.
        config = plant.config
        pcs = config.pcs
        defects = set(config.defects)
        self.settings = settings
        self.f_nom_hz = float(pcs.f_nom_hz)
        self.v_ln_nom_v = float(pcs.v_ll_nom_v) / math.sqrt(3.0)
        self.sample_rate_hz = settings.samples_per_cycle * self.f_nom_hz
        self.pre_trigger_s = SHORT_PRETRIGGER_S if DEFECT_SHORT_PRETRIGGER in defects \
            else settings.pre_trigger_s
        # the defect shortens the buffer before the trigger; the capture after it is unchanged
        self.post_trigger_s = settings.total_s - settings.pre_trigger_s
        self.records_currents = DEFECT_MISSING_CHANNELS not in defects
        self.station_name = "bessbench virtual bench"
        self.device_name = f"{pcs.manufacturer} {pcs.model} {pcs.serial}"
        self._ring_s = float(config.ring_s)
        self._lock = threading.Lock()
        self._records: tuple[DisturbanceRecord, ...] = ()
        self._next_number = 1
        self._k_checked = -1           # last recorder sample examined for voltage triggers
        self._out_of_band = True       # state at _k_checked (see module doc: edge trigger)
        self._events_seen = 0
        self._capture: _Capture | None = None

    # -- public --------------------------------------------------------------------------

    @property
    def records(self) -> tuple[DisturbanceRecord, ...]:
        """Held records, oldest first."""
        with self._lock:
            return self._records

    def file_bytes(self, file_number: int) -> bytes | None:
        """Contents of a Modbus file (.cfg or .dat of a held record), None if none."""
        for record in self.records:
            if file_number == record.cfg_file_number:
                return record.files.cfg
            if file_number == record.dat_file_number:
                return record.files.dat
        return None

    def start(self, plant: Any) -> None:
        """Begin checking at every `check_period_s` of plant time."""
        plant.schedule(plant.t_s, self._tick)

    def check(self, plant: Any) -> None:
        """Look for triggers since the last check; write records whose time is complete."""
        triggers = self._voltage_triggers(plant) + self._event_triggers(plant)
        triggers.sort(key=lambda trig: (trig.time_s, _CAUSE_PRECEDENCE[trig.cause]))
        for trigger in triggers:
            if self._capture is not None and trigger.time_s > self._end_time_s(self._capture):
                self._finish(plant)
            if self._capture is None:
                self._capture = self._begin(trigger)
        if self._capture is not None and plant.t_s >= self._end_time_s(self._capture) - 1e-9:
            self._finish(plant)

    # -- scheduling ------------------------------------------------------------------------

    def _tick(self, plant: Any) -> None:
        self.check(plant)
        # In phasor mode (hours of SOC work) a check every 50 ms would cost more than the plant
        # itself; each check covers everything since the last one, so a longer period only
        # delays when a record appears, it misses nothing (the ring is far longer).
        period_s = self.settings.check_period_s
        if getattr(plant, "fidelity", "emt") == "phasor":
            period_s = max(period_s, PHASOR_CHECK_PERIOD_S)
        plant.schedule(plant.t_s + period_s, self._tick)

    # -- triggers --------------------------------------------------------------------------

    def _voltage_triggers(self, plant: Any) -> list[_Trigger]:
        fs = self.sample_rate_hz
        n = self.settings.samples_per_cycle
        k_now = math.floor(plant.t_s * fs + 1e-6)
        k_new = self._k_checked + 1
        if k_now < k_new:
            return []
        # three cycles of history: the phasor window, then two cycle-to-cycle angle advances
        k_lo = max(0, k_new - 3 * n, self._oldest_k(plant))
        volts = self._resample(plant, VOLTAGE_SIGNALS, k_lo, k_now)
        v1 = _positive_sequence(volts, n)            # index i <-> sample k_lo + n - 1 + i
        k_first_phasor = k_lo + n - 1
        self._k_checked = k_now
        if v1.size == 0:
            return []
        mag_pu = np.abs(v1) / (math.sqrt(2.0) * self.v_ln_nom_v)
        s = self.settings
        new = np.arange(k_first_phasor, k_now + 1) >= k_new
        out_of_band = (mag_pu < s.v1_low_pu) | (mag_pu > s.v1_high_pu)
        triggers: list[_Trigger] = []
        out_new = out_of_band[new]
        if out_new.size:
            previous = np.concatenate(([self._out_of_band], out_new[:-1]))
            edges = np.flatnonzero(out_new & ~previous)
            if edges.size:
                k = k_first_phasor + int(np.flatnonzero(new)[0]) + int(edges[0])
                triggers.append(_Trigger(k / fs, "FAULT"))
            self._out_of_band = bool(out_new[-1])
        jumps = _phase_jumps(v1, mag_pu, n, s.angle_valid_pu, math.radians(s.phase_jump_deg))
        jumps &= new
        if jumps.any():
            k = k_first_phasor + int(np.flatnonzero(jumps)[0])
            triggers.append(_Trigger(k / fs, "PHASE_JUMP"))
        return triggers

    def _event_triggers(self, plant: Any) -> list[_Trigger]:
        events = plant.pcs_events
        if len(events) < self._events_seen:          # the log was cut: start over from its end
            self._events_seen = len(events)
        fresh = events[self._events_seen:]
        self._events_seen += len(fresh)
        return [_Trigger(float(t_s), _TRIGGER_EVENTS[code])
                for t_s, code, _text in fresh if code in _TRIGGER_EVENTS]

    # -- capture -----------------------------------------------------------------------------

    def _begin(self, trigger: _Trigger) -> _Capture:
        fs = self.sample_rate_hz
        k_trigger = round(trigger.time_s * fs)
        k_first = max(0, k_trigger - round(self.pre_trigger_s * fs))   # nothing before power-up
        k_last = k_trigger + round(self.post_trigger_s * fs) - 1
        capture = _Capture(self._next_number, trigger.cause, trigger.time_s, k_first, k_last)
        self._next_number += 1
        return capture

    def _end_time_s(self, capture: _Capture) -> float:
        return capture.k_last / self.sample_rate_hz

    def _finish(self, plant: Any) -> None:
        capture, self._capture = self._capture, None
        if capture is None:
            return
        record = self._build_record(plant, capture)
        with self._lock:
            self._records = (self._records + (record,))[-self.settings.max_records:]

    def _build_record(self, plant: Any, capture: _Capture) -> DisturbanceRecord:
        fs = self.sample_rate_hz
        n = self.settings.samples_per_cycle
        k_first = max(capture.k_first, self._oldest_k(plant))
        k_lo = max(0, k_first - 2 * n, self._oldest_k(plant))       # history for P, Q, F
        data = self._resample(plant, VOLTAGE_SIGNALS + CURRENT_SIGNALS, k_lo, capture.k_last)
        volts, amps = data[:3], data[3:]
        p_w = _cycle_mean(np.einsum("ij,ij->j", volts, amps), n)
        q_var = _cycle_mean(_instantaneous_q(volts, amps), n)
        freq_hz = self._frequency(volts, n)
        keep = slice(k_first - k_lo, None)
        times_s = np.arange(k_first, capture.k_last + 1) / fs
        analogs = [AnalogChannel(name, "V", volts[i][keep], phase=phase, circuit="PCC")
                   for i, (name, phase) in enumerate((("VA", "A"), ("VB", "B"), ("VC", "C")))]
        if self.records_currents:
            analogs += [AnalogChannel(name, "A", amps[i][keep], phase=phase, circuit="PCS")
                        for i, (name, phase) in enumerate((("IA", "A"), ("IB", "B"), ("IC", "C")))]
        analogs += [AnalogChannel("P", "W", p_w[keep], circuit="PCS"),
                    AnalogChannel("Q", "var", q_var[keep], circuit="PCS"),
                    AnalogChannel("F", "Hz", freq_hz[keep], circuit="PCC")]
        states = _status_timeline(plant.pcs_events, times_s)
        digitals = [DigitalChannel(name, states[name]) for name in STATUS_CHANNELS]
        start_time_s = k_first / fs
        comtrade = ComtradeRecord(
            station_name=self.station_name, device_id=self.device_name,
            line_frequency_hz=self.f_nom_hz, sample_rate_hz=fs,
            start_time=plant_time_to_datetime(start_time_s),
            trigger_time=plant_time_to_datetime(capture.trigger_time_s),
            analogs=analogs, digitals=digitals)
        return DisturbanceRecord(capture.number, capture.cause, capture.trigger_time_s,
                                 start_time_s, fs, len(times_s), write_comtrade(comtrade))

    def _frequency(self, volts: np.ndarray, n: int) -> np.ndarray:
        """Frequency from the positive-sequence angle advance over one cycle."""
        v1 = _positive_sequence(volts, n)
        mag_pu = np.abs(v1) / (math.sqrt(2.0) * self.v_ln_nom_v)
        freq = np.full(volts.shape[1], np.nan)
        if v1.size > n:
            advance = _wrap(np.angle(v1[n:]) - np.angle(v1[:-n]))
            valid = (mag_pu[n:] > self.settings.frequency_valid_pu) & \
                    (mag_pu[:-n] > self.settings.frequency_valid_pu)
            f = self.f_nom_hz * (1.0 + advance / (2.0 * math.pi))
            freq[2 * n - 1:] = np.where(valid, f, np.nan)
        return freq

    # -- ring access -------------------------------------------------------------------------

    def _oldest_k(self, plant: Any) -> int:
        """First recorder sample whose neighbours are still in the plant's ring."""
        oldest_t_s = max(0.0, plant.t_s - self._ring_s + plant.dt_s)
        return math.ceil(oldest_t_s * self.sample_rate_hz)

    def _resample(self, plant: Any, names: tuple[str, ...], k_lo: int, k_hi: int) -> np.ndarray:
        """Ring signals at recorder sample times k_lo..k_hi (linear interpolation; the
        averaged plant model has no switching ripple to alias)."""
        t_grid = np.arange(k_lo, k_hi + 1) / self.sample_rate_hz
        if getattr(plant, "fidelity", "emt") == "phasor":
            return plant.sample_ring(names, t_grid)   # straight from the phasors, at our rate
        dt_s = plant.dt_s
        step_now = round(plant.t_s / dt_s)
        step_oldest = max(0, step_now - round(self._ring_s / dt_s))
        s_lo = max(step_oldest, math.floor(t_grid[0] / dt_s + 1e-9))
        s_hi = min(step_now, math.ceil(t_grid[-1] / dt_s - 1e-9))
        raw = plant.read_ring(names, s_lo * dt_s, s_hi - s_lo + 1)
        t_raw = np.arange(s_lo, s_hi + 1) * dt_s
        return np.vstack([np.interp(t_grid, t_raw, row) for row in raw])


# --- signal processing (vectorised) -----------------------------------------------------------

def _positive_sequence(volts: np.ndarray, n: int) -> np.ndarray:
    """Positive-sequence peak phasor from a one-cycle sliding DFT of three phases.
    Result i covers samples i..i+n-1. The reference is the first sample of `volts` rotating
    at nominal frequency, so at nominal frequency the phasor stands still; angles compare
    only within one call."""
    samples = volts.shape[1]
    if samples < n:
        return np.zeros(0, dtype=complex)
    rotation = np.exp(-2j * np.pi * np.arange(samples) / n)
    running = np.cumsum(volts * rotation, axis=1)
    running = np.concatenate((np.zeros((3, 1), dtype=complex), running), axis=1)
    phasors = (running[:, n:] - running[:, :-n]) * (2.0 / n)
    a = np.exp(2j * np.pi / 3.0)
    return (phasors[0] + a * phasors[1] + a * a * phasors[2]) / 3.0


def _wrap(angle_rad: np.ndarray) -> np.ndarray:
    return (angle_rad + np.pi) % (2.0 * np.pi) - np.pi


def _phase_jumps(v1: np.ndarray, mag_pu: np.ndarray, n: int, valid_pu: float,
                 threshold_rad: float) -> np.ndarray:
    """True where the angle advance of the last cycle differs from that of the cycle
    before by more than the threshold (index aligned with v1)."""
    jumps = np.zeros(v1.size, dtype=bool)
    if v1.size <= 2 * n:
        return jumps
    theta = np.angle(v1)
    advance = _wrap(theta[n:] - theta[:-n])                  # index i <-> v1 index i + n
    change = np.abs(_wrap(advance[n:] - advance[:-n]))       # index i <-> v1 index i + 2n
    valid = (mag_pu[2 * n:] > valid_pu) & (mag_pu[n:-n] > valid_pu) & (mag_pu[:-2 * n] > valid_pu)
    jumps[2 * n:] = valid & (change > threshold_rad)
    return jumps


def _cycle_mean(values: np.ndarray, n: int) -> np.ndarray:
    """Mean over the last n samples (fewer at the start)."""
    running = np.concatenate(([0.0], np.cumsum(values)))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - n, 0)
    return (running[idx] - running[lo]) / (idx - lo)


def _instantaneous_q(volts: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """Instantaneous reactive power (line voltages against phase currents); its cycle mean
    is Q of the fundamental, positive when the PCS current leads (injects var)."""
    va, vb, vc = volts
    ia, ib, ic = amps
    return ((vb - vc) * ia + (vc - va) * ib + (va - vb) * ic) / math.sqrt(3.0)


# --- status channels from the PCS event log ------------------------------------------------

STATUS_CHANNELS = ("CURRENT_LIMITED", "RIDE_THROUGH_ACTIVE", "TRIPPED", "MOMENTARY_CESSATION")
_TRIPPED_STATES = {"TRIPPED", "FAULT"}


def _status_changes(code: str, text: str) -> dict[str, bool]:
    """What one event log entry says about the status channels."""
    if code == "LIMIT_ENTER":
        return {"CURRENT_LIMITED": True}
    if code == "LIMIT_EXIT":
        return {"CURRENT_LIMITED": False}
    if code == "RT_ENTER":
        return {"RIDE_THROUGH_ACTIVE": True}
    if code == "RT_EXIT":
        return {"RIDE_THROUGH_ACTIVE": False}
    if code == "MC_ENTER":
        return {"MOMENTARY_CESSATION": True}
    if code == "MC_EXIT":
        return {"MOMENTARY_CESSATION": False}
    if code in ("TRIP", "FAULT"):
        return {"TRIPPED": True}
    if code == "STATE":
        return {"TRIPPED": text in _TRIPPED_STATES,
                "MOMENTARY_CESSATION": text == "MOMENTARY_CESSATION"}
    return {}


def _status_timeline(events: list[tuple[float, str, str]], times_s: np.ndarray) -> dict[str, np.ndarray]:
    """Each status channel at `times_s`, by replaying the event log from its start."""
    changes: dict[str, tuple[list[float], list[bool]]] = {name: ([], []) for name in STATUS_CHANNELS}
    for t_s, code, text in list(events):
        for name, value in _status_changes(code, text).items():
            changes[name][0].append(float(t_s))
            changes[name][1].append(value)
    timeline: dict[str, np.ndarray] = {}
    for name, (when, values) in changes.items():
        if not when:
            timeline[name] = np.zeros(times_s.size, dtype=bool)
            continue
        index = np.searchsorted(np.asarray(when), times_s, side="right") - 1
        states = np.asarray(values, dtype=bool)
        timeline[name] = np.where(index >= 0, states[np.maximum(index, 0)], False)
    return timeline


def plant_time_to_datetime(t_s: float) -> dt.datetime:
    return BASE_DATE + dt.timedelta(microseconds=round(t_s * 1e6))


# --- one recorder per plant ---------------------------------------------------------------

# Weak keys: the registry must not keep a plant alive. The recorder holds no reference to its
# plant (the plant passes itself to the scheduled callback), so the key is not kept alive
# through the value either.
_RECORDERS: "weakref.WeakKeyDictionary[Any, DisturbanceRecorder]" = weakref.WeakKeyDictionary()
_RECORDERS_LOCK = threading.Lock()


def recorder_for(plant: Any) -> DisturbanceRecorder:
    """The plant's disturbance recorder, created and started on first use. The TCP and the
    RTU server of one plant share it, as the two ports of one PCS share its recorder."""
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(plant)
        if recorder is None:
            recorder = DisturbanceRecorder(plant)
            recorder.start(plant)
            _RECORDERS[plant] = recorder
        return recorder
