"""Synchronous Modbus transport (TCP or RTU) over pymodbus 3.16 clients.

One job: move holding registers to and from one device id, turning every failure into a
`DutError` that names the point, the register and the device. Callers above this layer
(SunSpec, vendor maps) pass the point name so the error reads like the PCS manual.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu.file_message import FileRecord

from .errors import ControlNotAllowed, DutError, ModbusPointError

# Modbus protocol limits (Modbus Application Protocol v1.1b3, FC3 and FC16).
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
# FC20: a response PDU holds at most 253 bytes; 120 registers of one sub-request fit with
# their framing, which is also the chunk size the VPCS-250 manual names.
MAX_FILE_RECORD_REGISTERS = 120
# The Modbus spec numbers records 0..9999; the request field is 16 bits and devices with
# longer files use it, so only the field width is enforced.
MAX_FILE_RECORD_NUMBER = 0xFFFF

MODBUS_EXCEPTION_TEXT: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge (busy with a long command)",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable (no device with this id behind the gateway?)",
    0x0B: "gateway target device failed to respond (wrong device id?)",
}


def rtu_inter_frame_delay_s(baudrate: int, bits_per_char: int) -> float:
    """Silent interval between RTU frames: 3.5 character times, fixed 1.75 ms above 19200 Bd.

    The fixed value above 19200 Bd is what the Modbus serial-line spec prescribes, because
    UARTs cannot time shorter gaps reliably.
    """
    if baudrate > 19200:
        return 1.75e-3
    return 3.5 * bits_per_char / baudrate


class ModbusTransport:
    """Holding-register access to one Modbus device, synchronous and thread-safe."""

    def __init__(
        self,
        client: ModbusTcpClient | ModbusSerialClient,
        *,
        device_id: int,
        device_description: str,
        timeout_s: float,
        retries: int,
        inter_frame_delay_s: float = 0.0,
        fc6_for_single_register: bool = False,
        serial_port: str | None = None,
    ) -> None:
        if not 0 <= device_id <= 247:
            raise DutError(f"Modbus device id {device_id} is outside 0..247 ({device_description})")
        self._client = client
        self.device_id = device_id
        self.device = device_description
        self.timeout_s = timeout_s
        self.retries = retries
        self.inter_frame_delay_s = inter_frame_delay_s
        # Some devices implement only FC6 for one-register points; most want FC16 always.
        self.fc6_for_single_register = fc6_for_single_register
        self._serial_port = serial_port
        self._lock = threading.Lock()  # one transaction at a time on the wire
        self._last_frame_end_s = 0.0
        # Defence in depth for read-only uses (scan, a connection without control): a write
        # is refused here even if a caller above forgot its own gate.
        self.read_only = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def tcp(
        cls,
        host: str,
        port: int = 502,
        *,
        device_id: int = 1,
        timeout_s: float = 1.0,
        retries: int = 2,
        fc6_for_single_register: bool = False,
    ) -> "ModbusTransport":
        client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=retries)
        return cls(
            client,
            device_id=device_id,
            device_description=f"Modbus TCP {host}:{port} device id {device_id}",
            timeout_s=timeout_s,
            retries=retries,
            fc6_for_single_register=fc6_for_single_register,
        )

    @classmethod
    def rtu(
        cls,
        port: str,
        *,
        baudrate: int = 19200,
        parity: str = "E",
        stopbits: int = 1,
        bytesize: int = 8,
        device_id: int = 1,
        timeout_s: float = 1.0,
        retries: int = 2,
        inter_frame_delay_s: float | None = None,
        fc6_for_single_register: bool = False,
    ) -> "ModbusTransport":
        parity = parity.upper()
        if parity not in ("N", "E", "O"):
            raise DutError(f"serial parity {parity!r} for {port} must be N, E or O")
        if stopbits not in (1, 2):
            raise DutError(f"serial stop bits {stopbits} for {port} must be 1 or 2")
        bits_per_char = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
        if inter_frame_delay_s is None:
            inter_frame_delay_s = rtu_inter_frame_delay_s(baudrate, bits_per_char)
        client = ModbusSerialClient(
            port,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize,
            timeout=timeout_s,
            retries=retries,
        )
        return cls(
            client,
            device_id=device_id,
            device_description=(
                f"Modbus RTU {port} {baudrate} Bd {bytesize}{parity}{stopbits} device id {device_id}"
            ),
            timeout_s=timeout_s,
            retries=retries,
            inter_frame_delay_s=inter_frame_delay_s,
            fc6_for_single_register=fc6_for_single_register,
            serial_port=port,
        )

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Open the socket or serial port; raise DutError naming it when that fails."""
        if self._client.connected:
            return
        if self._client.connect():
            return
        if self._serial_port is not None:
            raise DutError(self._serial_open_failure(self._serial_port))
        raise DutError(f"cannot connect to {self.device} (connection refused or host unreachable)")

    def close(self) -> None:
        self._client.close()

    def _serial_open_failure(self, port: str) -> str:
        # pymodbus logs and swallows the pyserial error; reproduce it, with the same settings
        # and the same reconfiguration pymodbus does after opening, to tell the user why.
        if "://" not in port and not os.path.exists(port):
            return f"serial port {port!r} does not exist"
        settings = {
            name: getattr(self._client.comm_params, name)
            for name in ("baudrate", "bytesize", "parity", "stopbits")
        }
        try:
            import serial  # pyserial, a dependency of the RTU client

            handle = serial.serial_for_url(port, **settings)
            try:
                handle.inter_byte_timeout = 0  # pymodbus sets it: a second termios call
            finally:
                handle.close()
        except Exception as exc:  # pyserial raises several undocumented types here
            hint = ""
            if settings["parity"] != "N" and "Invalid argument" in str(exc):
                hint = " (the port refuses these settings; a pseudo-terminal refuses parity E/O)"
            return (
                f"cannot open serial port {port!r} at {settings['baudrate']} Bd "
                f"{settings['bytesize']}{settings['parity']}{settings['stopbits']}: {exc}{hint}"
            )
        return f"cannot open serial port {port!r} (busy or locked by another program?)"

    # ------------------------------------------------------------------ transactions
    def read_holding(self, address: int, count: int, *, point: str = "?") -> list[int]:
        """Read `count` holding registers (FC3) starting at `address` (0-based)."""
        if not 1 <= count <= MAX_READ_REGISTERS:
            raise DutError(f"read of {count} registers for {point!r}: Modbus allows 1..125")
        _check_span(address, count, point)
        response = self._execute(
            point,
            address,
            lambda: self._client.read_holding_registers(
                address, count=count, device_id=self.device_id
            ),
        )
        registers = list(response.registers[:count])
        if len(registers) != count:
            raise ModbusPointError(
                point, address, self.device, f"asked for {count} registers, got {len(registers)}"
            )
        return registers

    def write_registers(self, address: int, values: Sequence[int], *, point: str = "?") -> None:
        """Write holding registers: FC16, or FC6 for one register when the device needs it."""
        if self.read_only:
            raise ControlNotAllowed(
                f"write to {point!r} at register {address} refused: {self.device} is opened "
                "read-only"
            )
        values = [int(v) for v in values]
        if not 1 <= len(values) <= MAX_WRITE_REGISTERS:
            raise DutError(f"write of {len(values)} registers for {point!r}: Modbus allows 1..123")
        if any(not 0 <= v <= 0xFFFF for v in values):
            raise DutError(f"write to {point!r}: register values must be 0..65535, got {values}")
        _check_span(address, len(values), point)
        if len(values) == 1 and self.fc6_for_single_register:
            self._execute(
                point,
                address,
                lambda: self._client.write_register(address, values[0], device_id=self.device_id),
            )
            return
        self._execute(
            point,
            address,
            lambda: self._client.write_registers(address, values, device_id=self.device_id),
        )

    def read_file_record(
        self, file_number: int, record_number: int, count: int, *, point: str = "?"
    ) -> list[int]:
        """Read `count` registers of a file (FC20, reference type 6) from record `record_number`.

        Errors name the point with its file and record; `register` in the error is the record.
        """
        if not 1 <= count <= MAX_FILE_RECORD_REGISTERS:
            raise DutError(f"file record read of {count} registers for {point!r}: at most 120")
        if not 0 <= file_number <= 0xFFFF:
            raise DutError(f"file number {file_number} for {point!r} is outside 0..65535")
        if not 0 <= record_number <= MAX_FILE_RECORD_NUMBER:
            raise DutError(f"record number {record_number} for {point!r} is outside 0..65535")
        label = f"{point} (file {file_number} record {record_number})"
        response = self._execute(
            label,
            record_number,
            lambda: self._client.read_file_record(
                [FileRecord(file_number=file_number, record_number=record_number,
                            record_length=2 * count)],
                device_id=self.device_id,
            ),
        )
        if len(response.records) != 1:
            raise ModbusPointError(
                label, record_number, self.device,
                f"asked for one file sub-request, got {len(response.records)}",
            )
        data = bytes(response.records[0].record_data)
        if len(data) % 2:
            raise ModbusPointError(label, record_number, self.device,
                                   f"file record of {len(data)} bytes is not whole registers")
        registers = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        if len(registers) > count:
            raise ModbusPointError(label, record_number, self.device,
                                   f"asked for {count} registers, got {len(registers)}")
        return registers  # fewer than asked: the device ended the file there

    def _execute(self, point: str, address: int, request):
        with self._lock:
            self._respect_inter_frame_delay()
            try:
                response = request()
            except ModbusIOException as exc:
                raise ModbusPointError(
                    point,
                    address,
                    self.device,
                    f"no response within {self.timeout_s:g} s after {self.retries + 1} attempt(s) "
                    f"(wrong device id, wiring or serial settings?): {exc}",
                ) from None
            except ConnectionException as exc:
                raise ModbusPointError(
                    point, address, self.device, f"connection failed: {exc}"
                ) from None
            except ModbusException as exc:
                raise ModbusPointError(point, address, self.device, str(exc)) from None
            finally:
                self._last_frame_end_s = time.monotonic()
        if response.isError():
            code = int(getattr(response, "exception_code", 0) or 0)
            text = MODBUS_EXCEPTION_TEXT.get(code, "unknown exception")
            raise ModbusPointError(
                point,
                address,
                self.device,
                f"Modbus exception 0x{code:02X} ({text})",
                exception_code=code,
            )
        return response

    def _respect_inter_frame_delay(self) -> None:
        # On RTU the bus must stay silent between frames or the device merges them; a bus-
        # timing wait is the transport's own business, not plan timing, so a sleep is right.
        if self.inter_frame_delay_s <= 0.0:
            return
        remaining_s = self._last_frame_end_s + self.inter_frame_delay_s - time.monotonic()
        if remaining_s > 0.0:
            time.sleep(remaining_s)


def _check_span(address: int, count: int, point: str) -> None:
    if address < 0 or address + count - 1 > 0xFFFF:
        raise DutError(
            f"registers {address}..{address + count - 1} for {point!r} lie outside 0..65535"
        )
