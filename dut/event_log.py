"""The PCS event log read through vendor points (count, select, time, code, value).

The log is a window: one entry is shown at a time, chosen by writing its index to a select
register. Walking it newest-first stops as soon as an entry is older than asked, so asking
for the last second costs a few transactions even when the log holds 1000 entries.
"""

from __future__ import annotations

from .errors import DutError, ModbusPointError
from .pcs import PcsEvent
from .vendor_points import VendorPoints

EVENT_POINTS = ("event_count", "event_select", "event_time", "event_code", "event_value")
# A log at capacity drops its oldest entry when a new one arrives, shifting every index; a walk
# that saw the count change is repeated, this many times at most.
WALK_ATTEMPTS = 3


def read_events_since(points: VendorPoints, t_s: float) -> list[PcsEvent]:
    """Entries with time_s >= t_s (PCS clock), oldest first. Writes the select register."""
    missing = [name for name in EVENT_POINTS if not points.map.has(name)]
    if missing:
        raise DutError(f"point map {points.map.name} has no event-log points {missing}")
    for _ in range(WALK_ATTEMPTS):
        count_before = int(points.read_one("event_count"))
        events = _walk(points, count_before, t_s)
        if int(points.read_one("event_count")) == count_before:
            return events
    # The PCS logs faster than the log can be walked; what was read is still consistent
    # per entry, only its completeness is uncertain.
    return events


def _walk(points: VendorPoints, count: int, t_s: float) -> list[PcsEvent]:
    newest_first: list[PcsEvent] = []
    for index in range(count, 0, -1):
        # The select register comes back with the entry in one read: that read is the
        # verification of the write.
        points.write({"event_select": index}, verify=False)
        entry = points.read(EVENT_POINTS[1:])
        if entry["event_select"] != index:
            select = points.map.point("event_select")
            raise ModbusPointError(
                f"{points.map.name}.event_select", select.address, points.transport.device,
                f"selected event {index} but the device shows {entry['event_select']}",
            )
        if entry["event_time"] < t_s:
            break
        code = entry["event_code"]
        newest_first.append(PcsEvent(
            time_s=entry["event_time"],
            code=code if isinstance(code, str) else f"CODE_{code}",
            value=int(entry["event_value"]),
        ))
    return newest_first[::-1]
