"""SCPI instrument server base: the parts every simulated instrument shares.

One TCP server per instrument (LXI "socket" style, port chosen by the OS), `\\n`-terminated
program messages, several commands per message separated by `;`, SCPI short/long header
forms, IEEE 488.2 common commands, an error queue read with `SYSTem:ERRor?`.

An instrument declares its commands in a table (`CommandTable`): each entry is a header
pattern written the way manuals print it (`[SOURce:]VOLTage[:LEVel]`, `CH<x>:SCAle`),
with a setter and/or a query handler. Unknown headers, bad parameters and out-of-range
values push the standard SCPI errors and never close the connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from bench.sim.stream_server import StreamServer

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Errors (SCPI-99 standard error numbers and texts)
# ---------------------------------------------------------------------------------------


class ScpiError(Exception):
    """A command failed; the server pushes (code, message) on the error queue."""

    def __init__(self, code: int, message: str, detail: str = "") -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message
        self.detail = detail

    @property
    def queue_text(self) -> str:
        text = f"{self.message}; {self.detail}" if self.detail else self.message
        return f'{self.code},"{text}"'


def undefined_header(detail: str = "") -> ScpiError:
    return ScpiError(-113, "Undefined header", detail)


def missing_parameter(detail: str = "") -> ScpiError:
    return ScpiError(-109, "Missing parameter", detail)


def parameter_not_allowed(detail: str = "") -> ScpiError:
    return ScpiError(-108, "Parameter not allowed", detail)


def data_type_error(detail: str = "") -> ScpiError:
    return ScpiError(-104, "Data type error", detail)


def data_out_of_range(detail: str = "") -> ScpiError:
    return ScpiError(-222, "Data out of range", detail)


def illegal_parameter(detail: str = "") -> ScpiError:
    return ScpiError(-224, "Illegal parameter value", detail)


def settings_conflict(detail: str = "") -> ScpiError:
    return ScpiError(-221, "Settings conflict", detail)


ERROR_QUEUE_DEPTH = 30  # a typical instrument depth; overflow replaces the newest entry


# ---------------------------------------------------------------------------------------
# Header patterns
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One mnemonic of a header pattern, e.g. `VOLTage` (short VOLT) or `CH<x>`."""

    long_form: str  # as printed in manuals: upper case = short form
    optional: bool = False
    suffix_name: str | None = None  # `CH<x>` → "x": a numeric suffix the handler receives

    @functools.cached_property
    def short_form(self) -> str:
        short = "".join(c for c in self.long_form if c.isupper() or c.isdigit() or c in "_*")
        return (short or self.long_form).upper()

    def match(self, token: str) -> tuple[bool, int | None]:
        """Does `token` (what the client typed) name this node? Returns the numeric suffix."""
        word = token.upper()
        digits = re.search(r"(\d+)$", word)
        suffix = None
        if self.suffix_name is not None:
            if not digits:
                return False, None
            suffix = int(digits.group(1))
            word = word[: digits.start()]
        elif word not in (self.short_form, self.long_form.upper()) and digits:
            # SCPI allows `OUTPut1` where only one instance exists: suffix 1 is the default
            if int(digits.group(1)) != 1:
                return False, None
            word = word[: digits.start()]
        return word in (self.short_form, self.long_form.upper()), suffix


def parse_pattern(pattern: str) -> tuple[Node, ...]:
    """`[SOURce:]VOLTage[:LEVel]` → nodes; `[...]` marks optional mnemonics."""
    nodes: list[Node] = []
    for match in re.finditer(r"\[:?([^\]]+?):?\]|:?([^:\[\]]+)", pattern):
        optional_text, required_text = match.group(1), match.group(2)
        text = optional_text if optional_text is not None else required_text
        suffix_match = re.fullmatch(r"(.+?)<(\w+)>", text)
        if suffix_match:
            nodes.append(Node(suffix_match.group(1), optional_text is not None, suffix_match.group(2)))
        else:
            nodes.append(Node(text, optional_text is not None))
    return tuple(nodes)


