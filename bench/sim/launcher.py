"""Start the whole virtual bench in one asyncio loop: plant, SCPI instruments, PCS, control.

`python -m bench.sim` runs it from a shell; `start_bench()` / `serve()` are the function
API for the pytest plugin. Every server listens on loopback (port chosen by the OS) unless
the user binds elsewhere explicitly. The endpoints document (JSON) tells clients where
everything is; it is written atomically once every server listens.

Which instrument twin serves a role follows the bench file: each role's `driver` names a
product family, and `TWINS` maps that name to the simulated instrument of the same family
(strings only: the simulator never imports the drivers). A role whose driver has no twin
is refused before anything starts (exit status 2), naming the role and the driver.

Scope probes follow the bench file too: each oscilloscope channel's `name` says where its
probe sits in the plant (`SCOPE_PROBE_POINTS`: v_a/v_b/v_c at the PCC phases, i_a/i_b/i_c on the
PCS phases, ig_* on the grid feeder, il_* on the load feeder, vdc/idc on the DC link) and its
`ratio` is the probe's attenuation. A name outside that convention is refused before
anything starts. Without a bench file each scope twin keeps its own default wiring.

Time: by default a background task advances the plant to follow the wall clock in ~10 ms
steps, so an interactive pyvisa session or a SCADA client sees a live bench. With
`lockstep`, plant time moves only when the control endpoint's `advance` op asks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import importlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bench.sim.control import ControlHooks, ControlServer
from bench.sim.scpi.server import ScpiInstrument, ScpiServer
from bench.sim.scpi.tektronix_mso import ProbeWiring

log = logging.getLogger(__name__)

PACE_STEP_S = 0.01  # real-time pacing granularity (wall clock)
PACE_MAX_CATCH_UP_S = 0.25  # beyond this lag, plant time slips instead of racing to catch up
PCS_DEVICE_ID = 1


@dataclass(frozen=True)
class TwinSpec:
    """The simulated instrument behind a driver name: its role and where its class lives."""

    role: str
    module: str
    class_name: str
    # how a real unit is reached on Ethernet: "socket" (raw SCPI, port 5025 style), "vxi11"
    # (TCPIP::<ip>::INSTR; bench/sim/vxi11_server.py) or "modbus" (Modbus TCP register device,
    # bench/sim/modbus_devices.py)
    transport: str = "socket"

    def load(self) -> type:
        return getattr(importlib.import_module(self.module), self.class_name)


# driver name (as bench files spell it) → the twin of the same product family
TWINS: dict[str, TwinSpec] = {
    "ametek_mx": TwinSpec("grid_simulator", "bench.sim.scpi.ametek_mx", "AmetekMx"),
    "ametek_asterion": TwinSpec("grid_simulator", "bench.sim.scpi.ametek_asterion", "AmetekAsterion"),
    "chroma_61800": TwinSpec("grid_simulator", "bench.sim.scpi.chroma_61800", "Chroma61800"),
    "keysight_rp7900": TwinSpec("dc_source", "bench.sim.scpi.keysight_rp7900", "KeysightRp7900"),
    "keysight_n8900": TwinSpec("dc_source", "bench.sim.scpi.keysight_n8900", "KeysightN8900"),
    "chroma_62000p": TwinSpec("dc_source", "bench.sim.scpi.chroma_62000p", "Chroma62000P"),
    "tektronix_mso5": TwinSpec("oscilloscope", "bench.sim.scpi.tektronix_mso", "TektronixMso"),
    "keysight_infiniivision": TwinSpec("oscilloscope", "bench.sim.scpi.keysight_infiniivision",
                                       "KeysightInfiniiVision"),
    "chroma_63800": TwinSpec("ac_load", "bench.sim.scpi.chroma_63800", "Chroma63800"),
    "yokogawa_wt": TwinSpec("power_analyzer", "bench.sim.scpi.yokogawa_wt", "YokogawaWt", transport="vxi11"),
    # point-map driven drivers: their twin is the virtual bench's own product (docs/modbus_instruments.md)
    "modbus_genset": TwinSpec("genset", "bench.sim.modbus_devices", "VirtualGensetController", transport="modbus"),
    "modbus_load_bank": TwinSpec("load_bank", "bench.sim.modbus_devices", "VirtualLoadBank", transport="modbus"),
}

# Where a scope channel's probe sits, by the channel's name in the bench file → the plant's
# ring signal it sees. Currents are measured in the plant's reference directions: PCS
# currents out of the PCS, grid currents from the grid into the PCC bus, load currents from
# the PCC bus into the RLC bank and AI load together.
SCOPE_PROBE_POINTS: dict[str, str] = {
    "v_a": "pcc_va_v", "v_b": "pcc_vb_v", "v_c": "pcc_vc_v",
    "i_a": "pcs_ia_a", "i_b": "pcs_ib_a", "i_c": "pcs_ic_a",
    "ig_a": "grid_ia_a", "ig_b": "grid_ib_a", "ig_c": "grid_ic_a",
    "il_a": "load_ia_a", "il_b": "load_ib_a", "il_c": "load_ic_a",
    "vdc": "vdc_v", "idc": "idc_a",
}


class ScopeWiringError(ValueError):
    """A bench file's scope channel names a probe point the virtual bench does not have."""


