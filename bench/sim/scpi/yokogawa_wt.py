"""Yokogawa WT5000 precision power analyzer twin (three input elements), served over VXI-11.

A real WT is reached on Ethernet through VXI-11 (``TCPIP::<ip>::INSTR``) or Yokogawa's own
framed protocol on port 10001 — never a raw SCPI socket — so the launcher serves this twin
with ``bench/sim/vxi11_server.py``.

What the twin speaks, and where each word comes from (WT1800/WT1800E programming manual
IM WT1801-17EN, as quoted in the Yokogawa sample program "WT1800CommSample" and in public
command summaries of that manual; the WT5000 keeps the same command groups):

* ``:COMMunicate:HEADer {ON|OFF}``: with ON a query's answer starts with its header
  (``:INPUT:WIRING P3W4``); the twin starts with headers ON, as the instrument does, so a
  driver that forgets to turn them off cannot parse a number.
* ``[:INPut]:WIRing {P1W2|P1W3|P3W3|P3W4|V3A3}[,…]``: one pattern per wiring unit, in element
  order (P1W2 takes one element, P3W3 two, P3W4 three); ``:INPUT:WIRING?`` answers the list.
* ``[:INPut]:VOLTage:RANGe[:ALL] <V>``, ``[:INPut]:CURRent:RANGe[:ALL] <A>`` and their
  ``:ELEMent<x>`` forms; ``[:INPut]:SCALing[:STATe][:ALL] {ON|OFF}``,
  ``[:INPut]:SCALing:{VT|CT|SFACtor}[:ALL|:ELEMent<x>] <0.0001 … 99999.9999>``;
  ``[:INPut]:SYNChronize[:ALL|:ELEMent<x>] {U<x>|I<x>|NONE}`` (the measurement period's source).
* ``:RATE {50MS|100MS|200MS|500MS|1S|2S|5S|10S|20S}`` (the data update interval; queried in s).
* ``:NUMeric:FORMat {ASCii|FLOat}``, ``:NUMeric[:NORMal]:NUMber <n>``,
  ``:NUMeric[:NORMal]:ITEM<x> {NONE|<function>[,<element>]}`` with element 1…3 or SIGMA,
  ``:NUMeric[:NORMal]:VALue? [<n>]``. In ASCII the values are comma-separated NR3 numbers,
  ``NAN`` where there is no data and ``INF`` where the input is over its range; in FLOat they
  are one IEEE 488.2 block of big-endian IEEE 754 single-precision numbers, no data being
  0x7E951BEE (9.91E+37) and over-range 0x7E94F56A (9.9E+37) (the sample program's decoder).
* ``:STATus:ERRor?`` answers ``<code>,"<message>"`` (Yokogawa numbers its errors without sign).

How it measures (the part a real WT does in hardware): every update interval — aligned to
plant time, k·RATE … (k+1)·RATE — each element integrates u², i² and u·i of its inputs over the
whole cycles of its synchronisation source inside the interval (rising zero crossings,
interpolated between the plant's 20 kSa/s ring samples), so the values of one interval are
the means over whole periods, as the instrument's "measurement period" is. ``VALue?`` answers
the latest completed interval; two reads in the same interval get the same numbers. Per
element: U = √mean(u²), I = √mean(i²), P = mean(u·i), S = U·I, Q = s·√(S² − P²) with s = +1
when the current lags the voltage (the fundamental's phase), λ = P/S, Φ = the angle of λ,
FU/FI from the zero crossings in the interval. Σ of a wiring unit: P and Q summed; S summed
for P3W4 and √3/2·(S1 + S2) for P3W3; U and I the mean of the unit's elements (Type 1).

The cabling (the bench's, like the scope twin's probes): element k of a P3W4 or P1W2 unit
sees the PCC phase-k voltage to neutral and the PCS phase-k current; a P3W3 unit measures
the two-wattmeter way — element 1 U = v_a − v_c with i_a, element 2 U = v_b − v_c with i_b.
The current inputs sit behind current transformers of ratio ``ct_ratio`` (500 A : 5 A by
default, ratio 100): what the WT's input sees is the plant current / ct_ratio, and the
instrument's own CT scaling (``:SCALing:CT``) multiplies it back when scaling is ON.
THE TWIN'S OWN CHOICES, not from the manual: an input is "over range" when its rms exceeds
140 % of the range (the instrument's display limit for rms as far as we know; the manual's
peak criterion is not modelled), which marks U, P, S, Q, λ (voltage) or I, P, S, Q, λ
(current) of that element and the Σ of its unit; V3A3 and P1W3 patterns are accepted by a real
unit but refused here (-221, not simulated); ITEM functions other than U, I, URMS, IRMS, P, S,
Q, LAMBda, PHI, FU and FI are refused (-224).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from bench.sim.scpi.server import (
    Call,
    CommandTable,
    ScpiError,
    ScpiInstrument,
    data_out_of_range,
    definite_length_block,
    illegal_parameter,
    settings_conflict,
)

if TYPE_CHECKING:
    from bench.sim.plant import Plant

UPDATE_RATES_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
VOLTAGE_RANGES_V = (1.5, 3.0, 6.0, 10.0, 15.0, 30.0, 60.0, 100.0, 150.0, 300.0, 600.0, 1000.0)
CURRENT_RANGES_A = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)      # a 5 A input element
SCALING_RANGE = (0.0001, 99999.9999)
OVERRANGE_FRACTION = 1.4
PATTERN_ELEMENTS = {"P1W2": 1, "P1W3": 2, "P3W3": 2, "P3W4": 3, "V3A3": 3}
SIMULATED_PATTERNS = ("P1W2", "P3W3", "P3W4")
FUNCTIONS = ("URMS", "IRMS", "U", "I", "P", "S", "Q", "LAMBDA", "PHI", "FU", "FI")
FUNCTION_ALIASES = {"LAMB": "LAMBDA"}
MAX_ITEMS = 255
# FLOat format markers (big-endian single precision), from the sample program's decoder
NO_DATA_FLOAT = struct.unpack(">f", bytes.fromhex("7E951BEE"))[0]     # 9.91E+37
OVER_RANGE_FLOAT = struct.unpack(">f", bytes.fromhex("7E94F56A"))[0]  # 9.9E+37
OVER = math.inf            # an over-range value inside the twin (NaN: no data)

PHASE_VOLTAGES = ("pcc_va_v", "pcc_vb_v", "pcc_vc_v")
PHASE_CURRENTS = ("pcs_ia_a", "pcs_ib_a", "pcs_ic_a")


@dataclass(frozen=True)
class WtRatings:
    model: str = "WT5000"
    elements: int = 3
    ct_ratio: float = 100.0          # the bench's current transformers: 500 A : 5 A


@dataclass(frozen=True)
class ElementCabling:
    """What one element's inputs are connected to: U = u_plus − u_minus, I = current / CT."""

    u_plus: str
    u_minus: str | None
    current: str