def match_header(nodes: Sequence[Node], tokens: Sequence[str]) -> tuple[dict[str, int], list[str]] | None:
    """Match typed tokens against pattern nodes; returns (suffixes, canonical long path)."""
    if not nodes:
        return ({}, []) if not tokens else None
    head, rest = nodes[0], nodes[1:]
    if tokens:
        ok, suffix = head.match(tokens[0])
        if ok:
            found = match_header(rest, tokens[1:])
            if found is not None:
                suffixes, path = found
                if head.suffix_name is not None:
                    suffixes = {head.suffix_name: suffix, **suffixes}  # type: ignore[dict-item]
                word = head.long_form.upper() + (str(suffix) if suffix is not None else "")
                return suffixes, [word, *path]
    if head.optional:
        return match_header(rest, tokens)
    return None


# ---------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------

# SCPI suffix multipliers (IEEE 488.2 §7.7.3); note that `M` is milli, `MA` is mega.
_MULTIPLIERS = {
    "EX": 1e18, "PE": 1e15, "T": 1e12, "G": 1e9, "MA": 1e6, "K": 1e3,
    "M": 1e-3, "U": 1e-6, "N": 1e-9, "P": 1e-12, "F": 1e-15, "A": 1e-18, "": 1.0,
}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z%]*)\s*$")


def split_arguments(text: str) -> list[str]:
    """Split program data at commas that are not inside quoted strings."""
    args: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == ",":
            args.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current or args:
        args.append("".join(current).strip())
    return args


def parse_number(text: str, unit: str | None = None) -> float:
    """`230`, `2.3E2`, `100MS` (100 ms with unit S), `1KHZ`, `5 MV` → float in base units."""
    match = _NUMBER.match(text)
    if not match:
        raise data_type_error(f"not a number: {text!r}")
    value = float(match.group(1))
    suffix = match.group(2).upper()
    if not suffix:
        return value
    if unit:
        unit_upper = unit.upper()
        if unit_upper == "HZ" and suffix == "MHZ":  # SCPI: MHZ means megahertz
            return value * 1e6
        if suffix.endswith(unit_upper):
            suffix = suffix[: -len(unit_upper)]
    if suffix in _MULTIPLIERS:
        return value * _MULTIPLIERS[suffix]
    raise ScpiError(-131, "Invalid suffix", f"{match.group(2)!r}")


@dataclass
class Call:
    """One parsed command as a handler sees it."""

    header: str  # as typed, without the `?`
    path: list[str]  # canonical long-form path, e.g. ["CH1", "SCALE"]
    args: list[str]
    suffixes: dict[str, int]
    is_query: bool

    def suffix(self, name: str, *, low: int, high: int) -> int:
        value = self.suffixes[name]
        if not low <= value <= high:
            raise undefined_header(f"{self.header}: suffix {value} outside {low}..{high}")
        return value

    def expect_count(self, low: int, high: int) -> None:
        if len(self.args) < low:
            raise missing_parameter(self.header)
        if len(self.args) > high:
            raise parameter_not_allowed(self.header)

    def text(self, index: int = 0) -> str:
        if index >= len(self.args) or self.args[index] == "":
            raise missing_parameter(self.header)
        return self.args[index]

    def number(self, index: int = 0, *, unit: str | None = None, low: float | None = None,
               high: float | None = None, default: float | None = None) -> float:
        """A numeric parameter; MIN/MAX/DEF resolve to the given limits; range checked."""
        text = self.text(index)
        keyword = text.upper()
        if keyword in ("MIN", "MINIMUM") and low is not None:
            return low
        if keyword in ("MAX", "MAXIMUM") and high is not None:
            return high
        if keyword in ("DEF", "DEFAULT") and default is not None:
            return default
        value = parse_number(text, unit)
        if not math.isfinite(value):
            raise data_out_of_range(f"{self.header} {text}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise data_out_of_range(f"{self.header} {text} (allowed {low:g} to {high:g})"
                                    if low is not None and high is not None else f"{self.header} {text}")
        return value

    def integer(self, index: int = 0, *, low: int | None = None, high: int | None = None) -> int:
        value = self.number(index, low=low, high=high)
        if value != round(value):
            raise data_type_error(f"{self.header}: integer expected")
        return int(round(value))

    def numbers(self, *, unit: str | None = None, low: float | None = None,
                high: float | None = None) -> list[float]:
        if not self.args or self.args == [""]:
            raise missing_parameter(self.header)
        return [self.number(i, unit=unit, low=low, high=high) for i in range(len(self.args))]

    def boolean(self, index: int = 0) -> bool:
        word = self.text(index).upper()
        if word in ("ON", "1"):
            return True
        if word in ("OFF", "0"):
            return False
        raise illegal_parameter(f"{self.header} {self.args[index]}")

    def choice(self, options: Iterable[str], index: int = 0) -> str:
        """Match a character parameter against options written as `RISe`, `SRIbinary`…"""
        typed = self.text(index).upper()
        for option in options:
            if typed in (option.upper(), Node(option).short_form):
                return option.upper()
        raise illegal_parameter(f"{self.header} {self.args[index]}")