def scope_wiring_from_channels(channels: Any) -> dict[int, ProbeWiring]:
    """input number → probe for a bench file's scope channels (name → plant signal, ratio →
    attenuation); ScopeWiringError names every channel whose name is outside the convention."""
    wiring: dict[int, ProbeWiring] = {}
    unknown = []
    for channel in channels:
        signal = SCOPE_PROBE_POINTS.get(channel.name)
        if signal is None:
            unknown.append(f"CH{channel.channel} {channel.name!r}")
        else:
            wiring[int(channel.channel)] = ProbeWiring(signal, float(channel.ratio))
    if unknown:
        raise ScopeWiringError(
            f"virtual bench: oscilloscope channel(s) {', '.join(unknown)} name no probe point of the "
            f"virtual bench (names it knows: {', '.join(SCOPE_PROBE_POINTS)})")
    return wiring

DEFAULT_INSTRUMENTS: dict[str, str] = {
    "grid_simulator": "ametek_mx",
    "dc_source": "keysight_rp7900",
    "oscilloscope": "tektronix_mso5",
}
ROLE_ORDER = ("grid_simulator", "dc_source", "oscilloscope", "ac_load", "power_analyzer")


class NoTwinError(ValueError):
    """A bench file names an instrument the virtual bench cannot simulate."""


def resolve_twins(instruments: Mapping[str, str]) -> dict[str, TwinSpec]:
    """role → twin for a bench's role → driver map; NoTwinError names every role refused."""
    problems, twins = [], {}
    for role, driver in instruments.items():
        spec = TWINS.get(driver)
        if spec is None:
            problems.append(f"role {role!r}: driver {driver!r} has no simulated twin "
                            f"(twins exist for: {', '.join(sorted(TWINS))})")
        elif spec.role != role:
            problems.append(f"role {role!r}: driver {driver!r} is a {spec.role.replace('_', ' ')}")
        else:
            twins[role] = spec
    for role in DEFAULT_INSTRUMENTS:
        if role not in instruments:
            problems.append(f"role {role!r}: missing (the virtual bench needs one)")
    if problems:
        raise NoTwinError("virtual bench: " + "; ".join(problems))
    return twins


