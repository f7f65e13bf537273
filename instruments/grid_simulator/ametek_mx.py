"""AMETEK / California Instruments MX series three-phase AC source (MX30, MX45, MX90 …).

SCPI from the MX/Sequoia programming manuals: phases are addressed with ``INST:NSEL 1|2|3``
while ``INST:COUP NONE``, or all at once with ``INST:COUP ALL``. Measurements are "phase
selectable": they report the phase chosen with ``INST:NSEL``. Transients are lists
(``LIST:DWEL``, ``LIST:VOLT``, ``LIST:FREQ``) played once when the transient system is
initiated; the rear-panel trigger output ("function strobe") pulses at the beginning of the
transient (``OUTP:TTLT:SOUR BOT``) and is wired to the oscilloscope's AUX input. The tree,
and how frequency ramps and phase jumps are put in a list, is the one the California
Instruments sources share (``california_instruments``).

Programmable output impedance (weak-grid emulation): ``OUTPut:IMPedance:REAL <R>`` (the
resistive part), ``OUTPut:IMPedance:REACtive <X>`` (the inductive part) and
``OUTPut:IMPedance[:STATe] ON|OFF``. What is confirmed and what is not:

* confirmed: those three headers, in that form, in the SCPI command list of the HP/Agilent
  6811B…6834B AC source family (public pymeasure driver notes), the SCPI tree the
  California Instruments sources share for OUTPut, MEASure and the transient system;
* not found in the reference corpora: the MX manual's own page (only its front matter is
  stored). So the model's ranges, the unit of the reactive part (mH, H, or Ω of reactance)
  and whether the setting follows ``INST:COUP`` per phase are unconfirmed; each is a bench
  option (``output_impedance_r_max_ohm``, default 1.0; ``output_impedance_l_max_h``,
  default 1 mH; ``output_impedance_reactive_unit``: ``"mH"`` (default), ``"H"`` or
  ``"ohm"``, the last one converted at the programmed output frequency). The values are
  sent with all phases coupled, so every phase gets the same impedance.
* assumed: the impedance may be changed with the output on (the weak-grid plan changes it
  while the PCS runs); a unit that refuses it reports an error the driver raises.

Frequency ramps (``LIST:FREQ:SLEW``) and phase jumps (``LIST:PHAS``) follow the shared
tree's notes; the MX manual's own list pages were not found, so those notes' assumptions
hold for the MX as unconfirmed.
"""

from __future__ import annotations

from instruments.grid_simulator.california_instruments import CaliforniaInstrumentsSource


class AmetekMx(CaliforniaInstrumentsSource):
    """MX series in three-phase mode."""

    MODEL_PATTERNS = ("MX*",)
    FAMILY = "MX"

    #: frequency range of the MX series (standard, without the 5 kHz option)
    FREQUENCY_RANGE_HZ = (16.0, 1000.0)
    #: transient list length of the MX controller
    MAX_LIST_POINTS = 32          # MX/RS programming manual 7003-961 §6.4.3: up to 32 list points
    #: shortest / longest dwell of one list point
    DWELL_RANGE_S = (0.0002, 86_400.0)

    def has_programmable_impedance(self) -> bool:
        return True
