"""Approved settings files and their comparison with a PCS's settings (plan C2).

The file format is documented at the top of testplans/settings/vpcs_approved.toml. Loading
refuses a malformed file with every problem listed; comparing is pure: approved values and
read values in, one `SettingComparison` per compared quantity out (expected, actual, and how
close counts as equal), so the plan can list each mismatch with both values.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dut.pcs import PcsRatings, RideThroughSettings

CURVES = ("lv_must_trip", "hv_must_trip")
CESSATION_LEVELS = ("lv_mom_cess_v_pu", "hv_mom_cess_v_pu")
RATINGS = {"s_rated_va": "VA", "p_max_w": "W", "i_max_a": "A", "v_nom_v": "V",
           "abnormal_operation_category": ""}
TABLES = ("approval", "ride_through", "ratings", "vendor")


class SettingsFileError(Exception):
    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"approved settings file {source}: {len(problems)} problem(s):\n" +
                         "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class ApprovedSettings:
    path: Path
    approval: dict[str, Any]
    ride_through: dict[str, Any]
    ratings: dict[str, Any]
    vendor: dict[str, Any]

    @property
    def title(self) -> str:
        a = self.approval
        return f"{a.get('document', self.path.name)} rev {a.get('revision', '?')} ({a.get('date', 'undated')})"

    def ride_through_settings(self) -> RideThroughSettings:
        """The approved curves as the PCS interface writes them."""
        rt = self.ride_through
        return RideThroughSettings(
            lv_must_trip=tuple(tuple(p) for p in rt.get("lv_must_trip", ())),
            hv_must_trip=tuple(tuple(p) for p in rt.get("hv_must_trip", ())),
            lv_mom_cess_v_pu=rt.get("lv_mom_cess_v_pu"), hv_mom_cess_v_pu=rt.get("hv_mom_cess_v_pu"))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_approved_settings(path: Path) -> ApprovedSettings:
    path = Path(path)
    if not path.exists():
        raise SettingsFileError(str(path), ["no such file (the profile's c2.settings_file names it, "
                                            "relative to the profile's folder)"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsFileError(str(path), [f"is not valid TOML: {exc}"]) from None
    problems = [f"unknown table [{name}] (known: {', '.join(TABLES)})" for name in data if name not in TABLES]
    if "approval" not in data:
        problems.append("table [approval] is required (who approved which settings)")
    rt = data.get("ride_through", {})
    for name in rt:
        if name not in CURVES + CESSATION_LEVELS:
            problems.append(f"ride_through.{name}: unknown (known: {', '.join(CURVES + CESSATION_LEVELS)})")
    for name in CURVES:
        for index, point in enumerate(rt.get(name, [])):
            if not (isinstance(point, list) and len(point) == 2 and all(map(_is_number, point))):
                problems.append(f"ride_through.{name}[{index}] = {point!r} is not [v_pu, t_s]")
            elif point[0] < 0 or point[1] < 0:
                problems.append(f"ride_through.{name}[{index}] = {point!r} must not be negative")
    for name in CESSATION_LEVELS:
        if name in rt and not _is_number(rt[name]):
            problems.append(f"ride_through.{name} = {rt[name]!r} is not a number")
    for name, value in data.get("ratings", {}).items():
        if name not in RATINGS:
            problems.append(f"ratings.{name}: unknown (known: {', '.join(RATINGS)})")
        elif name != "abnormal_operation_category" and not _is_number(value):
            problems.append(f"ratings.{name} = {value!r} is not a number")
    for name, value in data.get("vendor", {}).items():
        if not (_is_number(value) or isinstance(value, str)):
            problems.append(f"vendor.{name} = {value!r} is neither a number nor an enumeration symbol")
    if problems:
        raise SettingsFileError(str(path), problems)
    return ApprovedSettings(path, data["approval"], rt, data.get("ratings", {}), data.get("vendor", {}))


@dataclass(frozen=True)
class SettingComparison:
    name: str                      # e.g. "ride_through.lv_must_trip[1].t_s"
    expected: float | str | None
    actual: float | str | None
    tolerance: float | None        # absolute, in `units`; None for symbols and counts (exact)
    units: str
    kind: str                      # "trip_voltage" | "trip_time" | "setting" | "exact"

    @property
    def matches(self) -> bool:
        if self.expected is None or self.actual is None:
            return self.expected is self.actual
        if self.tolerance is None:
            return self.expected == self.actual
        return abs(float(self.actual) - float(self.expected)) <= self.tolerance + 1e-12


@dataclass(frozen=True)
class Tolerances:
    trip_voltage_pu: float
    trip_time_s: float
    setting_pct: float             # % of the approved value


def _numeric(name: str, expected: Any, actual: Any, units: str, tolerance: float, kind: str) -> SettingComparison:
    actual_value = float(actual) if _is_number(actual) else (None if actual is None else str(actual))
    return SettingComparison(name, float(expected), actual_value, tolerance, units, kind)


def _setting(name: str, expected: Any, actual: Any, units: str, tol: Tolerances) -> SettingComparison:
    if isinstance(expected, str):
        return SettingComparison(name, expected, None if actual is None else str(actual), None, units, "exact")
    return _numeric(name, expected, actual, units, abs(float(expected)) * tol.setting_pct / 100.0, "setting")


def compare_curve(name: str, expected: tuple, actual: tuple, tol: Tolerances) -> list[SettingComparison]:
    """Point by point, both sorted by voltage; a missing or extra point is a mismatch of its own."""
    want, have = sorted(expected), sorted(actual)
    out = [SettingComparison(f"{name}.points", float(len(want)), float(len(have)), None, "points", "exact")]
    for index in range(max(len(want), len(have))):
        w = want[index] if index < len(want) else (None, None)
        h = have[index] if index < len(have) else (None, None)
        for part, (e, a), units, tolerance, kind in (
                ("v_pu", (w[0], h[0]), "pu", tol.trip_voltage_pu, "trip_voltage"),
                ("t_s", (w[1], h[1]), "s", tol.trip_time_s, "trip_time")):
            label = f"{name}[{index + 1}].{part}"
            if e is None:
                out.append(SettingComparison(label, None, float(a), tolerance, units, kind))
            else:
                out.append(_numeric(label, e, a, units, tolerance, kind))
    return out


def compare_settings(approved: ApprovedSettings, ride_through: RideThroughSettings, ratings: PcsRatings,
                     vendor: dict[str, Any], tol: Tolerances,
                     vendor_units: dict[str, str] | None = None) -> list[SettingComparison]:
    """Every setting the approved file names, against what the PCS reports (vendor values by
    point name; a point the PCS did not return compares as missing)."""
    out: list[SettingComparison] = []
    rt = approved.ride_through
    for name in CURVES:
        if name in rt:
            out += compare_curve(f"ride_through.{name}", tuple(tuple(p) for p in rt[name]),
                                 getattr(ride_through, name), tol)
    for name in CESSATION_LEVELS:
        if name in rt:
            out.append(_numeric(f"ride_through.{name}", rt[name], getattr(ride_through, name), "pu",
                                tol.trip_voltage_pu, "trip_voltage"))
    for name, expected in approved.ratings.items():
        out.append(_setting(f"ratings.{name}", expected, getattr(ratings, name), RATINGS[name], tol))
    for name, expected in approved.vendor.items():
        out.append(_setting(f"vendor.{name}", expected, vendor.get(name), (vendor_units or {}).get(name, ""), tol))
    return out
