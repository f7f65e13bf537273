"""From a bench-file entry (role, driver, VISA resource) to a connected, identified driver.

``open_instrument`` is the only place that opens VISA sessions: it checks the resource string
before touching the network, opens it with explicit terminations and timeout, asks ``*IDN?``
straight away (pyvisa-py "opens" a closed port happily; only the first I/O fails), and
refuses an instrument whose model is not the one the bench file names.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from typing import Any, Mapping

import pyvisa

from instruments.ac_load.chroma_63800 import Chroma63800
from instruments.dc_source.chroma_62000p import Chroma62000P
from instruments.dc_source.keysight_n8900 import KeysightN8900
from instruments.dc_source.keysight_rp7900 import KeysightRp7900
from instruments.errors import IdentityError, InstrumentError
from instruments.genset.modbus_genset import ModbusGenset
from instruments.grid_simulator.ametek_asterion import AmetekAsterion
from instruments.grid_simulator.ametek_mx import AmetekMx
from instruments.grid_simulator.chroma_61800 import Chroma61800
from instruments.load_bank.modbus_load_bank import ModbusLoadBank
from instruments.modbus_device import ModbusInstrument
from instruments.oscilloscope.keysight_infiniivision import KeysightInfiniiVision
from instruments.oscilloscope.tektronix_mso5 import TektronixMso5
from instruments.power_analyzer.yokogawa_wt import YokogawaWt
from instruments.scpi import Identity, ScpiInstrument

log = logging.getLogger(__name__)

#: driver name (as written in bench files) → driver class. Each class names its role
#: (``ROLE``) and the ``*IDN?`` manufacturers / model patterns it accepts; switching a lab
#: from one product family to another is a change of this name in the bench file.
DRIVERS: dict[str, type[ScpiInstrument] | type[ModbusInstrument]] = {
    "ametek_mx": AmetekMx,
    "ametek_asterion": AmetekAsterion,
    "chroma_61800": Chroma61800,
    "keysight_rp7900": KeysightRp7900,
    "keysight_n8900": KeysightN8900,
    "chroma_62000p": Chroma62000P,
    "tektronix_mso5": TektronixMso5,
    "keysight_infiniivision": KeysightInfiniiVision,
    "chroma_63800": Chroma63800,
    "yokogawa_wt": YokogawaWt,
    # Modbus roles: one point-map driven driver each; the bench file's map picks the product
    "modbus_genset": ModbusGenset,
    "modbus_load_bank": ModbusLoadBank,
}


def driver_families() -> dict[str, dict[str, object]]:
    """For each driver name: its role, the manufacturers and model patterns it accepts."""
    return {name: {"role": cls.ROLE, "manufacturers": cls.MANUFACTURERS,
                   "models": cls.MODEL_PATTERNS} for name, cls in sorted(DRIVERS.items())}

# VISA resource strings we accept, one pattern per interface type (case-insensitive).
_RESOURCE_SHAPES: dict[str, re.Pattern[str]] = {
    "TCPIP socket": re.compile(r"^TCPIP\d*::[^:\s]+::\d{1,5}::SOCKET$", re.I),
    "TCPIP VXI-11/HiSLIP": re.compile(r"^TCPIP\d*::[^:\s]+(::[A-Za-z0-9_,.\[\]]+)?::INSTR$", re.I),
    "serial": re.compile(r"^ASRL[^:\s]+::INSTR$", re.I),
    "USBTMC": re.compile(r"^USB\d*::(0x[0-9A-F]+|\d+)::(0x[0-9A-F]+|\d+)::[^:\s]+(::\d+)?::INSTR$", re.I),
    "GPIB": re.compile(r"^GPIB\d*::\d{1,2}(::\d{1,3})?::INSTR$", re.I),
}

_EXAMPLES = ("TCPIP::192.168.0.10::5025::SOCKET", "TCPIP::192.168.0.10::INSTR",
             "TCPIP::192.168.0.10::hislip0::INSTR", "ASRL/dev/ttyUSB0::INSTR",
             "USB0::0x2A8D::0x1602::MY12345678::INSTR", "GPIB0::5::INSTR")

_default_manager: pyvisa.ResourceManager | None = None


def validate_resource(role: str, resource: str) -> str:
    """Return the resource string stripped, or raise naming what shape was expected."""
    text = (resource or "").strip()
    if not any(shape.match(text) for shape in _RESOURCE_SHAPES.values()):
        hint = ""
        if text.upper().startswith("TCPIP") and text.count("::") == 2 and text.split("::")[2].isdigit():
            hint = " (a raw socket needs the ::SOCKET suffix)"
        raise InstrumentError(role, text or repr(resource),
                              f"malformed VISA resource string {resource!r}{hint}; expected one of "
                              + ", ".join(_EXAMPLES))
    if "::SOCKET" in text.upper():
        port = int(text.split("::")[-2])
        if not 0 < port < 65536:
            raise InstrumentError(role, text, f"port {port} is not a TCP port")
    return text


def model_matches(pattern: str, model: str) -> bool:
    """``expected_model`` is a prefix (``"MSO5"``) or a glob (``"MX*-3Pi"``), case-insensitive."""
    pattern_u, model_u = pattern.strip().upper(), model.strip().upper()
    if any(ch in pattern_u for ch in "*?["):
        return fnmatch.fnmatchcase(model_u, pattern_u)
    return model_u.startswith(pattern_u)


def _role_matches(driver_role: str, role: str) -> bool:
    # "oscilloscope", or a second one named "oscilloscope_2" / "oscilloscope2"
    return (role == driver_role or role.startswith(driver_role + "_")
            or re.fullmatch(re.escape(driver_role) + r"\d+", role) is not None)


def _resource_manager() -> pyvisa.ResourceManager:
    global _default_manager
    if _default_manager is not None:
        # pyvisa hands every ResourceManager("@py") caller the same object, so another user
        # in this process (a vendor script, a test) may have closed ours: then open a new one
        try:
            _default_manager.session
        except pyvisa.errors.InvalidSession:
            _default_manager = None
    if _default_manager is None:
        _default_manager = pyvisa.ResourceManager("@py")
    return _default_manager


def open_instrument(role: str, driver: str, resource: str, *,
                    expected_model: str | None = None,
                    limits: Mapping[str, float] | None = None,
                    options: Mapping[str, Any] | None = None,
                    timeout_s: float = 5.0,
                    resource_manager: pyvisa.ResourceManager | None = None) -> ScpiInstrument:
    """Open, identify and initialise the instrument serving ``role``; return its driver."""
    try:
        driver_class = DRIVERS[driver]
    except KeyError:
        raise InstrumentError(role, resource, f"unknown driver {driver!r}; known drivers: "
                              + ", ".join(sorted(DRIVERS))) from None
    if not _role_matches(driver_class.ROLE, role):
        raise InstrumentError(role, resource, f"driver {driver!r} drives a {driver_class.ROLE}, "
                              f"not a {role}")
    if issubclass(driver_class, ModbusInstrument):
        # a Modbus device, not a VISA resource: its own address form, identified the same way
        if not timeout_s > 0:
            raise InstrumentError(role, resource, f"timeout_s must be positive, got {timeout_s!r}")
        return _identified(driver_class.connect(role, resource, limits=limits, options=options,
                                                timeout_s=timeout_s), driver, expected_model)
    resource = validate_resource(role, resource)
    if not timeout_s > 0:
        raise InstrumentError(role, resource, f"timeout_s must be positive, got {timeout_s!r}")

    manager = resource_manager or _resource_manager()
    timeout_ms = timeout_s * 1000.0
    try:
        session = manager.open_resource(resource, read_termination="\n", write_termination="\n",
                                        timeout=timeout_ms, open_timeout=int(timeout_ms))
    except Exception as exc:   # pyvisa-py raises plain Exception("could not connect: …")
        raise InstrumentError(role, resource, f"does not answer: cannot open the session "
                              f"({type(exc).__name__}: {exc})") from exc
    options = dict(options or {})
    if resource.upper().startswith("ASRL") and "baud_rate" in options:
        session.baud_rate = int(options["baud_rate"])

    instrument = driver_class(session, role, resource, limits=limits, options=options)
    return _identified(instrument, driver, expected_model)


def _identified(instrument, driver: str, expected_model: str | None):
    """Identify, check the identity and initialise an opened driver (closed on any failure)."""
    try:
        identity = instrument.identify()
        _check_identity(instrument, driver, identity, expected_model)
        instrument.initialize()
    except BaseException:
        instrument.close()
        raise
    log.info("%s at %s: %s", instrument.role, instrument.resource_name, identity)
    return instrument


def _check_identity(instrument: ScpiInstrument, driver: str, identity: Identity,
                    expected_model: str | None) -> None:
    role, resource = instrument.role, instrument.resource_name
    answered = f"{identity.manufacturer},{identity.model}"
    if expected_model and not model_matches(expected_model, identity.model):
        raise IdentityError(role, resource,
                            f"expected model {expected_model!r} but the instrument answered "
                            f"{identity.model!r} ({identity.manufacturer})",
                            expected=expected_model, answered=identity.model)
    patterns = type(instrument).MODEL_PATTERNS
    if patterns and not any(model_matches(p, identity.model) for p in patterns):
        raise IdentityError(role, resource,
                            f"driver {driver!r} speaks to models {', '.join(patterns)}, but the "
                            f"instrument answered {answered!r}",
                            expected=" | ".join(patterns), answered=identity.model)
    makers = type(instrument).MANUFACTURERS
    if makers and not any(m.upper() in identity.manufacturer.upper() for m in makers):
        raise IdentityError(role, resource,
                            f"driver {driver!r} is for instruments made by {' or '.join(makers)}, "
                            f"but the instrument answered {answered!r}",
                            expected=" | ".join(makers), answered=identity.manufacturer)


__all__ = ["DRIVERS", "driver_families", "open_instrument", "validate_resource", "model_matches"]
