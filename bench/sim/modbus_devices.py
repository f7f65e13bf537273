"""Modbus instrument twins of the virtual bench: the VGC-1 genset controller and the VLB-315
RLC load bank, both served over Modbus TCP (pymodbus 3.16) on loopback.

Written from their manuals in docs/modbus_instruments.md (register tables and behaviour), not
from the drivers or their point maps: the two sides meet only on the wire. The genset
controller starts and stops the plant's genset and works its breaker (`Plant.set_genset`);
the load bank switches its steps into the plant's constant-impedance load on the PCC bus as
its own part (`Plant.set_load_bank(..., part="load_bank")`), so an AC load in constant-
resistance mode on the same bus keeps its own share.

Serving: pymodbus keeps the registers; our `action` hook runs before every access. On reads it
rewrites the points the request touches from the plant, on writes it decodes and validates the
whole request first (applied entirely or not at all) and then acts on the plant. A write-only
command register reads 0. Other unit ids answer 0x0B, as a gateway does for a missing unit.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

log = logging.getLogger(__name__)

DEVICE_ID = 1
MEASURE_CYCLES = 1.0           # rms over the last cycle, as a controller's meter averages
FREQUENCY_WINDOW_S = 0.2       # zero-crossing frequency over the last 0.2 s


class WriteRefused(Exception):
    """A write the device refuses, with the Modbus exception code it answers."""

    def __init__(self, code: ExcCodes, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Register:
    """One point of a device's register table (the manual's row)."""

    name: str
    address: int
    kind: str                  # "uint16" | "int32" | "uint32" | "string"
    size: int = 1
    writable: bool = False
    write_only: bool = False   # a command: reads 0
    scale: float = 1.0         # raw = round(value / scale)

    def encode(self, value: Any) -> list[int]:
        if self.kind == "string":
            data = str(value).encode("ascii")[: 2 * self.size].ljust(2 * self.size, b"\x00")
            return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        raw = int(round(float(value) / self.scale)) if math.isfinite(float(value)) else 0
        if self.kind == "uint16":
            return [min(max(raw, 0), 0xFFFF)]
        if self.kind == "uint32":
            raw = min(max(raw, 0), 0xFFFF_FFFF)
        else:                                   # int32
            raw = min(max(raw, -0x8000_0000), 0x7FFF_FFFF) & 0xFFFF_FFFF
        return [raw >> 16, raw & 0xFFFF]


def identity_registers() -> list[Register]:
    """Registers 0-28 of both manuals: block version and identity strings."""
    return [Register("version", 0, "uint16"), Register("manufacturer", 1, "string", 8),
            Register("model", 9, "string", 8), Register("serial", 17, "string", 8),
            Register("firmware", 25, "string", 4)]


class ModbusTwin:
    """A register device backed by the plant: subclasses list their registers, say what each
    reads (`values()`) and act on writes (`apply()`)."""

    REGISTERS: ClassVar[tuple[Register, ...]]
    manufacturer = "bessbench"
    firmware = "1.0"

    def __init__(self, plant: Any, *, model: str, serial: str) -> None:
        self.plant = plant
        self.model = model
        self.serial = serial
        self._by_address = {addr: reg for reg in self.REGISTERS
                            for addr in range(reg.address, reg.address + reg.size)}

    # -- what the device reads and does ----------------------------------------------------
    def values(self) -> dict[str, Any]:
        return {"version": 1, "manufacturer": self.manufacturer, "model": self.model,
                "serial": self.serial, "firmware": self.firmware}

    def validate(self, register: Register, raw: int) -> None:
        """Raise WriteRefused for a value the device does not accept."""

    def apply(self, changes: dict[str, int]) -> None:
        """Act on validated writes (register name -> raw value), in address order."""

    # -- pymodbus wiring ---------------------------------------------------------------------
    def sim_data(self) -> list[SimData]:
        """Listed registers only (unlisted ones answer 02), split where writability changes
        (pymodbus answers 02 to writes of read-only runs before the action runs)."""
        blocks: list[SimData] = []
        run: list[Register] = []

        def close_run() -> None:
            if run:
                count = sum(r.size for r in run)
                blocks.append(SimData(address=run[0].address, values=[0] * count, datatype=DataType.REGISTERS,
                                      readonly=not run[0].writable))
                run.clear()
        for reg in sorted(self.REGISTERS, key=lambda r: r.address):
            if run and (reg.writable != run[-1].writable or reg.address != run[-1].address + run[-1].size):
                close_run()
            run.append(reg)
        close_run()
        return blocks

    def refresh(self, registers: list[int], start_addr: int, address: int, count: int) -> None:
        touched = {self._by_address[a] for a in range(address, address + count) if a in self._by_address}
        if not touched:
            return
        values = self.values()
        for reg in touched:
            words = [0] * reg.size if reg.write_only else reg.encode(values.get(reg.name, 0))
            index = reg.address - start_addr
            registers[index:index + reg.size] = words

    def write(self, address: int, words: list[int]) -> None:
        end = address + len(words)
        changes: dict[str, int] = {}
        for reg in sorted(self.REGISTERS, key=lambda r: r.address):
            if reg.address + reg.size <= address or end <= reg.address:
                continue
            if reg.address < address or end < reg.address + reg.size:
                raise WriteRefused(ExcCodes.ILLEGAL_ADDRESS, f"partial write of {reg.name}")
            if not reg.writable:
                raise WriteRefused(ExcCodes.ILLEGAL_ADDRESS, f"{reg.name} is read-only")
            raw = words[reg.address - address]
            self.validate(reg, raw)
            changes[reg.name] = raw
        self.apply(changes)

    def action(self) -> Callable:
        async def action(function_code: int, start_addr: int, address: int, count: int,
                         registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
            if function_code not in (3, 4, 6, 16):
                return ExcCodes.ILLEGAL_FUNCTION
            try:
                if set_values is None:       # FC6 comes back here for its echo read
                    self.refresh(registers, start_addr, address, count)
                else:
                    self.write(address, [int(v) for v in set_values])
                    log.info("%s: write at %d: %s", self.model, address, list(set_values))
            except WriteRefused as exc:
                log.info("%s: write at %d refused: %s", self.model, address, exc)
                return exc.code
            except Exception:                 # a bug here must not kill the server; a device says 04
                log.exception("%s: access at %d failed", self.model, address)
                return ExcCodes.DEVICE_FAILURE
            return None
        return action


async def _absent_unit(function_code: int, start_addr: int, address: int, count: int,
                       registers: list[int], set_values: Any) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


class ModbusDeviceServer:
    """Serves one twin on Modbus TCP; the launcher treats it as it treats a SCPI server."""

    def __init__(self, instrument: ModbusTwin) -> None:
        self.instrument = instrument
        self.host = ""
        self.port = 0
        self._server: ModbusTcpServer | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "ModbusDeviceServer":
        devices = [SimDevice(id=DEVICE_ID, simdata=self.instrument.sim_data(), action=self.instrument.action()),
                   SimDevice(id=0, simdata=[SimData(address=0, count=65536, datatype=DataType.REGISTERS)],
                             action=_absent_unit)]
        self._server = ModbusTcpServer(devices, address=(host, port))
        await self._server.serve_forever(background=True)
        self.host, self.port = host, self._server.transport.sockets[0].getsockname()[1]
        return self

    @property
    def resource(self) -> str:
        return f"modbus-tcp://{self.host}:{self.port}?device_id={DEVICE_ID}"

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()


# ------------------------------------------------------------------ what a meter sees
def _last_cycles(plant: Any, names: list[str], duration_s: float) -> np.ndarray:
    """The latest samples of ring signals over duration_s (fewer right after start-up)."""
    available = int(round(plant.t_s / plant.dt_s)) + 1
    n = max(min(int(round(duration_s / plant.dt_s)), available, int(plant.config.ring_s / plant.dt_s) - 1), 1)
    return plant.read_ring(names, max(plant.t_s - (n - 1) * plant.dt_s, 0.0), n)


def bus_rms_v(plant: Any, f_nom_hz: float) -> list[float]:
    v = _last_cycles(plant, ["pcc_va_v", "pcc_vb_v", "pcc_vc_v"], MEASURE_CYCLES / f_nom_hz)
    return [float(x) for x in np.sqrt(np.mean(v * v, axis=1))]


def bus_frequency_hz(plant: Any) -> float:
    va = _last_cycles(plant, ["pcc_va_v"], FREQUENCY_WINDOW_S)[0]
    rising = np.flatnonzero((va[:-1] < 0.0) & (va[1:] >= 0.0))
    if len(rising) < 2:
        return 0.0                       # a dead bus
    exact = rising + va[rising] / (va[rising] - va[rising + 1])
    return float((len(exact) - 1) / ((exact[-1] - exact[0]) * plant.dt_s))


# ------------------------------------------------------------------ VGC-1 genset controller
ENGINE_NONE, ENGINE_START, ENGINE_STOP = 0, 1, 2
BREAKER_NONE, BREAKER_CLOSE, BREAKER_OPEN = 0, 1, 2
STOPPED, STARTING, RUNNING = 0, 1, 2
OK, ACTIVE = 0, 1


class VirtualGensetController(ModbusTwin):
    """bessbench VGC-1: engine start/stop, generator breaker, terminal measurements."""

    START_TIME_S = 3.0          # crank, run up and excite
    REGISTERS = (
        *identity_registers(),
        Register("engine_state", 100, "uint16"), Register("breaker_state", 101, "uint16"),
        Register("frequency", 102, "uint16", scale=0.01),
        Register("v_l1n", 103, "uint16", scale=0.1), Register("v_l2n", 104, "uint16", scale=0.1),
        Register("v_l3n", 105, "uint16", scale=0.1),
        Register("i_l1", 106, "uint16", scale=0.1), Register("i_l2", 107, "uint16", scale=0.1),
        Register("i_l3", 108, "uint16", scale=0.1),
        Register("p", 109, "int32", 2), Register("q", 111, "int32", 2), Register("s_rated", 113, "uint32", 2),
        Register("overload", 120, "uint16"), Register("reverse_power", 121, "uint16"),
        Register("under_frequency", 122, "uint16"), Register("over_frequency", 123, "uint16"),
        Register("under_voltage", 124, "uint16"), Register("over_voltage", 125, "uint16"),
        Register("engine_command", 200, "uint16", writable=True, write_only=True),
        Register("breaker_command", 201, "uint16", writable=True, write_only=True),
    )

    def __init__(self, plant: Any, *, serial: str = "VGC-0001") -> None:
        genset = getattr(plant.config, "genset", None)
        if genset is None:
            raise ValueError("the virtual bench lists a genset controller but its plant has no genset "
                             "(PlantConfig.genset; a bench file's [instruments.genset] gives it)")
        super().__init__(plant, model="VGC-1", serial=serial)
        self.genset = genset.resolved()
        self._starting = False
        self._start_generation = 0

    def values(self) -> dict[str, Any]:
        gen = self.genset
        m = self.plant.genset_measurements()
        running, closed = bool(m["running"]), bool(m["breaker_closed"])
        v_ln_nom = gen.v_ll_nom_v / math.sqrt(3.0)
        if closed:
            v = bus_rms_v(self.plant, gen.f_nom_hz)
        elif running:
            v = [float(m["e_pu"]) * v_ln_nom] * 3     # open circuit: the EMF at the terminals
        else:
            v = [0.0, 0.0, 0.0]
        f = float(m["freq_hz"]) if running else 0.0
        p, q = (float(m["p_w"]), float(m["q_var"])) if closed else (0.0, 0.0)
        i = [float(x) for x in m["i_rms_a"]] if closed else [0.0, 0.0, 0.0]
        s = gen.s_rated_va
        return {
            **super().values(),
            "engine_state": STARTING if self._starting else (RUNNING if running else STOPPED),
            "breaker_state": int(closed), "frequency": f,
            "v_l1n": v[0], "v_l2n": v[1], "v_l3n": v[2], "i_l1": i[0], "i_l2": i[1], "i_l3": i[2],
            "p": p, "q": q, "s_rated": s,
            "overload": int(p > s), "reverse_power": int(closed and p < -0.05 * s),
            "under_frequency": int(running and f < 0.95 * gen.f_nom_hz),
            "over_frequency": int(running and f > 1.05 * gen.f_nom_hz),
            "under_voltage": int(running and min(v) < 0.90 * v_ln_nom),
            "over_voltage": int(running and max(v) > 1.10 * v_ln_nom),
        }

    def validate(self, register: Register, raw: int) -> None:
        allowed = {"engine_command": (ENGINE_NONE, ENGINE_START, ENGINE_STOP),
                   "breaker_command": (BREAKER_NONE, BREAKER_CLOSE, BREAKER_OPEN)}[register.name]
        if raw not in allowed:
            raise WriteRefused(ExcCodes.ILLEGAL_VALUE, f"{register.name} {raw} is not a command")
        if register.name == "breaker_command" and raw == BREAKER_CLOSE \
                and not self.plant.genset_measurements()["running"]:
            raise WriteRefused(ExcCodes.DEVICE_FAILURE, "breaker close while the engine is not running")

    def apply(self, changes: dict[str, int]) -> None:
        engine, breaker = changes.get("engine_command", ENGINE_NONE), changes.get("breaker_command", BREAKER_NONE)
        m = self.plant.genset_measurements()
        running = bool(m["running"])
        if engine == ENGINE_STOP or breaker == BREAKER_OPEN:
            if m["breaker_closed"]:
                self.plant.set_genset(running=running, breaker_closed=False)
        if engine == ENGINE_STOP:
            self._starting = False
            self._start_generation += 1              # a run-up in progress is abandoned
            if running:
                self.plant.set_genset(running=False, breaker_closed=False)
            running = False
        if engine == ENGINE_START and not running and not self._starting:
            self._starting = True
            self._start_generation += 1
            generation = self._start_generation
            self.plant.schedule(self.plant.t_s + self.START_TIME_S, lambda plant: self._run_up_done(generation))
        if breaker == BREAKER_CLOSE and running:
            self.plant.set_genset(running=True, breaker_closed=True)

    def _run_up_done(self, generation: int) -> None:
        if generation != self._start_generation or not self._starting:
            return
        self._starting = False
        self.plant.set_genset(running=True, breaker_closed=False)


# ------------------------------------------------------------------ VLB-315 RLC load bank
class VirtualLoadBank(ModbusTwin):
    """bessbench VLB-315: step contactors per branch, constant impedances rated at 480 V."""

    V_LL_RATED_V = 480.0
    F_RATED_HZ = 60.0
    STEPS = {"resistive": (5e3, 10e3, 20e3, 40e3, 80e3, 160e3),
             "inductive": (5e3, 10e3, 20e3, 40e3, 80e3),
             "capacitive": (5e3, 10e3, 20e3, 40e3, 80e3)}
    PLANT_PART = "load_bank"
    REGISTERS = (
        *identity_registers(),
        Register("resistive", 100, "uint16", writable=True), Register("inductive", 101, "uint16", writable=True),
        Register("capacitive", 102, "uint16", writable=True),
        Register("v_l1n", 110, "uint16", scale=0.1), Register("v_l2n", 111, "uint16", scale=0.1),
        Register("v_l3n", 112, "uint16", scale=0.1),
        Register("i_l1", 113, "uint16", scale=0.1), Register("i_l2", 114, "uint16", scale=0.1),
        Register("i_l3", 115, "uint16", scale=0.1),
        Register("p", 116, "int32", 2), Register("q", 118, "int32", 2),
        Register("frequency", 120, "uint16", scale=0.01),
        Register("over_voltage", 130, "uint16"),
    )

    def __init__(self, plant: Any, *, serial: str = "VLB-0001") -> None:
        super().__init__(plant, model="VLB-315", serial=serial)
        self.masks = {branch: 0 for branch in self.STEPS}

    def drawn_at_rated(self) -> dict[str, float]:
        """W / var of each branch at the rated voltage and frequency."""
        return {branch: float(sum(size for i, size in enumerate(steps) if self.masks[branch] >> i & 1))
                for branch, steps in self.STEPS.items()}

    def validate(self, register: Register, raw: int) -> None:
        if raw >> len(self.STEPS[register.name]):
            raise WriteRefused(ExcCodes.ILLEGAL_VALUE, f"{register.name} contactors: bit beyond step "
                                                       f"{len(self.STEPS[register.name]) - 1}")

    def apply(self, changes: dict[str, int]) -> None:
        self.masks.update(changes)
        drawn = self.drawn_at_rated()
        # the plant sizes its constant impedances at its own nominal voltage
        scale = (self.plant.config.grid.v_ll_nom_v / self.V_LL_RATED_V) ** 2
        self.plant.set_load_bank(drawn["resistive"] * scale, drawn["inductive"] * scale,
                                 drawn["capacitive"] * scale, part=self.PLANT_PART)

    def values(self) -> dict[str, Any]:
        v = bus_rms_v(self.plant, self.F_RATED_HZ)
        f = bus_frequency_hz(self.plant)
        v_rated_ln = self.V_LL_RATED_V / math.sqrt(3.0)
        drawn = self.drawn_at_rated()
        ratio_f = f / self.F_RATED_HZ if f > 0.0 else 1.0
        # per phase: constant impedances, so power goes with V^2 (and Q with f: 1/f for L, f for C)
        per_phase = [(x / v_rated_ln) ** 2 / 3.0 for x in v]
        p = [drawn["resistive"] * k for k in per_phase]
        q = [(drawn["inductive"] / ratio_f - drawn["capacitive"] * ratio_f) * k for k in per_phase]
        i = [math.hypot(pp, qq) / x if x > 1.0 else 0.0 for pp, qq, x in zip(p, q, v)]
        return {**super().values(), **self.masks,
                "v_l1n": v[0], "v_l2n": v[1], "v_l3n": v[2], "i_l1": i[0], "i_l2": i[1], "i_l3": i[2],
                "p": sum(p), "q": sum(q), "frequency": f,
                "over_voltage": int(max(v) > 1.10 * v_rated_ln)}


__all__ = ["ModbusDeviceServer", "VirtualGensetController", "VirtualLoadBank"]
