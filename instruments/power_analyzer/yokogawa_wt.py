"""Yokogawa WT1800 / WT5000 precision power analyzers, read for their numeric values.

Reached on Ethernet through VXI-11 (``TCPIP::<ip>::INSTR``); the WT's other Ethernet access is
Yokogawa's own framed protocol on port 10001, not a raw SCPI socket.

Commands from the WT1800/WT1800E programming manual (IM WT1801-17EN) as quoted in Yokogawa's
sample program "WT1800CommSample" and in public command summaries of that manual; the WT5000
keeps the same groups:

* ``*IDN?`` answers ``YOKOGAWA,<model>,<serial>,<firmware>`` (e.g. ``WT1806E-5A3-50A3``: the
  model field carries the suffix codes, hence the ``WT18*`` pattern);
* ``:COMMunicate:HEADer OFF`` — answers without their header (the instrument's default is ON);
* ``[:INPut]:WIRing {P1W2|P1W3|P3W3|P3W4|V3A3}[,…]`` — one pattern per wiring unit, element order;
* ``[:INPut]:VOLTage:RANGe <V>``, ``[:INPut]:CURRent:RANGe <A>`` (crest factor 3 ranges);
* ``[:INPut]:SCALing:{VT|CT}:ELEMent<x> <ratio>`` (0.0001 … 99999.9999) and
  ``[:INPut]:SCALing:STATe {ON|OFF}`` — transformer ratios applied by the instrument;
* ``[:INPut]:SYNChronize:ELEMent<x> U<n>`` — the measurement period's synchronisation source;
* ``:RATE {50MS|100MS|200MS|500MS|1S|2S|5S|10S|20S}`` — the data update interval;
* ``:NUMeric:FORMat {ASCii|FLOat}``, ``:NUMeric:NORMal:NUMber <n>``,
  ``:NUMeric:NORMal:ITEM<x> <function>,<element>`` (element 1 … 6 or SIGMA; ``;ITEM<x+1>`` …
  in one message), ``:NUMeric:NORMal:VALue?``;
* in ASCII the values come comma-separated, ``NAN`` where there is no data, ``INF`` where an
  input is over its range; in FLOat as an IEEE 488.2 block of big-endian single-precision
  numbers with 0x7E951BEE (9.91E+37) for no data and 0x7E94F56A (9.9E+37) for over-range
  (the sample program's decoder); ``:STATus:ERRor?`` pops the error queue.

ASSUMPTION SHARED WITH THE TWIN (bench/sim/scpi/yokogawa_wt.py): the instrument answers
``VALue?`` with the latest completed update interval at once; a plan polls at the update
interval on the bench clock rather than waiting for the update event (``:COMMunicate:WAIT``
would block a lockstep bench whose time moves only when asked).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from instruments.power_analyzer import AnalyzerSetup, ElementReading, PowerAnalyzer, PowerReading
from instruments.scpi import format_number

WIRING_PATTERNS = {"3P4W": "P3W4", "3P3W": "P3W3"}
UPDATE_INTERVALS_S = {0.05: "50MS", 0.1: "100MS", 0.2: "200MS", 0.5: "500MS", 1.0: "1S", 2.0: "2S",
                      5.0: "5S", 10.0: "10S", 20.0: "20S"}
# crest factor 3: the voltage input, and the current inputs of a 5 A and a 50 A element
VOLTAGE_RANGES_V = (1.5, 3.0, 6.0, 10.0, 15.0, 30.0, 60.0, 100.0, 150.0, 300.0, 600.0, 1000.0)
CURRENT_RANGES_A = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
SCALING_RANGE = (0.0001, 99999.9999)
ELEMENT_FUNCTIONS = ("URMS", "IRMS", "P", "S", "Q", "LAMBda", "FU")
SIGMA_FUNCTIONS = ("URMS", "IRMS", "P", "S", "Q", "LAMBda")
# values that may legitimately have no data: λ without current, f without a periodic signal
MAY_BE_EMPTY = ("LAMBda", "FU")
NO_DATA_MARKER = 9.91e37
OVER_RANGE_MARKER = 9.9e37


class YokogawaWt(PowerAnalyzer):
    """WT1800 (WT1801 … WT1806, E versions) and WT5000, numeric values of the normal mode."""

    MODEL_PATTERNS = ("WT18*", "WT5000*")
    MANUFACTURERS = ("YOKOGAWA",)
    ERROR_QUERY = ":STATus:ERRor?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items: list[tuple[str, str]] = []     # (function, element) in the order VALue? answers

    # -- configuration ----------------------------------------------------------------------
    def configure(self, setup: AnalyzerSetup) -> None:
        """Everything is checked before the first command goes out."""
        rate = self._rate_word(setup.update_interval_s)
        voltage_range = self._range_text(setup.voltage_range_v, VOLTAGE_RANGES_V, "voltage_range_v", "V")
        current_range = self._range_text(setup.current_range_a, CURRENT_RANGES_A, "current_range_a", "A")
        for name, ratios in (("vt_ratio", setup.vt_ratios), ("ct_ratio", setup.ct_ratios)):
            for ratio in ratios:
                self.check_value(name, ratio, valid_range=SCALING_RANGE)
        items = [(f, str(e)) for e in setup.elements for f in ELEMENT_FUNCTIONS]
        items += [(f, "SIGMA") for f in SIGMA_FUNCTIONS]

        self.write(":COMMunicate:HEADer OFF")
        self.write(f":INPut:WIRing {WIRING_PATTERNS[setup.wiring]}")
        if voltage_range:
            self.write(f":INPut:VOLTage:RANGe {voltage_range}")
        if current_range:
            self.write(f":INPut:CURRent:RANGe {current_range}")
        for element, vt, ct in zip(setup.elements, setup.vt_ratios, setup.ct_ratios):
            self.write(f":INPut:SCALing:VT:ELEMent{element} {format_number(vt)}")
            self.write(f":INPut:SCALing:CT:ELEMent{element} {format_number(ct)}")
            # one measurement period for the whole unit: the first element's voltage
            self.write(f":INPut:SYNChronize:ELEMent{element} U{setup.elements[0]}")
        scaled = any(r != 1.0 for r in setup.vt_ratios + setup.ct_ratios)
        self.write(f":INPut:SCALing:STATe {'ON' if scaled else 'OFF'}")
        self.write(f":RATE {rate}")
        self.write(f":NUMeric:FORMat {'FLOat' if setup.numeric_format == 'float' else 'ASCii'}")
        self.write(f":NUMeric:NORMal:NUMber {len(items)}")
        self.write(":NUMeric:NORMal:" + ";".join(f"ITEM{k} {f},{e}" for k, (f, e) in enumerate(items, 1)))
        self.check_errors(f"configuring {setup.wiring} wiring, {len(items)} numeric items")
        self.setup = setup
        self.items = items

    def _rate_word(self, interval_s: float) -> str:
        for seconds, word in UPDATE_INTERVALS_S.items():
            if math.isclose(interval_s, seconds, rel_tol=1e-9):
                return word
        raise self.limit_error(f"update_interval_s = {interval_s:g} s is not an update interval of the WT "
                               f"({', '.join(f'{s:g}' for s in UPDATE_INTERVALS_S)} s); nothing was sent",
                               quantity="update_interval_s", value=interval_s)

    def _range_text(self, value: float | None, ranges: tuple[float, ...], name: str, unit: str) -> str | None:
        if value is None:
            return None
        if not any(math.isclose(value, r, rel_tol=1e-9) for r in ranges):
            raise self.limit_error(f"{name} = {value:g} {unit} is not a range of the WT "
                                   f"({', '.join(f'{r:g}' for r in ranges)} {unit}); nothing was sent",
                                   quantity=name, value=value)
        return f"{format_number(value)}{unit}"

    # -- reading ----------------------------------------------------------------------------
    def measure(self) -> PowerReading:
        if not self.items:
            raise self.error("measure() before configure(): no numeric items are set")
        t_s = self._clock_now()
        command = ":NUMeric:NORMal:VALue?"
        if self.setup.numeric_format == "float":
            block = self.query_block(command, expected_bytes=4 * len(self.items),
                                     expectation=f"({len(self.items)} single-precision values)")
            raw: list[float | str] = [float(v) for v in np.frombuffer(block, dtype=">f4")]
        else:
            reply = self.query(command)
            raw = [token.strip() for token in reply.split(",")]
            if len(raw) != len(self.items):
                raise self.error(f"{command!r} answered {len(raw)} values, but {len(self.items)} items are set "
                                 f"(reply starts {reply[:80]!r})")
        values = {item: self._value(item, token, command) for item, token in zip(self.items, raw)}
        elements = tuple(self._element_reading(str(e), values) for e in self.setup.elements)
        return PowerReading(t_s=t_s, update_interval_s=self.setup.update_interval_s, wiring=self.setup.wiring,
                            elements=elements, sigma=self._element_reading("SIGMA", values))

    def _value(self, item: tuple[str, str], token: float | str, command: str) -> float | None:
        function, element = item
        where = f"{function} of {'the Σ' if element == 'SIGMA' else f'element {element}'}"
        if isinstance(token, str):
            word = token.upper().lstrip("+-")
            if word == "NAN":
                value = math.nan
            elif word == "INF":
                value = math.inf
            else:
                try:
                    value = float(token)
                except ValueError:
                    raise self.error(f"{command!r}: {where} answered {token!r}, which is not a number") from None
        else:
            value = token
        if math.isinf(value) or math.isclose(abs(value), OVER_RANGE_MARKER, rel_tol=1e-6):
            raise self.error(f"{where} is over range (the WT marks it {token!r}): an input exceeds its range; "
                             f"the bench file's voltage_range_v / current_range_a (at the instrument's "
                             f"terminals) must cover the signal")
        if math.isnan(value) or math.isclose(abs(value), NO_DATA_MARKER, rel_tol=1e-6):
            if function in MAY_BE_EMPTY:
                return None
            raise self.error(f"{where} has no data (the WT marks it {token!r}): no completed update "
                             "interval, or the item is not measured")
        return value

    def _element_reading(self, element: str, values: dict[tuple[str, str], float | None]) -> ElementReading:
        def get(function: str) -> float | None:
            return values.get((function, element))

        return ElementReading(name="sigma" if element == "SIGMA" else element,
                              u_rms_v=get("URMS"), i_rms_a=get("IRMS"), p_w=get("P"), s_va=get("S"),
                              q_var=get("Q"), lambda_pf=get("LAMBda"),
                              freq_hz=get("FU") if element != "SIGMA" else values.get(("FU", "1")))


__all__ = ["YokogawaWt"]