@dataclass
class ElementSetup:
    voltage_range_v: float = 1000.0
    current_range_a: float = 5.0
    scaling_on: bool = False
    vt: float = 1.0
    ct: float = 1.0
    sfactor: float = 1.0
    sync: str = ""                  # "U<x>" | "I<x>" | "NONE"; "" = the element's own U


@dataclass
class ElementValues:
    """One element's (or one Σ's) results of one update interval, displayed units."""

    u: float = math.nan
    i: float = math.nan
    p: float = math.nan
    s: float = math.nan
    q: float = math.nan
    lam: float = math.nan
    phi: float = math.nan
    fu: float = math.nan
    fi: float = math.nan


@dataclass
class Interval:
    index: int
    elements: dict[int, ElementValues] = field(default_factory=dict)
    sigma: ElementValues = field(default_factory=ElementValues)


class YokogawaWt(ScpiInstrument):
    def __init__(self, plant: "Plant", *, ratings: WtRatings = WtRatings(),
                 serial: str = "91M500001") -> None:
        self.plant = plant
        self.ratings = ratings
        super().__init__(manufacturer="YOKOGAWA", model=ratings.model, serial=serial, firmware="F1.01")
        self.header_on = True           # a communication setting: *RST leaves it alone
        self.verbose_on = False
        self.reset()

    # --- state --------------------------------------------------------------------------
    def reset(self) -> None:
        """*RST: every element its own 1P2W unit, top ranges, scaling off, 200 ms updates,
        ASCII numbers, 15 items: U, I, P, S, Q, λ, FU of element 1 and 2, U of element 3."""
        n = self.ratings.elements
        self.wiring: list[str] = ["P1W2"] * n
        self.setup = {e: ElementSetup() for e in range(1, n + 1)}
        self.update_s = 0.2
        self.float_format = False
        defaults = [(f, e) for e in range(1, n + 1) for f in ("URMS", "IRMS", "P", "S", "Q", "LAMBDA", "FU")]
        self.items: list[tuple[str, str] | None] = [None] * MAX_ITEMS
        for index, item in enumerate(defaults[:15]):
            self.items[index] = (item[0], str(item[1]))
        self.item_count = 15
        self._cache: Interval | None = None

    def _changed(self) -> None:
        self._cache = None   # settings changed: the current interval's numbers are recomputed

    # --- commands -----------------------------------------------------------------------
    def build_commands(self, t: CommandTable) -> None:
        t.add("COMMunicate:HEADer", set=lambda c: setattr(self, "header_on", c.boolean()),
              query=lambda c: "1" if self.header_on else "0")
        t.add("COMMunicate:VERBose", set=lambda c: setattr(self, "verbose_on", c.boolean()),
              query=lambda c: "1" if self.verbose_on else "0")
        t.add("COMMunicate:REMote", set=lambda c: c.boolean(), query=lambda c: "1")
        t.add("STATus:ERRor", query=self._next_error)
        t.add("[INPut:]WIRing", set=self._set_wiring, query=lambda c: ",".join(self._units_text()))
        t.add("[INPut:]VOLTage:RANGe[:ALL]", set=lambda c: self._set_all(c, "voltage_range_v", self._volt_range))
        t.add("[INPut:]VOLTage:RANGe:ELEMent<x>", set=lambda c: self._set_one(c, "voltage_range_v", self._volt_range),
              query=lambda c: _nr3(self._element(c).voltage_range_v))
        t.add("[INPut:]CURRent:RANGe[:ALL]", set=lambda c: self._set_all(c, "current_range_a", self._curr_range))
        t.add("[INPut:]CURRent:RANGe:ELEMent<x>", set=lambda c: self._set_one(c, "current_range_a", self._curr_range),
              query=lambda c: _nr3(self._element(c).current_range_a))
        t.add("[INPut:]SCALing[:STATe][:ALL]", set=lambda c: self._set_all(c, "scaling_on", Call.boolean),
              query=lambda c: "1" if self.setup[1].scaling_on else "0")
        t.add("[INPut:]SCALing[:STATe]:ELEMent<x>", set=lambda c: self._set_one(c, "scaling_on", Call.boolean),
              query=lambda c: "1" if self._element(c).scaling_on else "0")
        for word, attribute in (("VT", "vt"), ("CT", "ct"), ("SFACtor", "sfactor")):
            t.add(f"[INPut:]SCALing:{word}[:ALL]", set=lambda c, a=attribute: self._set_all(c, a, self._scaling))
            t.add(f"[INPut:]SCALing:{word}:ELEMent<x>", set=lambda c, a=attribute: self._set_one(c, a, self._scaling),
                  query=lambda c, a=attribute: f"{getattr(self._element(c), a):.4f}")
        t.add("[INPut:]SYNChronize[:ALL]", set=lambda c: self._set_all(c, "sync", self._sync_source))
        t.add("[INPut:]SYNChronize:ELEMent<x>", set=lambda c: self._set_one(c, "sync", self._sync_source),
              query=lambda c: self._element(c).sync or f"U{c.suffixes['x']}")
        t.add("RATE", set=self._set_rate, query=lambda c: _nr3(self.update_s))
        t.add("NUMeric:FORMat", set=self._set_format, query=lambda c: "FLOAT" if self.float_format else "ASCII")
        t.add("NUMeric[:NORMal]:NUMber", set=self._set_number, query=lambda c: str(self.item_count))
        t.add("NUMeric[:NORMal]:ITEM<x>", set=self._set_item, query=self._item_text)
        t.add("NUMeric[:NORMal]:VALue", query=self._values)

    def format_response(self, call: Call, response: str) -> str:
        if not self.header_on or call.header.lstrip(":").startswith("*"):
            return response
        return ":" + ":".join(call.path) + " " + response

    def format_error(self, error: ScpiError) -> str:
        text = f"{error.message}; {error.detail}" if error.detail else error.message
        return f'{abs(error.code)},"{text}"'

    # --- settings -------------------------------------------------------------------------
    def _element(self, c: Call) -> ElementSetup:
        return self.setup[c.suffix("x", low=1, high=self.ratings.elements)]

    def _set_all(self, c: Call, attribute: str, parse: Callable[[Call], object]) -> None:
        value = parse(c)
        for setup in self.setup.values():
            setattr(setup, attribute, value)
        self._changed()

    def _set_one(self, c: Call, attribute: str, parse: Callable[[Call], object]) -> None:
        setup = self._element(c)
        setattr(setup, attribute, parse(c))
        self._changed()

    @staticmethod
    def _from_list(c: Call, unit: str, allowed: tuple[float, ...]) -> float:
        value = c.number(unit=unit)
        for candidate in allowed:
            if math.isclose(value, candidate, rel_tol=1e-6):
                return candidate
        raise data_out_of_range(f"{c.header} {c.text()} (ranges: {', '.join(f'{v:g}' for v in allowed)} {unit})")

    def _volt_range(self, c: Call) -> float:
        return self._from_list(c, "V", VOLTAGE_RANGES_V)

    def _curr_range(self, c: Call) -> float:
        return self._from_list(c, "A", CURRENT_RANGES_A)

    @staticmethod
    def _scaling(c: Call) -> float:
        return c.number(low=SCALING_RANGE[0], high=SCALING_RANGE[1])

    def _sync_source(self, c: Call) -> str:
        word = c.text().upper()
        if word == "NONE":
            return word
        if len(word) >= 2 and word[0] in "UI" and word[1:].isdigit() and 1 <= int(word[1:]) <= self.ratings.elements:
            return word
        raise illegal_parameter(f"{c.header} {c.text()}")

    def _set_wiring(self, c: Call) -> None:
        patterns = [arg.upper() for arg in c.args if arg]
        if not patterns:
            raise illegal_parameter(f"{c.header}: no wiring pattern")
        used = 0
        for pattern in patterns:
            if pattern not in PATTERN_ELEMENTS:
                raise illegal_parameter(f"{c.header} {pattern}")
            if pattern not in SIMULATED_PATTERNS:
                raise settings_conflict(f"wiring {pattern} is not simulated by the virtual bench "
                                        f"(only {', '.join(SIMULATED_PATTERNS)})")
            used += PATTERN_ELEMENTS[pattern]
        if used > self.ratings.elements:
            raise settings_conflict(f"{','.join(patterns)} needs {used} elements, the "
                                    f"{self.ratings.model} has {self.ratings.elements}")
        expanded: list[str] = []
        for pattern in patterns:
            expanded += [pattern] * PATTERN_ELEMENTS[pattern]
        self.wiring = expanded + ["P1W2"] * (self.ratings.elements - used)
        self._changed()

    def _units(self) -> list[tuple[str, tuple[int, ...]]]:
        """(pattern, elements) of each wiring unit, in element order."""
        units, element = [], 1
        while element <= self.ratings.elements:
            pattern = self.wiring[element - 1]
            count = PATTERN_ELEMENTS[pattern]
            units.append((pattern, tuple(range(element, element + count))))
            element += count
        return units

    def _units_text(self) -> list[str]:
        return [pattern for pattern, _ in self._units()]

    def _set_rate(self, c: Call) -> None:
        value = c.number(unit="S")
        for rate in UPDATE_RATES_S:
            if math.isclose(value, rate, rel_tol=1e-6):
                self.update_s = rate
                self._changed()
                return
        raise data_out_of_range(f"RATE {c.text()} (update intervals: "
                                + ", ".join(f"{r:g} s" for r in UPDATE_RATES_S) + ")")

    def _set_format(self, c: Call) -> None:
        self.float_format = c.choice(("ASCii", "FLOat")) == "FLOAT"

    def _set_number(self, c: Call) -> None:
        self.item_count = c.integer(low=1, high=MAX_ITEMS)

    def _set_item(self, c: Call) -> None:
        index = c.suffix("x", low=1, high=MAX_ITEMS)
        c.expect_count(1, 3)
        function = c.text(0).upper()
        function = FUNCTION_ALIASES.get(function, function)
        if function == "NONE":
            self.items[index - 1] = None
            return
        if function not in FUNCTIONS:
            raise illegal_parameter(f"{c.header}: function {c.text(0)} (the twin has {', '.join(FUNCTIONS)})")
        element = (c.args[1].upper() if len(c.args) > 1 else "1")
        if element.startswith("SIGM"):
            if function in ("FU", "FI"):
                raise illegal_parameter(f"{c.header}: {function} is measured per element, not for a Σ")
            element = "SIGMA"
        elif not (element.isdigit() and 1 <= int(element) <= self.ratings.elements):
            raise illegal_parameter(f"{c.header}: element {c.args[1]}")
        self.items[index - 1] = (function, element)

    def _item_text(self, c: Call) -> str:
        item = self.items[c.suffix("x", low=1, high=MAX_ITEMS) - 1]
        return "NONE" if item is None else f"{item[0]},{item[1]}"

    # --- values ---------------------------------------------------------------------------
    def _values(self, c: Call) -> str | bytes:
        c.expect_count(0, 1)
        interval = self._latest_interval()
        if c.args:
            selected = [self.items[c.integer(0, low=1, high=MAX_ITEMS) - 1]]
        else:
            selected = self.items[:self.item_count]
        values = [self._item_value(interval, item) for item in selected]
        if self.float_format:
            words = [NO_DATA_FLOAT if math.isnan(v) else OVER_RANGE_FLOAT if math.isinf(v) else v for v in values]
            return definite_length_block(struct.pack(f">{len(words)}f", *words))
        return ",".join("NAN" if math.isnan(v) else "INF" if math.isinf(v) else f"{v:.5E}" for v in values)

    def _item_value(self, interval: Interval | None, item: tuple[str, str] | None) -> float:
        if item is None or interval is None:
            return math.nan
        function, element = item
        values = interval.sigma if element == "SIGMA" else interval.elements[int(element)]
        attribute = {"URMS": "u", "U": "u", "IRMS": "i", "I": "i", "P": "p", "S": "s", "Q": "q",
                     "LAMBDA": "lam", "PHI": "phi", "FU": "fu", "FI": "fi"}[function]
        return getattr(values, attribute)

    def _latest_interval(self) -> Interval | None:
        """The latest update interval completed by the present plant time (None before one has)."""
        index = int(math.floor(self.plant.t_s / self.update_s + 1e-9))
        if self._cache is not None and self._cache.index == index:
            return self._cache
        self._cache = self._measure(index)
        return self._cache

    def _measure(self, index: int) -> Interval | None:
        end_s = index * self.update_s
        start_s = end_s - self.update_s
        dt_s = self.plant.dt_s
        first = int(math.ceil(start_s / dt_s - 1e-9))
        last = int(math.floor(end_s / dt_s + 1e-9))
        if first < 0 or last - first < 4:
            return None
        cabling = self._cabling()
        names = sorted({n for cab in cabling.values() for n in (cab.u_plus, cab.u_minus, cab.current) if n})
        try:
            raw = self.plant.read_ring(names, first * dt_s, last - first + 1)
        except ValueError:
            return None          # the interval has left the plant's ring: no data
        rows = dict(zip(names, raw))
        inputs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for element, cab in cabling.items():
            u = rows[cab.u_plus] - (rows[cab.u_minus] if cab.u_minus else 0.0)
            inputs[element] = (u, rows[cab.current] / self.ratings.ct_ratio)
        interval = Interval(index)
        for element in cabling:
            interval.elements[element] = self._element_values(element, inputs, dt_s)
        for pattern, elements in self._units():
            if pattern != "P1W2":
                interval.sigma = _sigma(pattern, [interval.elements[e] for e in elements])
                break            # Σ (SIGMA) is the first unit's; SIGMB… are not simulated
        return interval

    def _cabling(self) -> dict[int, ElementCabling]:
        cabling = {}
        for pattern, elements in self._units():
            for position, element in enumerate(elements):
                phase = element - 1 if pattern != "P3W3" else position
                if pattern == "P3W3":
                    # two-wattmeter: line-to-line voltages to phase C, currents of phases A and B
                    cabling[element] = ElementCabling(PHASE_VOLTAGES[position], PHASE_VOLTAGES[2],
                                                      PHASE_CURRENTS[position])
                else:
                    cabling[element] = ElementCabling(PHASE_VOLTAGES[phase % 3], None, PHASE_CURRENTS[phase % 3])
        return cabling

    def _element_values(self, element: int, inputs: dict[int, tuple[np.ndarray, np.ndarray]],
                        dt_s: float) -> ElementValues:
        setup = self.setup[element]
        u, i = inputs[element]
        sync = setup.sync or f"U{element}"
        if sync == "NONE":
            a, b = 0.0, float(len(u) - 1)
        else:
            source_u, source_i = inputs.get(int(sync[1:]), inputs[element])
            a, b = _whole_periods(source_u if sync[0] == "U" else source_i)
        u_in = math.sqrt(max(_mean_between(u * u, a, b), 0.0))
        i_in = math.sqrt(max(_mean_between(i * i, a, b), 0.0))
        p_in = _mean_between(u * i, a, b)
        s_in = u_in * i_in
        q_in = math.sqrt(max(s_in * s_in - p_in * p_in, 0.0)) * _lag_sign(u, i, a, b)
        ku = setup.vt if setup.scaling_on else 1.0
        ki = setup.ct if setup.scaling_on else 1.0
        kp = ku * ki * (setup.sfactor if setup.scaling_on else 1.0)
        lam = p_in / s_in if s_in > 0.0 else math.nan
        values = ElementValues(u=u_in * ku, i=i_in * ki, p=p_in * kp, s=s_in * kp, q=q_in * kp, lam=lam,
                               phi=math.degrees(math.acos(max(-1.0, min(1.0, lam)))) * (1 if q_in >= 0 else -1)
                               if not math.isnan(lam) else math.nan,
                               fu=_frequency_hz(u, dt_s), fi=_frequency_hz(i, dt_s))
        u_over = u_in > OVERRANGE_FRACTION * setup.voltage_range_v
        i_over = i_in > OVERRANGE_FRACTION * setup.current_range_a
        if u_over:
            values.u = OVER
        if i_over:
            values.i = OVER
        if u_over or i_over:
            values.p = values.s = values.q = values.lam = values.phi = OVER
        return values


