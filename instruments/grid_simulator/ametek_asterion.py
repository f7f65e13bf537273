"""AMETEK / California Instruments Asterion AC series in three-phase mode.

What the sources say. The Asterion's own "ASTERION Series SCPI Programming Manual" (AMETEK
Programmable Power, M330100-01 Rev A, July 2016, "ASTERION series AC/DC Power Systems",
California Instruments brand) exists, but only its front matter is stored in the reference
corpora (manualzz doc 26212133); no command page of it was found, nor the *IDN? answer. So
this driver speaks the tree the California Instruments sources share
(``california_instruments``: the Sequoia and Lx/Ls Series II manuals' coupling, phase,
current limit and list subsystems), and every Asterion-specific fact below is
**unconfirmed**, to be checked against the manual on a real unit:

* identity: ``*IDN?`` manufacturer AMETEK (as the MX), model beginning with ``AST``
  (``AST…`` model numbers or the word ``ASTERION``); the bench file's ``expected_model``
  pins the exact one;
* three-phase mode: the unit must be set to three-phase output (a setting whose SCPI
  header was not found, so the driver does not send one); ``configure_nominal`` selects
  phases 2 and 3 to set their angles, and a unit left in one-phase mode refuses that with
  an error the driver raises, naming the instrument's own text;
* ranges: 16…1000 Hz output frequency; the voltage range in use (``voltage_range_v``,
  default 300 V line-to-neutral) and the current range (``current_range_a``) are bench
  options, as for the MX; a list of up to 100 points with dwells of 1 ms … 90 000 s (the
  Sequoia's documented list limits, the Asterion being the same controller generation);
* transient trigger output: ``OUTP:TTLT`` / ``OUTP:TTLT:SOUR BOT`` as on the MX; a bench
  whose unit has no such output sets ``trigger_output = false`` and triggers the scope
  another way;
* programmable output impedance: not found for the Asterion. The driver therefore assumes
  none: a non-zero impedance raises ``NoProgrammableImpedance`` before anything is sent,
  and a weak-grid test needs an external impedance, stated in the bench file as part of the
  bench wiring. A lab whose unit has the function (confirmed in its manual) sets the option
  ``programmable_output_impedance = true``; the driver then sends the shared tree's
  ``OUTP:IMP:REAL`` / ``OUTP:IMP:REAC`` / ``OUTP:IMP`` with the MX's range and unit options.
"""

from __future__ import annotations

from instruments.grid_simulator.california_instruments import CaliforniaInstrumentsSource


class AmetekAsterion(CaliforniaInstrumentsSource):
    """Asterion AC in three-phase mode."""

    MODEL_PATTERNS = ("AST*",)
    FAMILY = "Asterion"

    #: output frequency range (unconfirmed, see module notes)
    FREQUENCY_RANGE_HZ = (16.0, 1000.0)
    #: transient list length (the Sequoia's "up to 100" points; unconfirmed for the Asterion)
    MAX_LIST_POINTS = 100
    #: shortest / longest dwell of one list point (the Sequoia's LIST:DWELl 0.001 … 9E4 s)
    DWELL_RANGE_S = (0.001, 90_000.0)

    def has_programmable_impedance(self) -> bool:
        value = self.options.get("programmable_output_impedance", False)
        if not isinstance(value, bool):
            raise self.limit_error(f"option programmable_output_impedance = {value!r} is not true or false",
                                   quantity="programmable_output_impedance")
        return value

    def _no_impedance_message(self, r_ohm: float, l_h: float) -> str:
        return (f"no programmable output impedance is known for the Asterion (asked for {r_ohm:g} ohm + "
                f"{l_h * 1e3:g} mH); emulate the weak grid with an external impedance between the source "
                "and the PCC and state it in the bench file, or, if this unit's manual documents "
                "OUTP:IMP, set the option programmable_output_impedance = true; nothing was sent")