Handler = Callable[[Call], "str | bytes | bytearray | memoryview | None"]


@dataclass(frozen=True)
class Command:
    pattern: str
    nodes: tuple[Node, ...]
    setter: Handler | None
    query: Handler | None


#: distinct typed headers remembered per table (a client types only a few dozen)
LOOKUP_CACHE_SIZE = 4096


class CommandTable:
    """The declarative list of an instrument's commands.

    Lookups are remembered by the header as typed: matching walks every pattern (some 70 on
    a scope, ~0.2 ms per query), which made each twin query cost more than a real
    instrument's answer, and clients send the same few headers over and over.
    """

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self._found: dict[tuple[tuple[str, ...], bool], tuple[Command, dict[str, int], list[str]] | None] = {}

    def add(self, pattern: str, *, set: Handler | None = None, query: Handler | None = None) -> None:  # noqa: A002
        self.commands.append(Command(pattern, parse_pattern(pattern), set, query))
        self._found.clear()

    def lookup(self, tokens: Sequence[str], is_query: bool) -> tuple[Command, dict[str, int], list[str]] | None:
        key = (tuple(token.upper() for token in tokens), is_query)
        if key in self._found:
            found = self._found[key]
        else:
            found = self._search(tokens, is_query)
            if len(self._found) >= LOOKUP_CACHE_SIZE:
                self._found.clear()
            self._found[key] = found
        if found is None:
            return None
        command, suffixes, path = found
        return command, dict(suffixes), list(path)   # copies: a handler may keep or change them

    def _search(self, tokens: Sequence[str], is_query: bool) -> tuple[Command, dict[str, int], list[str]] | None:
        for command in self.commands:
            if (command.query if is_query else command.setter) is None:
                continue
            found = match_header(command.nodes, tokens)
            if found is not None:
                return command, found[0], found[1]
        return None


