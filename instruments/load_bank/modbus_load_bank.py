"""RLC load bank with Modbus-controlled step contactors, any product: map and steps from the
bench file.

Each branch (resistive, inductive, capacitive) is one 16-bit contactor register, bit i
switching step i of the bench file's list for that branch (``<branch>_steps``). A map for
another bank places these points at its addresses (docs/modbus_instruments.md, "load bank").
Shipped: ``vlb315`` (the virtual bench's bank).

Requests are quantised to the nearest combination of the bank's steps and refused, before
anything is sent, when negative, beyond the branch's rating (the sum of its steps) or asked of
a branch the bank does not have. The three registers go out in one request, so the steps of
one setting switch together, and are read back.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instruments.ac_load import LoadCapabilityError
from instruments.load_bank import (BRANCHES, MAX_STEPS_PER_BRANCH, STEP_OPTIONS, BankSetting, LoadBankReading,
                                   nearest_combination, step_sum)
from instruments.modbus_device import ModbusInstrument, RequiredPoint

log = logging.getLogger(__name__)

VOLTAGE_POINTS = ("voltage_l1n", "voltage_l2n", "voltage_l3n")
CURRENT_POINTS = ("current_l1", "current_l2", "current_l3")
MEASUREMENT_POINTS = (*VOLTAGE_POINTS, *CURRENT_POINTS, "active_power", "reactive_power", "frequency")
ALARM_PREFIX = "alarm_"
ALARM_ACTIVE = "ACTIVE"
UNITS = {"resistive": "W", "inductive": "var", "capacitive": "var"}


def contactor_point(branch: str) -> str:
    return f"{branch}_steps"


class ModbusLoadBank(ModbusInstrument):
    """Passive RLC load bank switched by step contactors."""

    ROLE = "load_bank"
    MAP_DIRECTORY = Path(__file__).parent / "pointmaps"
    OPTIONS = frozenset({*STEP_OPTIONS.values(), "v_ll_rated_v"})

    @classmethod
    def required_points(cls, options: Mapping[str, Any]) -> list[RequiredPoint]:
        branches = [b for b in BRANCHES if options.get(STEP_OPTIONS[b])]
        return [*(RequiredPoint(contactor_point(b), "RW") for b in branches),
                *(RequiredPoint(name) for name in MEASUREMENT_POINTS)]

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        for branch, key in STEP_OPTIONS.items():
            steps = options.get(key, [])
            if not isinstance(steps, list) or not all(
                    isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s > 0
                    for s in steps):
                problems.append((key, f"the {branch} steps must be a list of positive sizes "
                                      f"({UNITS[branch]} at the rated voltage), got {steps!r}"))
            elif len(steps) > MAX_STEPS_PER_BRANCH:
                problems.append((key, f"{len(steps)} steps: one contactor register holds at most "
                                      f"{MAX_STEPS_PER_BRANCH}"))
        if not any(options.get(key) for key in STEP_OPTIONS.values()):
            problems.append((STEP_OPTIONS["resistive"], "the bank needs at least one branch with steps"))
        v_rated = options.get("v_ll_rated_v")
        if isinstance(v_rated, bool) or not isinstance(v_rated, (int, float)) or not v_rated > 0:
            problems.append(("v_ll_rated_v", f"the voltage the steps are rated at (V line to line, > 0) is "
                                             f"required, got {v_rated!r}"))
        return problems

    # -- nameplate --------------------------------------------------------------------------
    def steps(self, branch: str) -> tuple[float, ...]:
        return tuple(float(s) for s in self.options.get(STEP_OPTIONS[branch], []))

    def rating(self, branch: str) -> float:
        """What the branch draws with every step in, at the rated voltage."""
        return sum(self.steps(branch))

    @property
    def v_ll_rated_v(self) -> float:
        return float(self.options["v_ll_rated_v"])

    # -- settings ---------------------------------------------------------------------------
    def plan(self, p_w: float, q_inductive_var: float = 0.0, q_capacitive_var: float = 0.0) -> BankSetting:
        """The setting nearest the request (W, var at the rated voltage); sends nothing.
        LimitError when negative or beyond a branch's rating, LoadCapabilityError when a
        branch the bank does not have is asked for."""
        masks, drawn = {}, {}
        for branch, value in zip(BRANCHES, (p_w, q_inductive_var, q_capacitive_var)):
            units = UNITS[branch]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise self.limit_error(f"{branch} load {value!r} {units} must be a number >= 0; nothing was sent",
                                       quantity=branch, value=value)
            steps = self.steps(branch)
            if value > 0 and not steps:
                raise LoadCapabilityError(self.role, self.resource_name,
                                          f"this load bank has no {branch} steps "
                                          f"(instruments.load_bank.options.{STEP_OPTIONS[branch]})")
            rating = sum(steps)
            if value > rating * (1.0 + 1e-9):
                raise self.limit_error(
                    f"{branch} load {value:g} {units} is beyond the bank's {branch} rating {rating:g} {units} "
                    f"(the sum of its steps at {self.v_ll_rated_v:g} V); nothing was sent",
                    quantity=branch, value=value, limit=rating)
            masks[branch], drawn[branch] = nearest_combination(value, steps)
        return BankSetting(masks["resistive"], masks["inductive"], masks["capacitive"],
                           drawn["resistive"], drawn["inductive"], drawn["capacitive"])

    def apply(self, setting: BankSetting) -> None:
        """Switch the contactors to ``setting`` (all branches in one request, read back)."""
        values = {}
        for branch, mask in zip(BRANCHES, (setting.resistive_mask, setting.inductive_mask,
                                           setting.capacitive_mask)):
            point = contactor_point(branch)
            if self.point_map.has(point) and self.point_map.point(point).writable:
                values[point] = mask
            elif mask:
                raise LoadCapabilityError(self.role, self.resource_name,
                                          f"the map has no writable {branch} contactors ({point})")
            # a branch the bank cannot switch is left out, so all_off still opens the others
        self.command(values, f"steps P {setting.p_w:g} W, QL {setting.q_inductive_var:g} var, "
                             f"QC {setting.q_capacitive_var:g} var")

    def set_load(self, p_w: float, q_inductive_var: float = 0.0, q_capacitive_var: float = 0.0) -> BankSetting:
        """Quantise, switch, and return what is now switched in."""
        setting = self.plan(p_w, q_inductive_var, q_capacitive_var)
        self.apply(setting)
        return setting

    def all_off(self) -> None:
        self.apply(BankSetting(0, 0, 0, 0.0, 0.0, 0.0))

    # -- readings ---------------------------------------------------------------------------
    def read(self) -> LoadBankReading:
        contactors = [contactor_point(b) for b in BRANCHES if self.point_map.has(contactor_point(b))
                      and self.point_map.point(contactor_point(b)).readable]
        alarm_points = [name for name in self.point_map.points if name.startswith(ALARM_PREFIX)
                        and self.point_map.point(name).readable]
        values = self.read_points([*contactors, *MEASUREMENT_POINTS, *alarm_points])
        masks = {b: int(values.get(contactor_point(b), 0)) for b in BRANCHES}
        setting = BankSetting(masks["resistive"], masks["inductive"], masks["capacitive"],
                              *(step_sum(masks[b], self.steps(b)) for b in BRANCHES))
        return LoadBankReading(
            setting=setting,
            v_ln_rms_v=tuple(float(values[n]) for n in VOLTAGE_POINTS),
            i_rms_a=tuple(float(values[n]) for n in CURRENT_POINTS),
            p_w=float(values["active_power"]), q_var=float(values["reactive_power"]),
            freq_hz=float(values["frequency"]),
            alarms=tuple(name[len(ALARM_PREFIX):] for name in alarm_points if values[name] == ALARM_ACTIVE))

    def safe_state(self) -> bool:
        """Every step out; never raises. A bank the bench may not command is left as it is."""
        if not self.control_allowed:
            return True
        try:
            self.all_off()
            return True
        except Exception as exc:
            log.error("%s at %s: safe-state all steps off failed: %s", self.role, self.resource_name, exc)
            return False


__all__ = ["ModbusLoadBank"]