@dataclass
class RunningBench:
    """A started virtual bench; `stop()` closes everything."""

    plant: Any
    lockstep: bool
    host: str
    grid_simulator: Any
    dc_source: Any
    oscilloscope: Any
    scpi_servers: dict[str, Any]            # ScpiServer or Vxi11Server: .resource, .instrument, .stop()
    control: ControlServer | None = None
    pcs_server: Any | None = None
    pcs_missing_reason: str = ""
    shutdown_requested: asyncio.Event = field(default_factory=asyncio.Event)
    _pacer: asyncio.Task | None = None
    _pcs_port: int | None = None  # kept after a kill_pcs fault: the address stays, nobody answers

    def __post_init__(self) -> None:
        if self.pcs_server is not None:
            self._pcs_port = self.pcs_server.port

    def endpoints(self) -> dict:
        assert self.control is not None
        document: dict[str, Any] = {
            "control": self.control.address,
            "instruments": {role: server.resource for role, server in self.scpi_servers.items()},
            "pcs": None,
        }
        if self._pcs_port is not None:
            document["pcs"] = {"host": self.host, "port": self._pcs_port, "device_id": PCS_DEVICE_ID}
        return document

    async def kill_pcs(self) -> None:
        """Fault injection: the PCS stops answering Modbus (its server socket closes)."""
        if self.pcs_server is not None:
            server, self.pcs_server = self.pcs_server, None
            await server.stop()

    async def stop(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            try:
                await self._pacer
            except asyncio.CancelledError:
                pass
            self._pacer = None
        if self.control is not None:
            await self.control.stop()
        for server in self.scpi_servers.values():
            await server.stop()
        await self.kill_pcs()


def _build_plant(plant_config: Any) -> Any:
    from bench.sim.plant import Plant

    return Plant(plant_config)


def build_twins(plant: Any, instruments: Mapping[str, str],
                scope_wiring: dict[int, ProbeWiring] | None = None) -> dict[str, ScpiInstrument]:
    """The simulated instruments for a role → driver map, wired together like the bench."""
    twins = resolve_twins(instruments)
    config = getattr(plant, "config", None)
    grid_config = getattr(config, "grid", None)
    nominal_v_ln_v = getattr(grid_config, "v_ll_nom_v", 480.0) / 3**0.5
    nominal_freq_hz = getattr(grid_config, "f_nom_hz", 60.0)
    ring_s = getattr(config, "ring_s", 30.0)
    built: dict[str, ScpiInstrument] = {}
    for role in sorted(twins, key=lambda r: ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER)):
        cls = twins[role].load()
        if role == "grid_simulator":
            built[role] = cls(plant, nominal_v_ln_v=nominal_v_ln_v, nominal_freq_hz=nominal_freq_hz)
        elif role == "oscilloscope":
            # the bench file's probes (None: the twin's default wiring — 8 channels: PCC
            # voltages, PCS currents, vdc, grid current; 4: voltages + PCS ia)
            built[role] = cls(plant, ring_s=ring_s, wiring=scope_wiring)
            _drop_missing_inputs(built[role])
        else:
            built[role] = cls(plant)
    # the grid simulator's trigger output is cabled to the scope's external trigger input
    # (AUX on the Tektronix, EXTernal on the InfiniiVision)
    grid_simulator, oscilloscope = built.get("grid_simulator"), built.get("oscilloscope")
    if grid_simulator is not None and oscilloscope is not None:
        grid_simulator.trigger_output_listeners.append(oscilloscope.external_trigger_input)
    return built


def _drop_missing_inputs(scope: Any) -> None:
    """A bench file may wire more probes than a smaller scope has inputs (an 8-channel map on a
    4-channel InfiniiVision): those probes hang in the air, and a capture that asks for such a
    channel is refused by the scope itself, as a real one would."""
    for number in [n for n in scope.wiring if n not in scope.channels]:
        log.warning("%s has no input %d: its probe (%s) is not connected", scope.model, number,
                    scope.wiring[number].signal)
        del scope.wiring[number]


def _instrument_server(spec: TwinSpec, instrument: ScpiInstrument) -> Any:
    """The server a real unit of the family would offer: VXI-11 or a raw SCPI socket."""
    if spec.transport == "vxi11":
        from bench.sim.vxi11_server import Vxi11Server

        return Vxi11Server(instrument)
    if spec.transport == "modbus":
        from bench.sim.modbus_devices import ModbusDeviceServer

        return ModbusDeviceServer(instrument)
    return ScpiServer(instrument)


