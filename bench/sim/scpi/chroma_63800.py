"""Chroma 63800 series programmable AC/DC electronic load twin (answers as a 63804).

What the twin speaks, and where each word comes from:

* 63800 Operation & Programming Manual, ch. 8 "Remote Operation": ``[LOAD:]MODE`` with the
  numeric or word forms ``0|CURR``, ``1|POW``, ``2|VOLT``, ``3|RES``, ``4|RLC``, ``5|RLCP``,
  ``6|INRUSH``, ``7|RECT`` (queried as the word); ``[LOAD:]PROTect?`` (bits OVP 8, OCP 32,
  OPP 64, OTP 128) and ``[LOAD:]PROTect:CLEar``; ASCII NR2 numbers, ON|OFF booleans.
* a public 63800 control script (pyvisa, a 63802): ``:LOAD:MODE POW|CURR``, ``:LOAD:POW``,
  ``:LOAD:CURR``, ``:LOAD:CURR:PEAK:MAX``, ``:LOAD 1|0``, ``:MEAS:VOLT?``, ``:MEAS:CURR?``,
  ``:MEAS:POW?``, ``:MEAS:POW:REAL?``. ``MEAS:FREQ?`` by analogy (the front panel shows F).
* ``LOAD?`` answers ``1``/``0`` as Chroma's DC loads do (the driver accepts ON/OFF or 1/0).

Not in the manual pages we could read: the list (profile) mode. The twin implements the
driver's default words (``instruments/ac_load/chroma_63800.py``, DEFAULT_PROFILE_COMMANDS):
``LIST:DWELl <s>,<s>…``, ``LIST:POWer <W>,<W>…``, ``LIST:COUNt <n>``, ``LIST:STATe ON|OFF``.
THIS IS THE ONE PLACE WHERE TWIN AND DRIVER SHARE AN ASSUMPTION: a plan that plays a load
profile passes here whatever the real 63800 expects. Until checked on a real unit, treat
profile playback as unverified (a bench overrides the driver's words with
``options.profile_commands``; the twin would then need the same words). Behaviour chosen for
the twin, equally unverified: ``LIST:STATe ON`` needs the load on (-221 otherwise) and starts
the list at that instant; after the last repetition the load returns to its static
``POWer`` setting; ``LOAD OFF`` stops the list.

Not a 63800 command: ``SIMulation:PROFile '<json>'`` plays one of the virtual bench's
parameterised AI-load generators (``bench.sim.ai_load.profile_from_spec``: training
iterations, checkpoint dips, job envelopes, CSV replay) for someone at an interactive
session. Plans never use it: the driver has no such command, and a real unit would refuse it.

Ratings, stretched for this bench: one 63804 takes 45 A / 4.5 kW at up to 350 V. The
250 kVA bench needs ~57 of them (three phases, 19 in parallel on each, wired line to
neutral at 277 V). The twin stands for that bank answering as one instrument, rated as the
plant's AI-load emulator (``AiLoadConfig``: 250 kVA, 361 A per phase); the settable power and
current ranges are these ratings. Readings are the bank's: ``MEAS:VOLT?`` the mean
line-to-neutral rms at its terminals (the PCC), ``MEAS:CURR?`` the mean phase rms current,
``MEAS:POW?`` the total three-phase real power it absorbs (the AI-load share of the PCC
load, cycle-averaged). The emulator draws in phase with the fundamental voltage (unity
power factor), so its phase current is its power / (3 · V).

Constant resistance (CR, ``MODE RES`` with ``RESistance <ohm>``): the manual (§3.7) describes a
current proportional to the input voltage at unity power factor, i.e. a linear resistor, so the
twin switches the plant's RLC load bank (``Plant.set_load_bank``: constant impedance) to the
conductance of that resistance in each phase, at once, as a bank contactor would. TWO
ASSUMPTIONS SHARED WITH THE DRIVER (instruments/ac_load/chroma_63800.py): the setting word
``RESistance`` (the manual pages we read confirm the mode word, not the setting command), and
that the bank answering as one instrument takes ``RES`` as its equivalent line-to-neutral
resistance per phase. The 63800's own "RLC" mode is a rectified-load emulation (§4.1), not a
linear L or C; the twin, like the unit, offers no linear reactive load (MODE RLC is refused at
LOAD ON as before). While in CR mode ``MEAS:POW?`` reads the bank's share of the PCC load.

Constant current (CC) is emulated as the constant power the current draws at the terminal
voltage when the setting is made (a current loop is not modelled); the other modes are
refused with -221 when the load is switched on in them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from bench.sim.ai_load import AiLoadProfile, ProfileError, profile_from_spec
from bench.sim.scpi.server import (
    Call,
    CommandTable,
    ScpiError,
    ScpiInstrument,
    format_nr3,
    illegal_parameter,
    missing_parameter,
    settings_conflict,
)

if TYPE_CHECKING:
    from bench.sim.plant import Plant

# `[LOAD:]MODE` numeric codes and words as the manual lists them
MODE_WORDS = ("CURR", "POW", "VOLT", "RES", "RLC", "RLCPOW", "INRUSH", "RECT")
MODE_ALIASES = {"CURRENT": "CURR", "POWER": "POW", "VOLTAGE": "VOLT", "RESISTANCE": "RES",
                "RLCP": "RLCPOW"}
SIMULATED_MODES = ("CURR", "POW", "RES")
RESISTANCE_RANGE_OHM = (1.0, 1000.0)   # one 63804 (manual §3.7); the bank: divided by units in parallel
LIST_MAX_POINTS = 100            # the driver's MAX_PROFILE_POINTS (same shared assumption)
LIST_DWELL_RANGE_S = (0.001, 86_400.0)
LIST_COUNT_RANGE = (1, 65535)
FREQUENCY_WINDOW_CYCLES = 6      # zero crossings counted over this many nominal cycles


@dataclass(frozen=True)
class Chroma63800Ratings:
    model: str = "63804"
    unit_current_a: float = 45.0      # one 63804 (manual: OCP threshold)
    unit_power_w: float = 4500.0      # one 63804 (manual: OPP threshold)
    max_input_v_rms: float = 350.0    # manual: above 350 V is over-voltage
    units_per_phase: int = 19         # the bench's stretch (3 x 19 units)


@dataclass
class ListPlayback(AiLoadProfile):
    """The list mode: powers_w[k] for dwells_s[k], the whole list `count` times, then the
    static level (t = 0 is the LIST:STATe ON instant)."""

    dwells_s: Sequence[float]
    powers_w: Sequence[float]
    count: int
    after_w: float

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        ends_s = np.cumsum(self.dwells_s)
        cycle_s = float(ends_s[-1])
        within_s = np.mod(t_s, cycle_s)
        index = np.minimum(np.searchsorted(ends_s, within_s, side="right"), len(self.powers_w) - 1)
        playing = (t_s >= 0.0) & (t_s < self.count * cycle_s)
        return np.where(playing, np.asarray(self.powers_w, dtype=float)[index], self.after_w)


class Chroma63800(ScpiInstrument):
    def __init__(self, plant: "Plant", *, ratings: Chroma63800Ratings = Chroma63800Ratings(),
                 serial: str = "638040000001") -> None:
        self.plant = plant
        self.ratings = ratings
        emulator = plant.config.ai_load
        self.power_max_w = float(emulator.s_rated_va)
        self.current_max_a = float(emulator.i_max_a)
        self.f_nom_hz = float(plant.config.grid.f_nom_hz)
        super().__init__(manufacturer="Chroma ATE", model=ratings.model, serial=serial, firmware="1.00")
        self.reset()

    def reset(self) -> None:
        """*RST: load off, CC mode, 0 A / 0 W, list idle and empty."""
        self.mode = "CURR"
        self.power_w = 0.0
        self.current_a = 0.0
        self.resistance_ohm = RESISTANCE_RANGE_OHM[1]
        self._bank_p_w = 0.0      # what the twin last switched into the plant's RLC bank
        self.peak_current_max_a = self.current_max_a * math.sqrt(2.0)
        self.load_on = False
        self.protection_bits = 0
        self.list_dwells_s: list[float] = []
        self.list_powers_w: list[float] = []
        self.list_count = 1
        self.list_running = False
        self.sim_profile: AiLoadProfile | None = None
        self._apply()

    def build_commands(self, t: CommandTable) -> None:
        t.add("[LOAD:]MODE", set=self._set_mode, query=lambda c: self.mode)
        t.add("[LOAD:]POWer", set=self._set_power, query=lambda c: format_nr3(self.power_w))
        t.add("[LOAD:]CURRent", set=self._set_current, query=lambda c: format_nr3(self.current_a))
        t.add("[LOAD:]RESistance", set=self._set_resistance, query=lambda c: format_nr3(self.resistance_ohm))
        t.add("[LOAD:]CURRent:PEAK:MAXimum", set=self._set_peak_current,
              query=lambda c: format_nr3(self.peak_current_max_a))
        t.add("LOAD[:STATe]", set=self._set_load, query=lambda c: "1" if self.load_on else "0")
        t.add("[LOAD:]PROTect", query=lambda c: str(self.protection_bits))
        t.add("[LOAD:]PROTect:CLEar", set=lambda c: setattr(self, "protection_bits", 0))
        t.add("MEASure:VOLTage", query=lambda c: format_nr3(self._terminal_v_ln_rms_v()))
        t.add("MEASure:CURRent", query=lambda c: format_nr3(self._phase_current_a()))
        t.add("MEASure:POWer[:REAL]", query=lambda c: format_nr3(self._absorbed_power_w()))
        t.add("MEASure:FREQuency", query=lambda c: format_nr3(self._frequency_hz()))
        # list (profile) mode: the driver's words, an assumption shared with it (see above)
        t.add("LIST:DWELl", set=self._set_list_dwells, query=lambda c: _join(self.list_dwells_s))
        t.add("LIST:POWer", set=self._set_list_powers, query=lambda c: _join(self.list_powers_w))
        t.add("LIST:COUNt", set=self._set_list_count, query=lambda c: str(self.list_count))
        t.add("LIST:STATe", set=self._set_list_state, query=lambda c: "1" if self.list_running else "0")
        # the virtual bench's own back door, not a 63800 command (see the module docstring)
        t.add("SIMulation:PROFile", set=self._set_sim_profile)

    # --- static settings -------------------------------------------------------------
    def _set_mode(self, c: Call) -> None:
        c.expect_count(1, 1)
        word = c.text().upper()
        if word.isdigit():
            index = int(word)
            if not 0 <= index < len(MODE_WORDS):
                raise illegal_parameter(f"MODE {word}")
            word = MODE_WORDS[index]
        word = MODE_ALIASES.get(word, word)
        if word not in MODE_WORDS:
            raise illegal_parameter(f"MODE {c.text()}")
        self.mode = word
        self._apply()

    def _set_power(self, c: Call) -> None:
        self.power_w = c.number(unit="W", low=0.0, high=self.power_max_w)
        self._apply()

    def _set_current(self, c: Call) -> None:
        self.current_a = c.number(unit="A", low=0.0, high=self.current_max_a)
        self._apply()

    def _set_resistance(self, c: Call) -> None:
        # 19 units in parallel per phase: the bank reaches 1/19 of one unit's minimum
        low = RESISTANCE_RANGE_OHM[0] / self.ratings.units_per_phase
        self.resistance_ohm = c.number(unit="OHM", low=low, high=RESISTANCE_RANGE_OHM[1])
        self._apply()

    def _set_peak_current(self, c: Call) -> None:
        self.peak_current_max_a = c.number(unit="A", low=0.0, high=self.current_max_a * math.sqrt(2.0) * 3.0)

    def _set_load(self, c: Call) -> None:
        on = c.boolean()
        if on and self.mode not in SIMULATED_MODES:
            raise settings_conflict(f"mode {self.mode} is not simulated by the virtual bench "
                                    f"(only {', '.join(SIMULATED_MODES)})")
        self.load_on = on
        if not on:
            self.list_running = False  # opening the input ends a running list
            self.sim_profile = None
        self._apply()

    # --- list mode ----------------------------------------------------------------------
    def _list_values(self, c: Call, *, unit: str, low: float, high: float) -> list[float]:
        if self.list_running:
            raise settings_conflict("the list is running: LIST:STATe OFF first")
        values = c.numbers(unit=unit, low=low, high=high)
        if len(values) > LIST_MAX_POINTS:
            raise ScpiError(-223, "Too much data", f"{len(values)} points, at most {LIST_MAX_POINTS}")
        return values

    def _set_list_dwells(self, c: Call) -> None:
        self.list_dwells_s = self._list_values(c, unit="S", low=LIST_DWELL_RANGE_S[0], high=LIST_DWELL_RANGE_S[1])

    def _set_list_powers(self, c: Call) -> None:
        self.list_powers_w = self._list_values(c, unit="W", low=0.0, high=self.power_max_w)

    def _set_list_count(self, c: Call) -> None:
        if self.list_running:
            raise settings_conflict("the list is running: LIST:STATe OFF first")
        self.list_count = c.integer(low=LIST_COUNT_RANGE[0], high=LIST_COUNT_RANGE[1])

    def _set_list_state(self, c: Call) -> None:
        start = c.boolean()
        if not start:
            self.list_running = False
            self._apply()
            return
        if not self.list_powers_w:
            raise settings_conflict("LIST:STATe ON with an empty list")
        if len(self.list_dwells_s) != len(self.list_powers_w):
            raise settings_conflict(f"{len(self.list_dwells_s)} dwell times for "
                                    f"{len(self.list_powers_w)} power levels")
        if not self.load_on:
            raise settings_conflict("LIST:STATe ON needs the load on (LOAD ON)")
        if self.mode != "POW":
            raise settings_conflict(f"a power list needs MODE POW (mode is {self.mode})")
        self.list_running = True
        self.sim_profile = None
        self._apply()  # the list's time 0 is now: set_ai_load starts a profile at plant time

    def _set_sim_profile(self, c: Call) -> None:
        if not c.args:
            raise missing_parameter(c.header)
        text = ",".join(c.args).strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        try:
            spec = json.loads(text)
            profile = profile_from_spec(spec)
        except (ValueError, ProfileError) as error:  # json.JSONDecodeError is a ValueError
            raise illegal_parameter(f"SIMulation:PROFile: {error}") from None
        if not self.load_on:
            raise settings_conflict("SIMulation:PROFile needs the load on (LOAD ON)")
        self.list_running = False
        self.sim_profile = profile
        self._apply()

    # --- the plant ----------------------------------------------------------------------
    def _static_power_w(self) -> float:
        if self.mode == "POW":
            return self.power_w
        # CC: the power this rms current draws at the present terminal voltage
        return 3.0 * self.current_a * self._terminal_v_ln_rms_v()

    def _apply(self) -> None:
        """Tell the plant what the load draws from now on (a new profile starts at t = now)."""
        resistive = self.load_on and self.mode == "RES"
        v_ln_nom = self.plant.config.grid.v_ll_nom_v / math.sqrt(3.0)
        bank_p_w = 3.0 * v_ln_nom ** 2 / self.resistance_ohm if resistive else 0.0
        if bank_p_w != self._bank_p_w:
            # only on a change: the plant's bank is not the twin's alone (a bench helper may
            # have switched it), so an AI-load setting must not reset it
            self.plant.set_load_bank(p_w=bank_p_w)
            self._bank_p_w = bank_p_w
        if not self.load_on or resistive:
            self.plant.set_ai_load(None)
        elif self.sim_profile is not None:
            self.plant.set_ai_load(self.sim_profile)
        elif self.list_running:
            self.plant.set_ai_load(ListPlayback(tuple(self.list_dwells_s), tuple(self.list_powers_w),
                                                self.list_count, self._static_power_w()))
        else:
            self.plant.set_ai_load(profile_from_spec({"kind": "constant", "level_w": self._static_power_w()}))

    # --- measurements ---------------------------------------------------------------------
    def _last_cycles(self, n_cycles: float) -> np.ndarray:
        """The latest whole cycles of the three terminal (PCC) voltages from the plant."""
        n = max(int(round(n_cycles / (self.f_nom_hz * self.plant.dt_s))), 2)
        available = int(round(self.plant.t_s / self.plant.dt_s)) + 1
        n = min(n, available, int(round(self.plant.config.ring_s / self.plant.dt_s)))
        start_s = self.plant.t_s - (n - 1) * self.plant.dt_s
        return self.plant.read_ring(["pcc_va_v", "pcc_vb_v", "pcc_vc_v"], max(start_s, 0.0), n)

    def _terminal_v_ln_rms_v(self) -> float:
        v = self._last_cycles(1.0)
        return float(np.mean(np.sqrt(np.mean(v * v, axis=1))))

    def _absorbed_power_w(self) -> float:
        readings = self.plant.load_measurements()
        if self.load_on and self.mode == "RES":
            return float(readings["p_w"] - readings["ai_p_w"])   # the bank's share
        return float(readings["ai_p_w"])

    def _phase_current_a(self) -> float:
        v_ln = self._terminal_v_ln_rms_v()
        return abs(self._absorbed_power_w()) / (3.0 * v_ln) if v_ln > 1.0 else 0.0

    def _frequency_hz(self) -> float:
        va = self._last_cycles(FREQUENCY_WINDOW_CYCLES)[0]
        rising = np.flatnonzero((va[:-1] < 0.0) & (va[1:] >= 0.0))
        if len(rising) < 2:
            return 0.0  # no voltage at the terminals
        # sub-sample crossing instants by linear interpolation
        exact = rising + va[rising] / (va[rising] - va[rising + 1])
        return float((len(exact) - 1) / ((exact[-1] - exact[0]) * self.plant.dt_s))


def _join(values: Sequence[float]) -> str:
    return ",".join(format_nr3(v) for v in values)