# --- the mathematics of one interval (pure functions) -------------------------------------------

def _rising_crossings(x: np.ndarray) -> np.ndarray:
    """Fractional sample indices where x rises through zero (linear interpolation)."""
    j = np.flatnonzero((x[:-1] < 0.0) & (x[1:] >= 0.0))
    return j + x[j] / (x[j] - x[j + 1])


def _whole_periods(sync: np.ndarray) -> tuple[float, float]:
    """The span between the first and the last rising zero crossing (whole periods of the
    synchronisation source); the whole interval when it shows less than one period."""
    crossings = _rising_crossings(sync)
    if crossings.size >= 2:
        return float(crossings[0]), float(crossings[-1])
    return 0.0, float(sync.size - 1)


def _integral_to(y: np.ndarray, cumulative: np.ndarray, x: float) -> float:
    """∫ from sample 0 to fractional index x of y, linearly interpolated (sample units)."""
    j = min(int(math.floor(x)), y.size - 2)
    frac = x - j
    y_x = y[j] + frac * (y[j + 1] - y[j])
    return float(cumulative[j] + 0.5 * (y[j] + y_x) * frac)


def _mean_between(y: np.ndarray, a: float, b: float) -> float:
    """Mean of y (linearly interpolated) over the fractional index span [a, b]."""
    cumulative = np.concatenate(([0.0], np.cumsum(0.5 * (y[1:] + y[:-1]))))
    return (_integral_to(y, cumulative, b) - _integral_to(y, cumulative, a)) / (b - a)