async def start_bench(plant_or_config: Any, *, lockstep: bool = True, host: str = "127.0.0.1",
                      scope_wiring: dict[int, ProbeWiring] | None = None,
                      instruments: Mapping[str, str] | None = None) -> RunningBench:
    """Start every server of the virtual bench; returns once all of them listen.

    `instruments` maps role → driver name as a bench file does (default: AMETEK MX, Keysight
    RP7900, Tektronix MSO 5); NoTwinError if a driver has no twin.
    """
    role_drivers = dict(instruments or DEFAULT_INSTRUMENTS)
    twins = resolve_twins(role_drivers)  # refuse before the plant is built
    plant = plant_or_config if hasattr(plant_or_config, "advance") else _build_plant(plant_or_config)
    built = build_twins(plant, role_drivers, scope_wiring)
    scpi_servers = {role: await _instrument_server(twins[role], instrument).start(host)
                    for role, instrument in built.items()}
    grid_simulator, dc_source, oscilloscope = (built.get(r) for r in ("grid_simulator", "dc_source",
                                                                        "oscilloscope"))

    pcs_server, pcs_missing_reason = None, ""
    try:
        from bench.sim.modbus_pcs import start_pcs_server
    except ImportError as error:
        pcs_missing_reason = f"PCS Modbus server unavailable: {error}"
        log.warning(pcs_missing_reason)
    else:
        pcs_server = await start_pcs_server(plant, host=host, port=0, device_id=PCS_DEVICE_ID)

    bench = RunningBench(plant=plant, lockstep=lockstep, host=host, grid_simulator=grid_simulator,
                         dc_source=dc_source, oscilloscope=oscilloscope, scpi_servers=scpi_servers,
                         pcs_server=pcs_server, pcs_missing_reason=pcs_missing_reason)
    hooks = ControlHooks(plant=plant, lockstep=lockstep, endpoints=bench.endpoints, kill_pcs=bench.kill_pcs,
                         request_shutdown=bench.shutdown_requested.set)
    bench.control = ControlServer(hooks)
    await bench.control.start(host)
    if not lockstep:
        bench._pacer = asyncio.create_task(_pace_in_real_time(plant), name="bench-pacer")
    return bench


async def _pace_in_real_time(plant: Any) -> None:
    """Advance the plant to follow the wall clock, in small steps."""
    loop = asyncio.get_running_loop()
    wall_start_s, plant_start_s = loop.time(), plant.t_s
    while True:
        await asyncio.sleep(PACE_STEP_S)
        lag_s = (loop.time() - wall_start_s) - (plant.t_s - plant_start_s)
        if lag_s > PACE_MAX_CATCH_UP_S:
            # the plant cannot keep up (or the loop was blocked): let plant time slip
            log.debug("real-time pacing: plant %.3f s behind, slipping", lag_s)
            wall_start_s += lag_s - PACE_STEP_S
            lag_s = PACE_STEP_S
        if lag_s >= plant.dt_s:
            plant.advance(lag_s)


