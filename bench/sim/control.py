"""The virtual bench's control endpoint: JSON lines over TCP.

This is the one door into the simulator that a real bench does not have: the bench clock
asks it to advance plant time (lockstep mode), tests ask it for the endpoints, and fault
injection (the PCS stops answering) goes through it. Requests and replies are one JSON
object per line: `{"op": ...}` → `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from bench.sim.ai_load import profile_from_spec
from bench.sim.stream_server import StreamServer

log = logging.getLogger(__name__)

# Plant time is advanced in slices so that other connections (SCPI queries from a
# concurrent poller, for instance) are served between slices of a long advance.
ADVANCE_SLICE_S = 0.05
# in phasor mode a slice is 200 steps of 5 ms: a 24 h run is not 1.7 million round trips
ADVANCE_SLICE_PHASOR_S = 1.0
ADVANCE_MAX_S = 24 * 3600.0
# Loop turns given to other connections before time moves (see _let_received_commands_run).
SETTLE_TURNS = 5


@dataclass
class ControlHooks:
    """What the endpoint acts on; the launcher provides these."""

    plant: Any  # bench.sim.plant.Plant
    lockstep: bool
    endpoints: Callable[[], dict]
    kill_pcs: Callable[[], Awaitable[None]]
    request_shutdown: Callable[[], None]


class ControlServer(StreamServer):
    def __init__(self, hooks: ControlHooks) -> None:
        super().__init__()
        self.hooks = hooks
        self._advance_lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track(writer)
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                reply = await self.handle_line(line)
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._untrack(writer)
            writer.close()

    async def handle_line(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            return await self.handle(request)
        except (ValueError, TypeError, KeyError) as error:
            return {"ok": False, "error": f"bad request: {error}"}
        except Exception as error:  # report, keep serving
            log.exception("control request failed")
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}

    async def handle(self, request: dict) -> dict:
        op = request.get("op")
        plant = self.hooks.plant
        if op == "time":
            return {"ok": True, "t_s": plant.t_s}
        if op == "advance":
            return await self._advance(request)
        if op == "endpoints":
            return {"ok": True, **self.hooks.endpoints()}
        if op == "fault":
            what = request.get("what")
            if what == "kill_pcs":
                await self.hooks.kill_pcs()
                return {"ok": True}
            return {"ok": False, "error": f"unknown fault {what!r} (known: kill_pcs)"}
        if op == "shutdown":
            self.hooks.request_shutdown()
            return {"ok": True}
        if op == "load_bank":
            # the RLC load bank's contactors (three-phase totals at nominal voltage)
            plant.set_load_bank(float(request.get("p_w", 0.0)),
                                float(request.get("q_inductive_var", 0.0)),
                                float(request.get("q_capacitive_var", 0.0)))
            return {"ok": True, "t_s": plant.t_s}
        if op == "ai_load":
            spec = request.get("profile")
            plant.set_ai_load(None if spec is None else profile_from_spec(spec))
            return {"ok": True, "t_s": plant.t_s}
        if op == "genset":
            # the genset's engine and breaker; fields left out keep their present state,
            # so {"op": "genset"} alone reads the genset's measurements
            present = plant.genset_measurements() if plant.config.genset is not None else {}
            running = request.get("running", present.get("running", False))
            closed = request.get("breaker_closed", present.get("breaker_closed", False))
            if not isinstance(running, bool) or not isinstance(closed, bool):
                return {"ok": False, "error": "genset: running and breaker_closed must be true/false"}
            if "running" in request or "breaker_closed" in request:
                plant.set_genset(running=running, breaker_closed=closed)
            elif plant.config.genset is None:
                return {"ok": False, "error": "no genset on this bench"}
            return {"ok": True, "t_s": plant.t_s, "genset": plant.genset_measurements()}
        if op == "fidelity":
            # {"op": "fidelity"} reads it; with "fidelity": "emt" | "phasor" (and "dt_s"
            # for phasor, 1-10 ms) it switches at the present plant time
            if "fidelity" in request:
                dt_s = request.get("dt_s")
                plant.set_fidelity(str(request["fidelity"]),
                                   dt_s=None if dt_s is None else float(dt_s))
            return {"ok": True, "t_s": plant.t_s, "fidelity": plant.fidelity,
                    "step_s": plant.step_s}
        if op == "loads":
            return {"ok": True, "t_s": plant.t_s, "load": plant.load_measurements(),
                    "grid_at_pcc": plant.pcc_grid_measurements()}
        return {"ok": False, "error": f"unknown op {op!r} (known: time, advance, endpoints, fault, "
                                      f"shutdown, load_bank, ai_load, loads, genset, fidelity)"}

    async def _advance(self, request: dict) -> dict:
        if not self.hooks.lockstep:
            return {"ok": False, "error": "the bench is paced in real time; advance is only available in lockstep mode"}
        dt_s = float(request["dt_s"])
        if not 0.0 <= dt_s <= ADVANCE_MAX_S:
            return {"ok": False, "error": f"dt_s must be within 0..{ADVANCE_MAX_S:g} s, got {dt_s!r}"}
        plant = self.hooks.plant
        async with self._advance_lock:  # two clients advancing at once would interleave
            await _let_received_commands_run()
            target_s = plant.t_s + dt_s
            while (remaining_s := target_s - plant.t_s) > plant.dt_s * 0.5:
                before_s = plant.t_s
                slice_s = ADVANCE_SLICE_PHASOR_S if getattr(plant, "fidelity", "emt") == "phasor" \
                    else ADVANCE_SLICE_S
                plant.advance(min(slice_s, remaining_s))
                if plant.t_s <= before_s:
                    break  # less than a step left: the plant rounds it away
                await asyncio.sleep(0)
        return {"ok": True, "t_s": plant.t_s}


async def _let_received_commands_run() -> None:
    """Let instrument commands already received run before plant time moves.

    A plan writes `ACQuire:STATE ON` to the scope and then asks for `advance`; the two go
    over different sockets. Both are in the kernel by the time the advance request is
    read, but the scope connection's task may be scheduled after this one. A few loop
    turns let it run first, so the command takes effect at the plant time it was sent,
    as it would on a bench whose clock is the wall clock.
    """
    for _ in range(SETTLE_TURNS):
        await asyncio.sleep(0)