def definite_length_block(payload: bytes) -> bytes:
    """IEEE 488.2 definite-length arbitrary block: `#<n><len><bytes>`."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


def format_nr3(value: float) -> str:
    return f"{value:.6E}"


# ---------------------------------------------------------------------------------------
# The instrument base and its TCP server
# ---------------------------------------------------------------------------------------

# *ESR bits (IEEE 488.2 standard event status register)
ESR_OPC, ESR_QUERY_ERROR, ESR_DEVICE_ERROR, ESR_EXECUTION_ERROR, ESR_COMMAND_ERROR = 1, 4, 8, 16, 32


@dataclass
class ScpiInstrument:
    """Common state and IEEE 488.2 behaviour; subclasses add their command table."""

    manufacturer: str = "bessbench"
    model: str = "SCPI-SIM"
    serial: str = "0001"
    firmware: str = "1.0"
    errors: deque[ScpiError] = field(default_factory=lambda: deque())
    event_status: int = 0
    event_status_enable: int = 0
    service_request_enable: int = 0

    def __post_init__(self) -> None:
        self.table = CommandTable()
        self._add_common_commands()
        self.build_commands(self.table)

    # --- to override -----------------------------------------------------------------
    def build_commands(self, table: CommandTable) -> None:
        """Declare the instrument's commands."""

    def reset(self) -> None:
        """`*RST`: the instrument's reset state."""

    def bus_trigger(self) -> None:
        """`*TRG`: the group execute trigger."""
        raise settings_conflict("no bus trigger function")

    def format_response(self, call: Call, response: str) -> str:
        return response

    # --- error queue -------------------------------------------------------------------
    def push_error(self, error: ScpiError) -> None:
        if len(self.errors) >= ERROR_QUEUE_DEPTH:
            self.errors[-1] = ScpiError(-350, "Queue overflow")
        else:
            self.errors.append(error)
        if -199 <= error.code <= -100:
            self.event_status |= ESR_COMMAND_ERROR
        elif -299 <= error.code <= -200:
            self.event_status |= ESR_EXECUTION_ERROR
        elif -399 <= error.code <= -300 or error.code > 0:
            self.event_status |= ESR_DEVICE_ERROR
        elif -499 <= error.code <= -400:
            self.event_status |= ESR_QUERY_ERROR
        log.debug("%s error %s", self.model, error.queue_text)

    def format_error(self, error: ScpiError) -> str:
        """One `SYSTem:ERRor?` answer; families differ in style (details, a `+` sign)."""
        return error.queue_text

    no_error_text = '0,"No error"'

    def _next_error(self, call: Call) -> str:
        return self.format_error(self.errors.popleft()) if self.errors else self.no_error_text

    # --- IEEE 488.2 common commands ----------------------------------------------------
    def _add_common_commands(self) -> None:
        t = self.table
        t.add("*IDN", query=lambda c: f"{self.manufacturer},{self.model},{self.serial},{self.firmware}")
        t.add("*RST", set=lambda c: self.reset())
        t.add("*CLS", set=lambda c: self._clear_status())
        t.add("*OPC", set=self._set_opc, query=lambda c: "1")
        # *OPC? answers "1" at once: simulated settings take effect immediately, and a
        # blocking answer would deadlock a lockstep bench whose time only moves on request
        t.add("*WAI", set=lambda c: None)
        t.add("*ESR", query=self._read_esr)
        t.add("*ESE", set=lambda c: setattr(self, "event_status_enable", c.integer(low=0, high=255)),
              query=lambda c: str(self.event_status_enable))
        t.add("*SRE", set=lambda c: setattr(self, "service_request_enable", c.integer(low=0, high=255)),
              query=lambda c: str(self.service_request_enable))
        t.add("*STB", query=lambda c: str(self._status_byte()))
        t.add("*TST", query=lambda c: "0")
        t.add("*TRG", set=lambda c: self.bus_trigger())
        t.add("SYSTem:ERRor[:NEXT]", query=self._next_error)
        t.add("SYSTem:ERRor:COUNt", query=lambda c: str(len(self.errors)))
        t.add("SYSTem:VERSion", query=lambda c: "1999.0")

    def _clear_status(self) -> None:
        self.errors.clear()
        self.event_status = 0

    def _set_opc(self, call: Call) -> None:
        self.event_status |= ESR_OPC

    def _read_esr(self, call: Call) -> str:
        value, self.event_status = self.event_status, 0
        return str(value)

    def _status_byte(self) -> int:
        error_available = 4 if self.errors else 0
        event_summary = 32 if self.event_status & self.event_status_enable else 0
        return error_available | event_summary

    # --- program message execution -----------------------------------------------------
    def execute(self, message: str) -> bytes | None:
        """Run one program message (one line); return the response bytes or None."""
        chunks = self.execute_chunks(message)
        return b"".join(chunks) if chunks else None

    def execute_chunks(self, message: str) -> list[bytes]:
        """Run one program message; the response as chunks to write in order (empty: none).

        A large binary block stays one chunk of its own, never copied into a joined
        message: a 10 M-point record is 20 MB, and each copy costs time the client sees.
        """
        responses: list[bytes] = []
        path_prefix: list[str] = []
        for unit in _split_message_units(message):
            unit = unit.strip()
            if not unit:
                continue
            header, _, arg_text = unit.partition(" ")
            header = header.strip()
            is_query = header.endswith("?")
            header_text = header[:-1] if is_query else header
            try:
                if not header_text or not re.fullmatch(r":?\*?[A-Za-z0-9_:]+", header_text):
                    raise undefined_header(unit)
                absolute = header_text.startswith(":") or header_text.startswith("*")
                tokens = [t for t in header_text.lstrip(":").split(":")]
                if any(t == "" for t in tokens):
                    raise undefined_header(unit)
                found = None
                if not absolute and path_prefix:
                    # SCPI: after `;`, a header without a leading colon is relative to the
                    # previous command's path (e.g. `LIST:VOLT 1,2;DWEL 0.1,0.2`)
                    relative_tokens = [*path_prefix, *tokens]
                    found = self.table.lookup(relative_tokens, is_query)
                    if found is not None:
                        tokens = relative_tokens
                if found is None:
                    found = self.table.lookup(tokens, is_query)
                if found is None:
                    raise undefined_header(header)
                command, suffixes, path = found
                args = split_arguments(arg_text) if arg_text.strip() else []
                call = Call(header_text, path, args, suffixes, is_query)
                if is_query:
                    result = command.query(call)  # type: ignore[misc]
                    if isinstance(result, (bytes, bytearray, memoryview)):
                        responses.append(result)
                    elif result is not None:
                        responses.append(self.format_response(call, result).encode())
                else:
                    command.setter(call)  # type: ignore[misc]
                if not header_text.startswith("*"):
                    path_prefix = tokens[:-1]
            except ScpiError as error:
                self.push_error(error)
            except Exception as error:  # a simulator bug must not kill the connection
                log.exception("%s: command %r failed", self.model, unit)
                self.push_error(ScpiError(-300, "Device-specific error", type(error).__name__))
        if not responses:
            return []
        chunks: list[bytes] = []
        for index, response in enumerate(responses):
            if index:
                chunks.append(b";")  # response message units are separated by `;`
            chunks.append(response)
        chunks.append(b"\n")
        if sum(len(c) for c in chunks) < 65536:
            return [b"".join(chunks)]  # small answers go out as one segment
        return chunks


