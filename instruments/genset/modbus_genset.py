"""Genset controller over Modbus, any product: the register map comes from the bench file.

The point names below are the driver's vocabulary; a map for a DEIF, ComAp, Woodward easYgen
or DSE controller places them at that product's addresses and translates its codes into these
enumeration names (docs/modbus_instruments.md, "genset"). Shipped: ``vgc1`` (the virtual
bench's controller).

Commands go out only where the bench file allows control of the genset; the breaker is never
asked to close while the engine does not report RUNNING (a stopped set would motor).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instruments.genset import ISO_8528_5_CLASSES, GensetRating, GensetReading
from instruments.modbus_device import ModbusInstrument, RequiredPoint

log = logging.getLogger(__name__)

VOLTAGE_POINTS = ("voltage_l1n", "voltage_l2n", "voltage_l3n")
CURRENT_POINTS = ("current_l1", "current_l2", "current_l3")
MEASUREMENT_POINTS = ("frequency", *VOLTAGE_POINTS, *CURRENT_POINTS, "active_power", "reactive_power")
ALARM_PREFIX = "alarm_"
ALARM_ACTIVE = "ACTIVE"
RATING_POINT = "rated_apparent_power"     # optional: checked against the bench file
RATING_TOLERANCE = 0.01


class ModbusGenset(ModbusInstrument):
    """Genset controller (engine start/stop, generator breaker, terminal measurements)."""

    ROLE = "genset"
    MAP_DIRECTORY = Path(__file__).parent / "pointmaps"
    OPTIONS = frozenset({"s_rated_va", "iso_class"})

    @classmethod
    def required_points(cls, options: Mapping[str, Any]) -> list[RequiredPoint]:
        return [RequiredPoint("engine_state", "R", ("STOPPED", "RUNNING")),
                RequiredPoint("breaker_state", "R", ("OPEN", "CLOSED")),
                *(RequiredPoint(name) for name in MEASUREMENT_POINTS),
                RequiredPoint("engine_command", "W", ("START", "STOP")),
                RequiredPoint("breaker_command", "W", ("CLOSE", "OPEN"))]

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        s_rated = options.get("s_rated_va")
        if isinstance(s_rated, bool) or not isinstance(s_rated, (int, float)) or not s_rated > 0 \
                or not math.isfinite(s_rated):
            problems.append(("s_rated_va", f"the set's rated apparent power (VA, > 0) is required, got {s_rated!r}"))
        iso_class = options.get("iso_class")
        if iso_class not in ISO_8528_5_CLASSES:
            problems.append(("iso_class", f"the set's ISO 8528-5 performance class is required, one of "
                                          f"{', '.join(ISO_8528_5_CLASSES)}; got {iso_class!r}"))
        return problems

    @property
    def rating(self) -> GensetRating:
        return GensetRating(float(self.options["s_rated_va"]), str(self.options["iso_class"]))

    def initialize(self) -> None:
        """Version check, then the controller's own rating (if its map has one) against the
        bench file's: limits judged on the wrong rating would judge the wrong set."""
        super().initialize()
        if self.point_map.has(RATING_POINT) and "s_rated_va" in self.options:
            reported = float(self.read_points([RATING_POINT])[RATING_POINT])
            stated = float(self.options["s_rated_va"])
            if abs(reported - stated) > RATING_TOLERANCE * stated:
                raise self.error(f"the controller reports {RATING_POINT} = {reported:g} VA, the bench file says "
                                 f"instruments.genset.options.s_rated_va = {stated:g} VA")

    # -- readings ---------------------------------------------------------------------------
    def read(self) -> GensetReading:
        alarm_points = [name for name in self.point_map.points if name.startswith(ALARM_PREFIX)
                        and self.point_map.point(name).readable]
        values = self.read_points(["engine_state", "breaker_state", *MEASUREMENT_POINTS, *alarm_points])
        return GensetReading(
            engine_state=str(values["engine_state"]),
            breaker_closed=values["breaker_state"] == "CLOSED",
            freq_hz=float(values["frequency"]),
            v_ln_rms_v=tuple(float(values[n]) for n in VOLTAGE_POINTS),
            i_rms_a=tuple(float(values[n]) for n in CURRENT_POINTS),
            p_w=float(values["active_power"]),
            q_var=float(values["reactive_power"]),
            alarms=tuple(name[len(ALARM_PREFIX):] for name in alarm_points if values[name] == ALARM_ACTIVE))

    # -- commands ---------------------------------------------------------------------------
    def start_engine(self) -> None:
        """Ask the controller to start the engine (it reports STARTING, then RUNNING)."""
        self.command({"engine_command": "START"}, "engine start")

    def stop_engine(self) -> None:
        """Open the breaker (if closed) and stop the engine."""
        self.command({"breaker_command": "OPEN"}, "generator breaker open")
        self.command({"engine_command": "STOP"}, "engine stop")

    def close_breaker(self) -> None:
        """Close the generator breaker (the controller synchronises to a live bus first);
        refused before anything is sent unless the engine reports RUNNING."""
        state = self.read_points(["engine_state"])["engine_state"]
        if state != "RUNNING":
            raise self.error(f"generator breaker close refused: the engine reports {state}, the breaker "
                             "closes only while it runs (a stopped set would motor); nothing was sent")
        self.command({"breaker_command": "CLOSE"}, "generator breaker close")

    def open_breaker(self) -> None:
        self.command({"breaker_command": "OPEN"}, "generator breaker open")

    def safe_state(self) -> bool:
        """Breaker open, engine stopped; never raises. A genset the bench may not command is left
        as it is (nothing is sent)."""
        if not self.control_allowed:
            return True
        ok = True
        for values, what in (({"breaker_command": "OPEN"}, "generator breaker open"),
                             ({"engine_command": "STOP"}, "engine stop")):
            try:
                self.command(values, what)
            except Exception as exc:   # the next command must still go out
                ok = False
                log.error("%s at %s: safe-state %s failed: %s", self.role, self.resource_name, what, exc)
        return ok


__all__ = ["ModbusGenset"]
