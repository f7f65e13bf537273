"""Generator set on the PCC bus of the virtual bench: configuration and ISO 8528-5 classes.

The physics (kernel_genset.py) is the classical model a bench engineer reasons with: an
EMF behind a reactance (the machine's transient reactance: what the bus sees in the first
seconds of a load step), a swing equation for the rotor, a speed-droop governor acting on
the engine through a first-order lag (fuel system + combustion + turbo), and a simple AVR
(PI on the terminal voltage driving the field through its time constant).

The parameter sets per ISO 8528-5 performance class are this project's choices, sized so
that a healthy set meets its class (limits in ../shared/reference/criteria.md: droop
G1 <= 8 %, G2 <= 5 %, G3 <= 3 % [primary]; transient frequency dip on a load step G1 -15 %,
G2 -10 %, G3 -7 % [G2 primary, G1/G3 recall]; frequency recovery 10 / 5 / 3 s). They are
not a particular engine's data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

ISO_CLASSES = ("G1", "G2", "G3")


@dataclass(frozen=True)
class GensetClassParameters:
    droop_pct: float            # governor speed droop, % speed for 100 % load
    inertia_h_s: float          # engine + alternator, on the set's rating
    engine_tau_s: float         # fuel-to-torque lag of the engine
    # ISO 8528-5 limits the class must meet (criteria.md), used by tests and profiles
    max_freq_dip_pct: float     # transient frequency drop on a load step
    max_volt_dip_pct: float     # transient voltage drop on a load step


# A G3 set (data-centre standby) has a stiffer governor and a quicker engine than a G1
# (general purpose) one; inertia grows a little with the class (heavier flywheel).
ISO_CLASS_PARAMETERS: dict[str, GensetClassParameters] = {
    "G1": GensetClassParameters(droop_pct=6.0, inertia_h_s=0.8, engine_tau_s=0.8,
                                max_freq_dip_pct=15.0, max_volt_dip_pct=25.0),
    "G2": GensetClassParameters(droop_pct=4.0, inertia_h_s=1.0, engine_tau_s=0.5,
                                max_freq_dip_pct=10.0, max_volt_dip_pct=20.0),
    "G3": GensetClassParameters(droop_pct=2.5, inertia_h_s=1.5, engine_tau_s=0.3,
                                max_freq_dip_pct=7.0, max_volt_dip_pct=15.0),
}


@dataclass
class GensetConfig:
    """A genset behind its own breaker on the PCC bus. Class-dependent fields left None
    take the ISO 8528-5 class's values (``resolved()``)."""

    iso_class: str = "G2"
    s_rated_va: float = 500e3
    v_ll_nom_v: float = 480.0
    f_nom_hz: float = 60.0
    x_pu: float = 0.25              # transient reactance behind which the EMF sits
    r_pu: float = 0.01              # armature resistance
    droop_pct: float | None = None
    inertia_h_s: float | None = None
    engine_tau_s: float | None = None
    p_ref_w: float = 0.0            # governor load reference: output at nominal frequency
    v_ref_pu: float = 1.0           # AVR terminal-voltage reference
    avr_kp: float = 5.0             # pu field voltage per pu voltage error
    avr_ki_per_s: float = 10.0
    field_tau_s: float = 0.3        # field response (EMF follows the exciter output)
    e_max_pu: float = 2.5           # exciter ceiling

    def resolved(self) -> "GensetConfig":
        """Validated copy with the class's values filled in; ValueError on bad input."""
        if self.iso_class not in ISO_CLASS_PARAMETERS:
            raise ValueError(f"genset iso_class must be one of {ISO_CLASSES}, got {self.iso_class!r}")
        cls = ISO_CLASS_PARAMETERS[self.iso_class]
        out = replace(self,
                      droop_pct=cls.droop_pct if self.droop_pct is None else self.droop_pct,
                      inertia_h_s=cls.inertia_h_s if self.inertia_h_s is None else self.inertia_h_s,
                      engine_tau_s=cls.engine_tau_s if self.engine_tau_s is None else self.engine_tau_s)
        for name in ("s_rated_va", "v_ll_nom_v", "f_nom_hz", "x_pu", "droop_pct", "inertia_h_s",
                     "engine_tau_s", "v_ref_pu", "field_tau_s", "e_max_pu"):
            value = getattr(out, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"genset.{name} must be > 0, got {value!r}")
        for name in ("r_pu", "avr_kp", "avr_ki_per_s"):
            value = getattr(out, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"genset.{name} must be >= 0, got {value!r}")
        if not (math.isfinite(out.p_ref_w) and abs(out.p_ref_w) <= out.s_rated_va):
            raise ValueError(f"genset.p_ref_w must be within +-s_rated_va, got {out.p_ref_w!r}")
        return out

    @property
    def class_limits(self) -> GensetClassParameters:
        return ISO_CLASS_PARAMETERS[self.iso_class]