def write_endpoints_file(path: Path, document: dict) -> None:
    """Write atomically (temp file + rename) so a reader never sees a partial document."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def describe_endpoints(bench: RunningBench) -> str:
    assert bench.control is not None
    lines = [f"virtual bench ({'lockstep' if bench.lockstep else 'real-time'}), control {bench.control.address}"]
    for role, server in bench.scpi_servers.items():
        lines.append(f"  {role:<15} {server.resource}  ({server.instrument.model})")
    if bench.pcs_server is not None:
        lines.append(f"  {'pcs':<15} {bench.host}:{bench.pcs_server.port} device id {PCS_DEVICE_ID}")
    else:
        lines.append(f"  {'pcs':<15} MISSING: {bench.pcs_missing_reason}")
    return "\n".join(lines)


async def serve(plant_config: Any, *, lockstep: bool, host: str = "127.0.0.1",
                endpoints_file: Path | None = None, announce: bool = True,
                instruments: Mapping[str, str] | None = None,
                scope_wiring: dict[int, ProbeWiring] | None = None) -> None:
    """Run the bench until SIGINT/SIGTERM or the control endpoint's shutdown op."""
    bench = await start_bench(plant_config, lockstep=lockstep, host=host, instruments=instruments,
                              scope_wiring=scope_wiring)
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, bench.shutdown_requested.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no support
            pass
    try:
        if endpoints_file is not None:
            write_endpoints_file(endpoints_file, bench.endpoints())
        if announce:
            print(describe_endpoints(bench), flush=True)
        await bench.shutdown_requested.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await bench.stop()
        if endpoints_file is not None:
            # a stale document would point clients at closed ports
            Path(endpoints_file).unlink(missing_ok=True)
        if announce:
            print("virtual bench stopped", flush=True)


# --- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description="Run the bessbench virtual bench.")
    parser.add_argument("--bench", type=Path, help="bench file (TOML) describing the virtual bench")
    parser.add_argument("--lockstep", action="store_true",
                        help="plant time moves only on the control endpoint's advance op")
    parser.add_argument("--defect", action="append", default=[], metavar="NAME",
                        help="seed a PCS defect (repeatable); see --list-defects")
    parser.add_argument("--endpoints-file", type=Path, help="write the endpoints JSON document here")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default loopback; binding elsewhere exposes the bench)")
    parser.add_argument("--list-defects", action="store_true", help="list the seeded defects and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def plant_config_from_args(args: argparse.Namespace) -> Any:
    return bench_from_args(args)[0]


def bench_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    """(plant config, role → driver name) from the command line's bench file or defaults."""
    config, instruments, _ = bench_and_wiring_from_args(args)
    return config, instruments


def bench_and_wiring_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, str], dict[int, ProbeWiring] | None]:
    """(plant config, role → driver name, scope wiring or None for the twins' defaults)."""
    from dataclasses import replace

    if args.bench is not None:
        try:
            from bench.config import load_bench, virtual_plant_config
        except ImportError as error:
            raise ValueError(f"--bench needs bench.config, which is not available ({error})") from error
        bench = load_bench(args.bench)
        instruments = {role: entry.driver for role, entry in bench.instruments.items()}
        resolve_twins(instruments)  # refuse a bench the simulator cannot serve, before any work
        scope = bench.instruments.get("oscilloscope")
        wiring = scope_wiring_from_channels(scope.channels) if scope is not None else None
        return virtual_plant_config(bench, extra_defects=tuple(args.defect)), instruments, wiring
    from bench.sim.plant import PlantConfig

    config = PlantConfig()
    if args.defect:
        config = replace(config, defects=tuple(config.defects) + tuple(args.defect))
    return config, dict(DEFAULT_INSTRUMENTS), None


def list_defects() -> str:
    from bench.sim.defects import DEFECTS

    return "\n".join(f"{name:<28} {getattr(d, 'caught_by', ''):<5} {getattr(d, 'description', '')}"
                     for name, d in sorted(DEFECTS.items()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.list_defects:
        print(list_defects())
        return 0
    try:
        config, instruments, scope_wiring = bench_and_wiring_from_args(args)
        plant = _build_plant(config)
    except ValueError as error:  # bad settings, unknown defect: one clear line, status 2
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if type(error).__name__ == "BenchFileError":
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise
    try:
        asyncio.run(serve(plant, lockstep=args.lockstep, host=args.host, endpoints_file=args.endpoints_file,
                          instruments=instruments, scope_wiring=scope_wiring))
    except KeyboardInterrupt:  # Ctrl-C before the signal handler was installed
        pass
    return 0