def _split_message_units(message: str) -> list[str]:
    """Split a program message at `;` outside quoted strings."""
    units: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in message:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == ";":
            units.append("".join(current))
            current = []
        else:
            current.append(char)
    units.append("".join(current))
    return units


def _set_tcp_option(sock: socket.socket | None, name: str) -> None:
    option = getattr(socket, name, None)  # TCP_QUICKACK exists on Linux only
    if sock is not None and option is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass


#: A large response goes to the transport in slices of this size. asyncio's socket transport
#: (Python 3.11) copies whatever the kernel does not take at once into its own buffer: handed
#: a whole 20 MB block, it sends the first ~4 MB (the socket's send buffer), then copies the
#: remaining 16 MB twice (a slice, then its buffer) before the next byte goes out — 15–20 ms
#: of silence in the middle of every 10 M-point CURVe? (seen with strace), which a real
#: instrument's network stack does not have. In slices, what is left over is at most one
#: slice, and the bytes keep flowing at the rate the client takes them.
STREAM_SLICE_BYTES = 1 << 20


async def send_response(writer: asyncio.StreamWriter, chunks: Sequence[bytes | bytearray | memoryview]) -> None:
    """Write a response (``execute_chunks`` output) and wait until the transport has taken it."""
    for chunk in chunks:
        if len(chunk) <= STREAM_SLICE_BYTES:
            writer.write(chunk)
            continue
        view = memoryview(chunk)   # slices of a view are not copies
        for start in range(0, len(view), STREAM_SLICE_BYTES):
            writer.write(view[start:start + STREAM_SLICE_BYTES])
            await writer.drain()
    await writer.drain()


class ScpiServer(StreamServer):
    """Serves one instrument on a TCP socket (raw SCPI, like port 5025 of an LXI device)."""

    STREAM_LIMIT = 16 * 1024 * 1024    # list programming can send long messages

    def __init__(self, instrument: ScpiInstrument) -> None:
        super().__init__()
        self.instrument = instrument

    @property
    def resource(self) -> str:
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track(writer)
        sock = writer.get_extra_info("socket")
        _set_tcp_option(sock, "TCP_NODELAY")
        try:
            while True:
                # ACK at once: a client without TCP_NODELAY (pyvisa-py's default) holds a
                # second small write back until its first is ACKed (Nagle); a delayed ACK
                # would hold a command ~40 ms, long enough for a lockstep advance to overtake it
                _set_tcp_option(sock, "TCP_QUICKACK")
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    self.instrument.push_error(ScpiError(-223, "Too much data"))
                    continue
                if not line:
                    break
                message = line.decode("latin-1").rstrip("\r\n")
                chunks = self.instrument.execute_chunks(message)
                if chunks:
                    await send_response(writer, chunks)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._untrack(writer)
            writer.close()