def _lag_sign(u: np.ndarray, i: np.ndarray, a: float, b: float) -> float:
    """+1 when the fundamental current lags the voltage (Im(U·conj(I)) ≥ 0), else −1."""
    lo, hi = int(math.floor(a)), int(math.ceil(b))
    crossings = _rising_crossings(u[lo:hi + 1])
    if crossings.size >= 2:
        period = (crossings[-1] - crossings[0]) / (crossings.size - 1)
    else:
        period = max(hi - lo, 1)
    n = np.arange(lo, hi + 1)
    rotor = np.exp(-2j * np.pi * n / period)
    u1, i1 = np.sum(u[lo:hi + 1] * rotor), np.sum(i[lo:hi + 1] * rotor)
    return 1.0 if (u1 * np.conj(i1)).imag >= 0.0 else -1.0


def _frequency_hz(x: np.ndarray, dt_s: float) -> float:
    crossings = _rising_crossings(x)
    if crossings.size < 2 or np.max(np.abs(x)) == 0.0:
        return math.nan
    return float((crossings.size - 1) / ((crossings[-1] - crossings[0]) * dt_s))


def _sigma(pattern: str, elements: list[ElementValues]) -> ElementValues:
    """Σ of one wiring unit (Type 1 apparent power)."""
    def total(attribute: str) -> float:
        return sum(getattr(e, attribute) for e in elements)

    def mean(attribute: str) -> float:
        return total(attribute) / len(elements)

    p, q = total("p"), total("q")
    s = total("s") * (math.sqrt(3.0) / 2.0 if pattern == "P3W3" else 1.0)
    lam = p / s if s > 0.0 and math.isfinite(s) else (OVER if math.isinf(s) else math.nan)
    return ElementValues(u=mean("u"), i=mean("i"), p=p, s=s, q=q, lam=lam,
                         phi=math.degrees(math.acos(max(-1.0, min(1.0, lam)))) if math.isfinite(lam) else lam)


def _nr3(value: float) -> str:
    return f"{value:.4E}"


__all__ = ["YokogawaWt", "WtRatings", "NO_DATA_FLOAT", "OVER_RANGE_FLOAT", "UPDATE_RATES_S"]
