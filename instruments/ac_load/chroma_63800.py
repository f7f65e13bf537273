"""Chroma 63800 series programmable AC/DC electronic loads (63802, 63803, 63804).

From the 63800 Operation & Programming Manual, ch. 8 "Remote Operation" (p. 8-13):
``[LOAD:]MODE 0|CURR, 1|POW, 2|VOLT, 3|RES, 4|RLC, 5|RLCP, 6|INRUSH, 7|RECT`` (the query
answers ``CURR``, ``POW``, ``VOLT``, ``RES``, ``RLC``, ``RLCPOW``, ``INRUSH``, ``RECT``; the
front panel calls them CC, CP, CV, CR …), ``[LOAD:]PROTect?`` (bit field: OVP 8, OCP 32,
OPP 64, OTP 128 …) and ``[LOAD:]PROTect:CLE``. The protection thresholds there give the
ratings by model: 63802 18 A / 1800 W, 63803 36 A / 3600 W, 63804 45 A / 4500 W; AC input
below 45 V is under-voltage, above 350 V over-voltage.

Our notes add ``LOAD ON|OFF``, ``POW <W>``, ``CURR <A>`` and ``MEAS:POW?``
(``MEAS:VOLT?``, ``MEAS:CURR?``, ``MEAS:FREQ?`` by analogy).

Not found in the manual pages available to us: the 63800's list/sequence (profile)
commands. The words below (``LIST:DWEL`` in seconds, ``LIST:POW``, ``LIST:COUN``,
``LIST:STAT ON|OFF``) follow the list dialect of Chroma's AC sources and are an assumption;
a bench whose unit differs overrides them with ``options.profile_commands`` (same keys) without
code changes. Treat profile playback on a real 63800 as unverified until checked.

Constant-impedance (RLC-bank) loads, ``set_rlc_load``. What the manual says (Operation &
Programming Manual, §3.7 and §4.1, and Chroma's 63800 brochure):

* confirmed: the AC "Constant Load Modes" are CC, CR and CP; in CR mode "the Load will sink a
  current linearly proportional to the input voltage in accordance with the programmed
  resistance ... the power factor allowed is 1" (§3.7) — a linear resistor, i.e. the R of an
  RLC bank; a 63804's CR range is 1–1000 Ω (§3.7 example);
* confirmed: the 63800's "RLC" mode is one of the *Rectified* Load Modes (RLC, CP based on
  RLC, Inrush; §4.1): it emulates a rectifier with its capacitor, line inductance and load
  resistance (a non-linear, high crest-factor current), NOT a linear L or C across the line;
* confirmed: in CC/CP the programmed power factor shifts a current of programmed crest factor;
  at a crest factor of 1.414 (a sinusoidal current) "the programmed power factor can only be 1"
  (§3.6, Figure 3-6 / Table 3-1). A sinusoidal lagging or leading current is out of reach.

So this driver draws the resistive part in CR mode and refuses an inductive or capacitive part
with :class:`LoadCapabilityError` (a lab adds a passive RLC bank for those steps).
Assumed, not seen in the manual pages available to us: the CR setting command ``RES <ohm>``
(by analogy with ``POW``/``CURR``; the mode word ``RES`` is confirmed), and, for a bank of
units answering as one instrument (see ``rated_power_w``), that ``RES`` is the bank's
equivalent line-to-neutral resistance per phase. The bench's twin
(``bench/sim/scpi/chroma_63800.py``) shares these two assumptions.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from instruments.ac_load import AcLoad, AcLoadReading, LoadCapabilityError, LoadProfile
from instruments.scpi import control, format_number, measurement

_ON_OFF = {True: "ON", False: "OFF"}
#: rated rms current and power by model (from the OCP/OPP thresholds of the manual)
_RATINGS: dict[str, tuple[float, float]] = {"63802": (18.0, 1800.0), "63803": (36.0, 3600.0),
                                            "63804": (45.0, 4500.0)}
_POWER_LIMIT_KEYS = ("max_ac_load_power_w",)
_CURRENT_LIMIT_KEYS = ("max_ac_load_current_a", "max_current_a")

#: profile (list) commands; ``{values}`` is a comma-separated list, ``{count}`` an integer
DEFAULT_PROFILE_COMMANDS: dict[str, str] = {
    "dwell": "LIST:DWEL {values}",
    "power": "LIST:POW {values}",
    "count": "LIST:COUN {count}",
    "start": "LIST:STAT ON",
    "stop": "LIST:STAT OFF",
}


class Chroma63800(AcLoad):
    """63800 series in AC mode; ratings from the model unless the bench file states them
    (several units in parallel: ``rated_power_w`` / ``rated_current_a``)."""

    MODEL_PATTERNS = ("638*",)
    MANUFACTURERS = ("Chroma",)

    MAX_PROFILE_POINTS = 100
    DWELL_RANGE_S = (0.001, 86_400.0)

    mode = control("MODE?", "MODE {value}", "Operating mode (CC, CP, CR as SCPI words).",
                   choices={"cc": "CURR", "cp": "POW", "cr": "RES", "rlc": "RLC"})
    power_w = control("POW?", "POW {value}", "Real power in constant-power mode.",
                      valid_range="power_span_w", units="W", safety_limit=_POWER_LIMIT_KEYS)
    current_a = control("CURR?", "CURR {value}", "Rms current in constant-current mode.",
                        valid_range="current_span_a", units="A", safety_limit=_CURRENT_LIMIT_KEYS)
    # assumed word (see the module docstring): the bank's line-to-neutral resistance per phase
    resistance_ohm = control("RES?", "RES {value}", "Resistance in constant-resistance mode.",
                             units="ohm")
    load_enabled = control("LOAD?", "LOAD {value}", "Load input on.", choices=_ON_OFF)
    protection_status = measurement("PROT?", "Protection bits (OVP 8, OCP 32, OPP 64, OTP 128 …).",
                                    cast=int)

    measured_voltage_v = measurement("MEAS:VOLT?", "Rms input voltage.", units="V")
    measured_current_a = measurement("MEAS:CURR?", "Rms input current.", units="A")
    measured_power_w = measurement("MEAS:POW?", "Real power absorbed.", units="W")
    measured_frequency_hz = measurement("MEAS:FREQ?", "Input frequency.", units="Hz")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._set_ratings(None)
        commands = dict(DEFAULT_PROFILE_COMMANDS)
        commands.update(dict(self.options.get("profile_commands", {})))
        self.profile_commands = commands

    def _set_ratings(self, model: str | None) -> None:
        current_a, power_w = _RATINGS.get(model or "", (45.0, 4500.0))
        self.current_span_a = (0.0, float(self.options.get("rated_current_a", current_a)))
        self.power_span_w = (0.0, float(self.options.get("rated_power_w", power_w)))

    def identify(self):  # type: ignore[override]
        identity = super().identify()
        match = re.match(r"^(638\d\d)", identity.model)
        self._set_ratings(match.group(1) if match else None)
        return identity

    # -- role methods ---------------------------------------------------------------------
    def set_constant_power_w(self, p: float) -> None:
        self.check_value("p_w", float(p), valid_range=self.power_span_w, units="W",
                         safety_limit=_POWER_LIMIT_KEYS)
        self.mode = "cp"
        self.power_w = p
        self.check_errors(f"setting constant power {p:g} W")

    def set_constant_current_a(self, i: float) -> None:
        self.check_value("i_a", float(i), valid_range=self.current_span_a, units="A",
                         safety_limit=_CURRENT_LIMIT_KEYS)
        self.mode = "cc"
        self.current_a = i
        self.check_errors(f"setting constant current {i:g} A")

    def set_rlc_load(self, p_w: float, q_inductive_var: float, q_capacitive_var: float, *,
                     v_ln_nominal_v: float | None = None) -> None:
        reactive = {"inductive": q_inductive_var, "capacitive": q_capacitive_var}
        asked = [f"{kind} {q:g} var" for kind, q in reactive.items() if q]
        if asked:
            raise LoadCapabilityError(
                self.role, self.resource_name,
                f"the Chroma 63800 cannot draw a linear {' and '.join(asked)} load: its RLC mode "
                "emulates a rectifier and its CC/CP power factor needs a non-sinusoidal current "
                "(manual §4.1, §3.6); use a passive RLC bank for reactive steps")
        self.check_value("p_w", float(p_w), valid_range=self.power_span_w, units="W",
                         safety_limit=_POWER_LIMIT_KEYS)
        if p_w == 0.0:
            self.load_off()                           # every branch open
            return
        v_ln = float(v_ln_nominal_v if v_ln_nominal_v is not None else self.options.get("v_ln_nominal_v", 0.0))
        if not v_ln > 0.0:
            raise self.limit_error("set_rlc_load needs the nominal line-to-neutral voltage "
                                   "(argument v_ln_nominal_v or options.v_ln_nominal_v)",
                                   quantity="v_ln_nominal_v")
        # star-connected per phase: p_w / 3 drawn at v_ln by the phase's resistance
        self.mode = "cr"
        self.resistance_ohm = 3.0 * v_ln ** 2 / p_w
        self.load_enabled = True
        self.check_errors(f"drawing a {p_w:g} W constant-resistance load")

    def load_on(self) -> None:
        self.load_enabled = True
        self.check_errors("turning the load on")

    def load_off(self) -> None:
        self.load_enabled = False

    def program_profile(self, times_s: Sequence[float], powers_w: Sequence[float], *,
                        end_s: float | None = None, repeat: int = 1) -> None:
        try:
            profile = LoadProfile.build(times_s, powers_w, end_s)
        except ValueError as exc:
            raise self.limit_error(f"load profile refused: {exc}; nothing was sent",
                                   quantity="profile") from None
        if len(profile.powers_w) > self.MAX_PROFILE_POINTS:
            raise self.limit_error(f"{len(profile.powers_w)} profile points exceed the "
                                   f"{self.MAX_PROFILE_POINTS}-point list; nothing was sent",
                                   quantity="profile", value=len(profile.powers_w),
                                   limit=self.MAX_PROFILE_POINTS)
        self.check_value("repeat", float(repeat), valid_range=(1, 65535))
        for number, (dwell_s, p_w) in enumerate(zip(profile.dwells_s, profile.powers_w), start=1):
            self.check_value(f"point {number} dwell_s", dwell_s, valid_range=self.DWELL_RANGE_S,
                             units="s")
            self.check_value(f"point {number} p_w", p_w, valid_range=self.power_span_w, units="W",
                             safety_limit=_POWER_LIMIT_KEYS)
        self.write(self.profile_commands["stop"])     # an idle list accepts new points
        self.mode = "cp"
        self.write(self.profile_commands["dwell"].format(
            values=",".join(format_number(round(d, 6)) for d in profile.dwells_s)))
        self.write(self.profile_commands["power"].format(
            values=",".join(format_number(p) for p in profile.powers_w)))
        self.write(self.profile_commands["count"].format(count=int(repeat)))
        self.check_errors(f"programming a {len(profile.powers_w)}-point load profile")

    def start_profile(self) -> None:
        self.write(self.profile_commands["start"])
        self.check_errors("starting the load profile")

    def stop_profile(self) -> None:
        self.write(self.profile_commands["stop"])
        self.check_errors("stopping the load profile")

    def measure(self) -> AcLoadReading:
        return AcLoadReading(v_rms_v=self.measured_voltage_v, i_rms_a=self.measured_current_a,
                             p_w=self.measured_power_w, freq_hz=self.measured_frequency_hz)

    def safe_state(self) -> bool:
        """Stop the profile and open the load input; never raises."""
        return self._send_safely([self.profile_commands["stop"], "LOAD OFF"])
