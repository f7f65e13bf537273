"""The shared SCPI layer under every bessbench instrument driver.

A driver is a subclass of :class:`ScpiInstrument` that declares its settings once with
:func:`control` / :func:`measurement` (the SCPI header, the range, the units) and writes its
role methods (``output_on``, ``read_waveform`` …) in terms of them. This module owns what
every driver needs and must get right the same way:

* explicit ``\\n`` read/write terminations (a raw ``::SOCKET`` resource has none by default,
  and every query would time out);
* errors that name the bench role, the VISA resource and the command that failed;
* a timeout clears the session, because pyvisa keeps a late reply in the socket and the
  *next* query would read it as its own answer;
* IEEE 488.2 binary blocks read by length in our own code: pyvisa's ``read_raw`` stops at the
  first 0x0A inside binary data, and a block that is shorter or longer than announced must
  be an error, never a silently shifted waveform;
* limits (the instrument's range and the bench's safety limits) checked *before* a command
  is sent.

Throughput of large blocks (``bessbench io-benchmark``, ``docs/io_benchmark.md``: a 10 M-point,
20 MB ``CURVe?`` record from the virtual bench's MSO58 on loopback). Plain pyvisa-py
``query_binary_values`` reaches a few per cent of a plain ``recv_into`` loop:
``TCPIPSocketSession.read`` does, per chunk, a ``select()``, a ``recv(max_recv_size)`` into a
fresh ``bytes``, an ``extend`` into its pending buffer and a slice + ``bytes()`` copy out of it
(three to four copies of every byte), 4 KiB per chunk by default. So the body of a
definite-length block is received by :class:`_BlockBody` straight from the session's socket
with ``recv_into`` (whatever pyvisa-py had already buffered is taken first), either into one
preallocated buffer (:meth:`read_block`) or piece by piece into one small reused buffer whose
pieces a caller processes while the rest is still arriving (:meth:`read_block_chunks`; the
oscilloscopes convert codes to volts that way). Other backends (NI-VISA, VXI-11, USBTMC) keep
the by-length read through pyvisa, in the same pieces.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar, Iterator, Mapping, NoReturn, Sequence

from pyvisa import constants as visa_constants
from pyvisa import errors as visa_errors

from instruments.errors import InstrumentError, LimitError

log = logging.getLogger(__name__)

#: Safety limits a bench file may give (``[instruments.<role>.limits]``); drivers check the
#: ones that concern them and ignore the others.
SAFETY_LIMIT_KEYS: dict[str, str] = {
    "max_voltage_ln_v": "largest line-to-neutral AC voltage the grid simulator may apply",
    "max_dc_voltage_v": "largest DC voltage the DC source may apply",
    "max_current_a": "largest current (limit) any source may be programmed to",
    "max_dc_current_a": "largest current (limit) of the DC source; overrides max_current_a there",
    "min_frequency_hz": "lowest frequency the grid simulator may apply",
    "max_frequency_hz": "highest frequency the grid simulator may apply",
    "max_ac_load_power_w": "largest power the AC load may be programmed to absorb",
    "max_ac_load_current_a": "largest rms current of the AC load; overrides max_current_a there",
}

_CHUNK_BYTES = 1 << 20          # binary reads through pyvisa ask for 1 MiB at a time
_SOCKET_CHUNK_BYTES = 16 << 20  # one recv_into may fill up to 16 MiB (whatever has arrived)
_DEFAULT_MAX_BLOCK_BYTES = 1 << 30


@dataclass(frozen=True)
class BlockTransfer:
    """How the last binary block arrived (diagnostics for the io benchmark and slow links).

    ``first_byte_wait_s`` runs from the start of :meth:`ScpiInstrument.read_block` to the
    block header (the instrument preparing its answer), ``receive_s`` from the header to the
    last byte. ``path`` is ``"socket"`` when the body came straight from the socket,
    ``"visa"`` when it went through the VISA library's reads.
    """

    command: str
    n_bytes: int
    first_byte_wait_s: float
    receive_s: float
    path: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Identity:
    """What ``*IDN?`` says: ``<manufacturer>,<model>,<serial>,<firmware>``."""

    manufacturer: str
    model: str
    serial: str
    firmware: str

    def __str__(self) -> str:
        return f"{self.manufacturer} {self.model} (serial {self.serial}, firmware {self.firmware})"


def format_number(value: float) -> str:
    """A number as SCPI <NRf>: enough digits to round-trip a setpoint, no float noise."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


# --------------------------------------------------------------------------------------
# declarative settings
# --------------------------------------------------------------------------------------

RangeSpec = tuple[float, float] | str | Callable[[Any], tuple[float, float]]


class _ScpiSetting:
    """Descriptor behind :func:`control` and :func:`measurement`.

    Commands may contain ``{field}`` placeholders (``CH{ch}:SCAle``) filled from the owner's
    ``command_fields()``; the value goes where ``{value}`` stands in ``set_cmd``.
    """

    def __init__(self, get_cmd: str | None, set_cmd: str | None, doc: str, *,
                 valid_range: RangeSpec | None = None,
                 choices: Mapping[Any, str] | None = None,
                 units: str = "",
                 safety_limit: str | tuple[str, ...] | None = None,
                 cast: Callable[[float], Any] = float) -> None:
        self.get_cmd = get_cmd
        self.set_cmd = set_cmd
        self.valid_range = valid_range
        self.choices = dict(choices) if choices is not None else None
        self.units = units
        self.safety_limit = safety_limit
        self.cast = cast
        self.name = "setting"
        self.__doc__ = self._document(doc)

    def _document(self, doc: str) -> str:
        parts = [doc.strip()]
        if self.get_cmd or self.set_cmd:
            parts.append("SCPI: " + " / ".join(c for c in (self.set_cmd, self.get_cmd) if c))
        if isinstance(self.valid_range, tuple):
            parts.append(f"Range: {self.valid_range[0]:g} … {self.valid_range[1]:g} {self.units}".rstrip())
        if self.choices:
            parts.append("Values: " + ", ".join(repr(k) for k in self.choices))
        if self.safety_limit:
            keys = (self.safety_limit,) if isinstance(self.safety_limit, str) else self.safety_limit
            parts.append("Also bounded by the bench safety limit " + " or ".join(f"'{k}'" for k in keys)
                         + " (the first one the bench file gives).")
        return "\n\n".join(parts)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    # reading ---------------------------------------------------------------------------
    def __get__(self, owner_instance: Any, owner_type: type | None = None) -> Any:
        if owner_instance is None:
            return self
        if self.get_cmd is None:
            raise AttributeError(f"{self.name} is write-only")
        instrument, fields = owner_instance.scpi_target()
        command = self.get_cmd.format(**fields)
        if self.choices is None:
            return self.cast(instrument.query_float(command))
        reply = instrument.query(command)
        return self._decode_choice(instrument, command, reply)

    def _decode_choice(self, instrument: "ScpiInstrument", command: str, reply: str) -> Any:
        assert self.choices is not None
        wanted = reply.strip().strip('"').upper()
        for key, word in self.choices.items():
            if scpi_word_matches(word, wanted):
                return key
            # instruments answer ON/OFF settings as 1/0
            if word.upper() in ("ON", "OFF") and wanted in ("1", "0"):
                if (word.upper() == "ON") == (wanted == "1"):
                    return key
        raise instrument.error(f"{command!r} answered {reply!r}, which is none of "
                               f"{', '.join(self.choices.values())}")

    # writing ---------------------------------------------------------------------------
    def __set__(self, owner_instance: Any, value: Any) -> None:
        if self.set_cmd is None:
            raise AttributeError(f"{self.name} is read-only (a measurement)")
        instrument, fields = owner_instance.scpi_target()
        if self.choices is not None:
            if value not in self.choices:
                raise instrument.limit_error(
                    f"{self.name} = {value!r} is not one of {list(self.choices)}",
                    quantity=self.name)
            text = self.choices[value]
        else:
            number = float(value)
            valid_range = self._resolve_range(owner_instance)
            instrument.check_value(self.name, number, valid_range=valid_range,
                                   units=self.units, safety_limit=self.safety_limit)
            text = format_number(self.cast(number))
        instrument.write(self.set_cmd.format(value=text, **fields))

    def _resolve_range(self, owner_instance: Any) -> tuple[float, float] | None:
        spec = self.valid_range
        if spec is None or isinstance(spec, tuple):
            return spec
        if isinstance(spec, str):
            return getattr(owner_instance, spec)
        return spec(owner_instance)


def control(get_cmd: str | None, set_cmd: str, doc: str, *,
            valid_range: RangeSpec | None = None,
            choices: Mapping[Any, str] | None = None,
            units: str = "",
            safety_limit: str | tuple[str, ...] | None = None,
            cast: Callable[[float], Any] = float) -> Any:
    """Declare a setting the way the programming manual lists it.

    ``valid_range`` is the instrument's own range: a ``(low, high)`` tuple, the name of an
    attribute holding one (when it depends on the model or an option), or a callable.
    ``choices`` maps Python values to SCPI words (``{True: "ON", False: "OFF"}``).
    ``safety_limit`` names a bench safety limit (``"max_dc_voltage_v"``) bounding the magnitude,
    or several, most specific first (the first one the bench gives applies).
    Out-of-range values raise :class:`LimitError` before anything is sent.
    """
    return _ScpiSetting(get_cmd, set_cmd, doc, valid_range=valid_range, choices=choices,
                        units=units, safety_limit=safety_limit, cast=cast)


def measurement(get_cmd: str, doc: str, *, units: str = "",
                cast: Callable[[float], Any] = float) -> Any:
    """Declare a read-only numeric query (``MEAS:VOLT?``)."""
    return _ScpiSetting(get_cmd, None, doc, units=units, cast=cast)


def scpi_word_matches(word: str, reply: str) -> bool:
    """Does ``reply`` name the SCPI word ``word`` (``RISe``) in its short or long form?

    The short form is the upper-case part of the mnemonic, so ``RISe`` matches ``RIS`` and
    ``RISE``; comparison is case-insensitive like the instruments'.
    """
    short = "".join(ch for ch in word if ch.isupper() or ch.isdigit()) or word
    reply_u = reply.upper()
    return reply_u in (word.upper(), short.upper())


# --------------------------------------------------------------------------------------
# the instrument base
# --------------------------------------------------------------------------------------

_ERROR_REPLY = re.compile(r'^\s*([+-]?\d+)\s*(?:,\s*"?(.*?)"?)?\s*$', re.DOTALL)


class ScpiInstrument:
    """A SCPI instrument reached through an open pyvisa resource.

    ``resource`` is the open pyvisa resource, ``role`` the bench role (``"dc_source"``),
    ``resource_name`` the VISA address it was opened with (for messages). ``limits`` are the
    bench file's safety limits for this instrument, ``options`` driver-specific settings.
    """

    #: the bench role this driver serves ("grid_simulator", "dc_source", "oscilloscope")
    ROLE: ClassVar[str] = ""
    #: ``fnmatch`` patterns of the ``*IDN?`` models this driver speaks to
    MODEL_PATTERNS: ClassVar[tuple[str, ...]] = ()
    #: manufacturers as ``*IDN?`` names them (case-insensitive substrings)
    MANUFACTURERS: ClassVar[tuple[str, ...]] = ()
    #: the query that pops one entry of the instrument's error queue
    ERROR_QUERY: ClassVar[str] = "SYST:ERR?"

    def __init__(self, resource: Any, role: str, resource_name: str | None = None, *,
                 limits: Mapping[str, float] | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self._resource = resource
        self.role = role
        self.resource_name = resource_name or str(getattr(resource, "resource_name", "?"))
        self.limits: dict[str, float] = {k: float(v) for k, v in dict(limits or {}).items()}
        self.options: dict[str, Any] = dict(options or {})
        self.identity: Identity | None = None
        self.last_block_transfer: BlockTransfer | None = None
        self._answered = False       # has the instrument ever answered? (for error wording)
        self._closed = False
        # Explicit terminations: a TCPIP::…::SOCKET resource has none by default.
        resource.read_termination = "\n"
        resource.write_termination = "\n"
        self._enlarge_backend_receive_size()

    # -- identification / hooks ---------------------------------------------------------
    def scpi_target(self) -> tuple["ScpiInstrument", dict[str, Any]]:
        """Where the declarative settings send their commands (channels override this)."""
        return self, {}

    def identify(self) -> Identity:
        """Ask ``*IDN?`` and remember the answer."""
        reply = self.query("*IDN?")
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise self.error(f"*IDN? answered {reply!r}, which is not an identification string")
        fields += [""] * (4 - len(fields))
        # firmware strings may themselves contain commas; keep them whole
        self.identity = Identity(fields[0], fields[1], fields[2], ",".join(fields[3:]).strip(","))
        return self.identity

    def initialize(self) -> None:
        """Bring a freshly opened instrument to a known protocol state.

        ``*CLS`` empties the error queue so an old error is not blamed on our first
        configuration. Drivers extend this (e.g. the scope turns response headers off).
        """
        self.write("*CLS")

    # -- basic I/O ----------------------------------------------------------------------
    @property
    def timeout_s(self) -> float:
        timeout_ms = self._resource.timeout
        return float("inf") if timeout_ms is None else timeout_ms / 1000.0

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self._resource.timeout = value * 1000.0

    def write(self, command: str) -> None:
        self._require_open()
        log.debug("%s <- %s", self.role, command)
        try:
            self._resource.write(command)
        except (visa_errors.VisaIOError, visa_errors.InvalidSession, OSError) as exc:
            raise self._io_error(command, exc) from exc

    def query(self, command: str) -> str:
        """Send a query and return its reply without the terminator."""
        self._require_open()
        try:
            reply = self._resource.query(command)
        except (visa_errors.VisaIOError, visa_errors.InvalidSession, OSError) as exc:
            raise self._io_error(command, exc) from exc
        except UnicodeDecodeError as exc:
            self._clear_quietly()
            raise self.error(f"{command!r} answered bytes that are not text ({exc})") from exc
        self._answered = True
        log.debug("%s -> %s", self.role, reply.rstrip())
        return reply.strip()

    def query_float(self, command: str, *, allow_nonfinite: bool = False) -> float:
        """A query whose reply must be one number; anything else is an :class:`InstrumentError`."""
        reply = self.query(command)
        try:
            value = float(reply)
        except ValueError:
            raise self.error(f"{command!r} answered {reply!r}, which is not a number") from None
        if not allow_nonfinite and not math.isfinite(value):
            raise self.error(f"{command!r} answered {reply!r}, which is not a finite number")
        return value

    def query_floats(self, commands: Sequence[str], *, allow_nonfinite: bool = False) -> list[float]:
        """Several numeric queries in one program message, answered in one round trip.

        IEEE 488.2 concatenation: ``A?;:B?;:C?`` (every header after the first made absolute
        with its leading colon) is answered with one response message, the values in order
        separated by ``;``. On a busy controller each round trip costs far more than the
        instrument's answer (io benchmark: seven preamble queries 3.5 ms, one compound
        0.3 ms). Each value must be a number, as in :meth:`query_float`; the error names the
        query whose answer is wrong.
        """
        if not commands:
            return []
        message = ";".join(c if i == 0 or c.startswith((":", "*")) else ":" + c
                           for i, c in enumerate(commands))
        reply = self.query(message)
        fields = reply.split(";")
        if len(fields) != len(commands):
            raise self.error(f"{message!r} answered {reply!r}: {len(fields)} value(s) "
                             f"for {len(commands)} queries")
        values: list[float] = []
        for command, field in zip(commands, fields):
            text = field.strip()
            try:
                value = float(text)
            except ValueError:
                raise self.error(f"{command!r} answered {text!r}, which is not a number "
                                 f"(reply {reply!r})") from None
            if not allow_nonfinite and not math.isfinite(value):
                raise self.error(f"{command!r} answered {text!r}, which is not a finite number")
            values.append(value)
        return values

    def query_int(self, command: str) -> int:
        value = self.query_float(command)
        if not value.is_integer():
            raise self.error(f"{command!r} answered {value!r}, which is not an integer")
        return int(value)

    def opc(self) -> None:
        """Wait until all pending operations are complete (``*OPC?`` answers 1)."""
        reply = self.query("*OPC?")
        if reply.lstrip("+") != "1":
            raise self.error(f"'*OPC?' answered {reply!r} instead of 1")

    def clear(self) -> None:
        """Device clear: drop whatever is still in the input buffer / socket."""
        try:
            self._resource.clear()
        except (visa_errors.Error, OSError) as exc:
            log.warning("%s at %s: clear() failed: %s", self.role, self.resource_name, exc)

    def check_errors(self, context: str = "") -> None:
        """Drain the instrument's error queue; raise with the instrument's own text(s)."""
        messages: list[str] = []
        for _ in range(100):   # a queue that never empties is itself a fault
            reply = self.query(self.ERROR_QUERY)
            match = _ERROR_REPLY.match(reply)
            if not match:
                raise self.error(f"{self.ERROR_QUERY!r} answered {reply!r}, "
                                 "which is not '<code>,\"<message>\"'")
            code = int(match.group(1))
            if code == 0:
                break
            messages.append(f'{code},"{match.group(2) or ""}"')
        else:
            messages.append(f"(error queue still not empty after 100 reads of {self.ERROR_QUERY})")
        if messages:
            where = f" after {context}" if context else ""
            raise self.error(f"instrument reported error(s){where}: " + "; ".join(messages))

    # -- IEEE 488.2 binary blocks -------------------------------------------------------
    def query_block(self, command: str, *, expected_bytes: int | None = None,
                    max_bytes: int = _DEFAULT_MAX_BLOCK_BYTES, expectation: str = "") -> bytearray:
        """Send ``command`` and read the IEEE 488.2 block it answers."""
        self.write(command)
        return self.read_block(command, expected_bytes=expected_bytes, max_bytes=max_bytes,
                               expectation=expectation)

    def read_block(self, command: str = "(binary block)", *, expected_bytes: int | None = None,
                   max_bytes: int = _DEFAULT_MAX_BLOCK_BYTES,
                   expect_terminator: bool = True, expectation: str = "") -> bytearray:
        """Read one block: ``#<n><length><data>\\n`` (definite) or ``#0<data>\\n`` (indefinite).

        The data is read by length, never by terminator, because binary data contains 0x0A.
        A block shorter than announced (the instrument stops sending), longer than announced
        (no terminator right after the announced bytes), larger than ``max_bytes`` or
        different from ``expected_bytes`` is an :class:`InstrumentError`; the session is
        cleared so the next command starts clean.

        Returns the data as a ``bytearray`` (bytes-like; ``np.frombuffer`` takes it without a
        copy). A driver may send the query itself, do other work while the instrument
        prepares the answer, and then call this. To process a large block while it arrives
        instead of holding all of it, use :meth:`read_block_chunks`.
        """
        started = time.perf_counter()
        with self._binary_reads():
            # with the length known, the buffer is allocated (and its pages touched) while
            # the instrument is still preparing the block
            tail = 1 if expect_terminator else 0
            buffer = (bytearray(expected_bytes + tail)
                      if expected_bytes is not None and 0 <= expected_bytes <= max_bytes else None)
            length, header_at = self._read_block_header(command, expected_bytes=expected_bytes,
                                                        max_bytes=max_bytes, expectation=expectation)
            if length is None:
                data = self._read_indefinite_block(command, max_bytes)
                self._check_indefinite_length(command, len(data), expected_bytes, expectation)
                self._record_transfer(command, len(data), started, header_at, "visa")
                return data
            if buffer is None:
                buffer = bytearray(length + tail)
            # data and terminator in one read: they normally arrive in the same segments
            with memoryview(buffer) as view, self._block_body(command, length) as body:
                body.fill(view)
            if expect_terminator:
                self._check_terminator(command, length, buffer[length:])
            del buffer[length:]                      # O(1): shortens the end in place
            self._record_transfer(command, length, started, header_at, body.path)
            return buffer

    def read_block_chunks(self, command: str, sink: Callable[[int, memoryview], None], *,
                          chunk_bytes: int, expected_bytes: int | None = None,
                          max_bytes: int = _DEFAULT_MAX_BLOCK_BYTES,
                          expect_terminator: bool = True, expectation: str = "") -> int:
        """Read one block like :meth:`read_block`, handing it to ``sink`` piece by piece.

        ``sink(offset, data)`` is called with consecutive pieces of the block's data, in
        order: ``offset`` is where ``data`` starts in the block, every piece but the last is
        exactly ``chunk_bytes`` long (so a multiple of the sample size never splits a
        sample). ``data`` is valid only during the call: the same small buffer receives the
        next piece. Returns the block length; the same errors as :meth:`read_block`, and the
        last piece is handed over only after the terminator was checked. If ``sink`` raises,
        the session is cleared (the rest of the block is dropped) and the error propagates.

        Why: a large record is then processed while the rest is still on the wire (the
        instrument keeps sending into the socket's receive buffer meanwhile), each piece
        while it is still in the CPU cache, and no buffer of the whole block is allocated.
        """
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
        started = time.perf_counter()
        with self._binary_reads():
            length, header_at = self._read_block_header(command, expected_bytes=expected_bytes,
                                                        max_bytes=max_bytes, expectation=expectation)
            if length is None:
                data = self._read_indefinite_block(command, max_bytes)
                self._check_indefinite_length(command, len(data), expected_bytes, expectation)
                with memoryview(data) as whole:
                    for offset in range(0, len(data), chunk_bytes):
                        sink(offset, whole[offset:offset + chunk_bytes])
                self._record_transfer(command, len(data), started, header_at, "visa")
                return len(data)
            tail = 1 if expect_terminator else 0
            buffer = bytearray(min(chunk_bytes, length) + tail)
            with memoryview(buffer) as view, self._block_body(command, length) as body:
                offset = 0
                while True:
                    size = min(chunk_bytes, length - offset)
                    last = offset + size >= length
                    body.fill(view[:size + (tail if last else 0)])
                    if last and expect_terminator:
                        self._check_terminator(command, length, view[size:size + 1])
                    try:
                        sink(offset, view[:size])
                    except BaseException:
                        if not last:
                            self.clear()   # the rest of the block must not be read as the next reply
                        raise
                    offset += size
                    if last:
                        break
            self._record_transfer(command, length, started, header_at, body.path)
            return length

    def _read_block_header(self, command: str, *, expected_bytes: int | None, max_bytes: int,
                           expectation: str) -> tuple[int | None, float]:
        """``#<n><length>``: the announced length (``None`` for ``#0``) and when it arrived."""
        lead = self._read_exact(2, command, "block header")
        header_at = time.perf_counter()
        if lead[:1] != b"#" or not lead[1:2].isdigit():
            rest = self._read_rest_of_line()
            self.clear()
            raise self.error(f"{command!r} answered {bytes(lead + rest)[:60]!r}, "
                             "which is not an IEEE 488.2 binary block (no '#<n>' header)")
        digits = int(lead[1:2])
        if digits == 0:
            return None, header_at
        length_text = bytes(self._read_exact(digits, command, "block header"))
        if not length_text.isdigit():
            self.clear()
            raise self.error(f"{command!r}: block header '#{digits}"
                             f"{length_text.decode(errors='replace')}' has a non-numeric length")
        length = int(length_text)
        if length > max_bytes:
            self.clear()
            raise self.error(f"{command!r}: block announces {length} bytes, more than the "
                             f"{max_bytes} this read accepts (oversized block)")
        if expected_bytes is not None and length != expected_bytes:
            self.clear()
            raise self.error(f"{command!r}: block announces {length} bytes but "
                             f"{expected_bytes} were expected {expectation}".rstrip())
        return length, header_at

    def _check_indefinite_length(self, command: str, length: int, expected_bytes: int | None,
                                 expectation: str) -> None:
        # a #0 block says its length only by ending: a short one must not reach a caller that
        # fills a preallocated (possibly reused) record, or its tail would be the previous one
        if expected_bytes is not None and length != expected_bytes:
            raise self.error(f"{command!r}: indefinite-length (#0) block has {length} bytes but "
                             f"{expected_bytes} were expected {expectation}".rstrip())

    def _check_terminator(self, command: str, length: int, after: bytes | bytearray | memoryview) -> None:
        if after != b"\n":
            self.clear()
            raise self.error(f"{command!r}: block longer than announced — the byte after "
                             f"the {length} announced data bytes is {bytes(after)!r}, "
                             "not the newline terminator")

    def _record_transfer(self, command: str, n_bytes: int, started: float, header_at: float,
                         path: str) -> None:
        self.last_block_transfer = BlockTransfer(command, n_bytes, header_at - started,
                                                 time.perf_counter() - header_at, path)

    @contextmanager
    def _block_body(self, command: str, announced: int) -> Iterator["_BlockBody"]:
        """The body of a definite-length block, read straight from the socket when possible.

        The silence timeout is the session's timeout, per receive (a 20 MB block may take
        longer than one timeout in total; an instrument silent for a whole timeout is dead).
        """
        backend = self._socket_session()
        body = _BlockBody(self, command, announced, backend.interface if backend else None,
                          backend._pending_buffer if backend else None)
        if body.sock is None:
            yield body
            return
        saved_timeout = body.sock.gettimeout()
        body.sock.settimeout(None if self.timeout_s == float("inf") else self.timeout_s)
        try:
            yield body
        finally:
            body.sock.settimeout(saved_timeout)   # pyvisa-py expects its blocking socket back

    def _silence_message(self, command: str, what: str, announced: int, received: int, *,
                         exact: bool) -> str:
        if what == "block terminator":
            return (f"{command!r}: block of {announced} bytes was not followed by "
                    f"its newline terminator within {self.timeout_s:g} s")
        # (through pyvisa a partial chunk is dropped on timeout: "at least")
        amount = f"{received}" if exact else f"at least {received}"
        return (f"{command!r}: binary block truncated — header announced {announced} bytes; "
                f"the instrument went silent after {amount} of them ({self.timeout_s:g} s timeout)")

    def _socket_session(self) -> Any | None:
        """pyvisa-py's ``TCPIPSocketSession`` behind this resource, if that is what it is.

        Recognised by what the fast path uses (a socket ``interface`` and the
        ``_pending_buffer`` bytearray, pyvisa-py 0.5 … 0.8); anything else returns ``None``
        and the block goes through the VISA library's reads.
        """
        if self.options.get("socket_block_reads", True) is False:
            return None
        sessions = getattr(getattr(self._resource, "visalib", None), "sessions", None)
        try:
            backend = sessions.get(self._resource.session) if sessions else None
        except Exception:
            return None
        if backend is None or type(backend).__name__ != "TCPIPSocketSession":
            return None
        if not isinstance(getattr(backend, "interface", None), socket.socket):
            return None
        if not isinstance(getattr(backend, "_pending_buffer", None), bytearray):
            return None
        return backend

    def _read_exact(self, count: int, command: str, what: str) -> bytearray:
        """Read exactly ``count`` (few) bytes through the VISA library, or fail naming how many arrived."""
        received = bytearray()
        while len(received) < count:
            chunk = self._raw_read(min(_CHUNK_BYTES, count - len(received)), command)
            if chunk is None:
                self.clear()
                raise self.error(f"{command!r}: no complete {what} within {self.timeout_s:g} s "
                                 f"({len(received)} of {count} bytes)")
            received += chunk
        return received

    def _raw_read(self, count: int, command: str) -> bytes | None:
        """One backend read of up to ``count`` bytes; ``None`` on timeout.

        (pyvisa raises on a timeout and drops the partial chunk, hence small bookkeeping
        in the callers rather than one big read.)
        """
        try:
            # "max count read" is the expected outcome of a by-length read, not a warning
            with self._resource.ignore_warning(visa_constants.StatusCode.success_max_count_read):
                chunk, _status = self._resource.visalib.read(self._resource.session, count)
        except visa_errors.VisaIOError as exc:
            if exc.error_code == visa_constants.StatusCode.error_timeout:
                return None
            raise self._io_error(command, exc) from exc
        except (visa_errors.InvalidSession, OSError) as exc:
            raise self._io_error(command, exc) from exc
        self._answered = True
        return bytes(chunk)

    def _read_within(self, count: int, quiet_ms: float, command: str) -> bytes | None:
        """Read ``count`` bytes if they arrive within ``quiet_ms``; ``None`` on silence."""
        saved = self._resource.timeout
        self._resource.timeout = quiet_ms
        try:
            return self._raw_read(count, command)
        finally:
            self._resource.timeout = saved

    def _read_rest_of_line(self, quiet_ms: float = 200) -> bytes:
        """Best effort, for error messages: what follows up to the newline (or silence)."""
        out = bytearray()
        while len(out) < 200 and not out.endswith(b"\n"):
            byte = self._read_within(1, quiet_ms, "(rest of reply)")
            if not byte:
                break
            out += byte
        return bytes(out)

    def _read_indefinite_block(self, command: str, max_bytes: int) -> bytearray:
        """``#0<data>\\n``: the data ends at the newline that ends the message.

        A socket carries no END signal, so a newline counts as the end only when the
        instrument sends nothing more right after it (0x0A may occur inside the data).
        """
        data = bytearray()
        self._resource.read_termination = "\n"   # backend reads now return at each newline
        while True:
            chunk = self._raw_read(_CHUNK_BYTES, command)
            if chunk is None:
                self.clear()
                raise self.error(f"{command!r}: indefinite-length block (#0) truncated — "
                                 f"{len(data)} bytes arrived, then silence without the final newline")
            data += chunk
            if len(data) > max_bytes + 1:
                self.clear()
                raise self.error(f"{command!r}: indefinite-length block exceeds {max_bytes} bytes "
                                 "(oversized block)")
            if data.endswith(b"\n"):
                following = self._read_within(1, 50, command)
                if following is None:
                    del data[-1:]
                    return data
                data += following

    @contextmanager
    def _binary_reads(self) -> Iterator[None]:
        """Reads stop only at the requested count while inside (termination char disabled)."""
        self._require_open()
        self._resource.read_termination = None
        try:
            yield
        finally:
            self._resource.read_termination = "\n"

    def _enlarge_backend_receive_size(self) -> None:
        # pyvisa-py's socket session receives 4 KiB per system call by default; a 20 MB
        # waveform then costs thousands of select()/recv() rounds. A larger receive size
        # changes nothing else. Other backends have no such attribute and are left alone.
        sessions = getattr(getattr(self._resource, "visalib", None), "sessions", None)
        try:
            backend_session = sessions.get(self._resource.session) if sessions else None
        except Exception:   # an unusual backend: keep its defaults
            backend_session = None
        if backend_session is not None and hasattr(backend_session, "max_recv_size"):
            backend_session.max_recv_size = max(int(backend_session.max_recv_size), _CHUNK_BYTES)
        # SCPI is small commands answered by small replies: with Nagle's algorithm on, a short
        # write waits for the ACK of the previous one (tens of ms per exchange). pyvisa-py 0.8's
        # own VI_ATTR_TCPIP_NODELAY setter fails for SOCKET resources, so set it on the socket.
        sock = getattr(backend_session, "interface", None)
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:   # not a TCP socket after all: nothing to tune
                pass

    # -- limits -------------------------------------------------------------------------
    def range_of(self, setting: str) -> tuple[float, float] | None:
        """The instrument range declared for a :func:`control` setting of this driver."""
        descriptor = getattr(type(self), setting)
        return descriptor._resolve_range(self)

    def check_value(self, quantity: str, value: float, *,
                    valid_range: tuple[float, float] | None = None, units: str = "",
                    safety_limit: str | tuple[str, ...] | None = None) -> None:
        """Raise :class:`LimitError` if ``value`` is outside the range or the safety limit."""
        unit = f" {units}" if units else ""
        if not math.isfinite(value):
            raise self.limit_error(f"{quantity} = {value!r} is not a finite number",
                                   quantity=quantity, value=value)
        if valid_range is not None:
            low, high = valid_range
            if not low <= value <= high:
                raise self.limit_error(
                    f"{quantity} = {value:g}{unit} is outside the instrument range "
                    f"{low:g} … {high:g}{unit}; nothing was sent",
                    quantity=quantity, value=value, limit=(low, high))
        if safety_limit is not None:
            self.check_safety_limit(quantity, value, safety_limit, units=units)

    def check_safety_limit(self, quantity: str, value: float, key: str | tuple[str, ...], *,
                           units: str = "") -> None:
        """Bench safety limits bound magnitudes (``max_*``) or minima (``min_*``).

        ``key`` may list several limits, most specific first; the first one given applies.
        """
        keys = (key,) if isinstance(key, str) else key
        key = next((k for k in keys if k in self.limits), "")
        if not key:
            return
        limit = self.limits[key]
        unit = f" {units}" if units else ""
        broken = value < limit if key.startswith("min_") else abs(value) > limit
        if broken:
            relation = "below" if key.startswith("min_") else "beyond"
            raise self.limit_error(
                f"{quantity} = {value:g}{unit} is {relation} the bench safety limit "
                f"{key} = {limit:g}{unit}; nothing was sent",
                quantity=quantity, value=value, limit=limit)

    # -- errors -------------------------------------------------------------------------
    def error(self, message: str) -> InstrumentError:
        return InstrumentError(self.role, self.resource_name, message)

    def limit_error(self, message: str, **details: Any) -> LimitError:
        return LimitError(self.role, self.resource_name, message, **details)

    def _io_error(self, command: str, exc: BaseException) -> InstrumentError:
        if isinstance(exc, visa_errors.VisaIOError) and \
                exc.error_code == visa_constants.StatusCode.error_timeout:
            # a late reply would otherwise be read as the answer to the next query
            self._clear_quietly()
            return self.error(f"no answer to {command!r} within {self.timeout_s:g} s "
                              "(timeout; session cleared)")
        if isinstance(exc, visa_errors.InvalidSession):
            return self.error(f"cannot send {command!r}: the session is closed")
        if isinstance(exc, OSError):
            if not self._answered:
                return self.error(f"does not answer ({type(exc).__name__}: {exc}) — "
                                  f"is it switched on and at this address? (sending {command!r})")
            return self.error(f"link lost while sending {command!r} ({type(exc).__name__}: {exc})")
        return self.error(f"VISA error on {command!r}: {exc}")

    def _clear_quietly(self) -> None:
        try:
            self._resource.clear()
        except Exception as exc:   # the link may be dead; the original error matters more
            log.debug("clear() after error failed: %s", exc)

    def _require_open(self) -> None:
        if self._closed:
            raise self.error("the driver is closed")

    # -- safe state / close -------------------------------------------------------------
    def _send_safely(self, commands: Sequence[str]) -> bool:
        """Send each command, logging instead of raising (for safe states on a dying link)."""
        all_sent = True
        for command in commands:
            try:
                self.write(command)
            except Exception as exc:   # safe_state must never raise
                all_sent = False
                log.error("%s at %s: safe-state command %r failed: %s",
                          self.role, self.resource_name, command, exc)
        return all_sent

    def safe_state(self) -> bool:
        """Outputs off / acquisition stopped. Idempotent; never raises: logs a dead link and
        returns False, so the caller can record that the bench may not be safe."""
        return True

    def close(self) -> None:
        """Release the VISA session (idempotent). Does not change outputs: call safe_state()."""
        if self._closed:
            return
        self._closed = True
        try:
            self._resource.close()
        except Exception as exc:
            log.warning("%s at %s: closing the session failed: %s", self.role, self.resource_name, exc)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "ScpiInstrument":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} role={self.role!r} resource={self.resource_name!r}>"


class _BlockBody:
    """The data (and terminator) of one definite-length block, read in pieces of any size.

    With ``sock`` (pyvisa-py's socket: the fast path) each piece is received with
    ``recv_into`` straight into the caller's buffer, after whatever pyvisa-py had already
    taken into its ``pending`` buffer; without it, through the VISA library's reads. Counts
    what arrived, so a failure says how much of the announced block came.
    """

    def __init__(self, instrument: ScpiInstrument, command: str, announced: int,
                 sock: socket.socket | None, pending: bytearray | None) -> None:
        self.instrument = instrument
        self.command = command
        self.announced = announced
        self.sock = sock
        self.pending = pending
        self.received = 0
        self.path = "socket" if sock is not None else "visa"

    def fill(self, view: memoryview) -> None:
        """Fill ``view`` exactly with the next bytes of the block, or raise."""
        if self.sock is not None:
            self._fill_from_socket(view, self.sock)
        else:
            self._fill_through_visa(view)
        self.instrument._answered = True

    def _fill_from_socket(self, view: memoryview, sock: socket.socket) -> None:
        filled = 0
        if self.pending:                          # bytes pyvisa-py had already taken in
            filled = min(len(self.pending), len(view))
            view[:filled] = self.pending[:filled]
            del self.pending[:filled]
            self.received += filled
        while filled < len(view):
            try:
                count = sock.recv_into(view[filled:], min(_SOCKET_CHUNK_BYTES, len(view) - filled))
            except (socket.timeout, TimeoutError):
                count = -1
            except OSError as exc:
                raise self.instrument._io_error(self.command, exc) from exc
            if count <= 0:
                self._fail(closed=count == 0, exact=True)
            filled += count
            self.received += count

    def _fill_through_visa(self, view: memoryview) -> None:
        filled = 0
        while filled < len(view):
            chunk = self.instrument._raw_read(min(_CHUNK_BYTES, len(view) - filled), self.command)
            if chunk is None:
                self._fail(closed=False, exact=False)
            view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
            self.received += len(chunk)

    def _fail(self, *, closed: bool, exact: bool) -> NoReturn:
        instrument, command = self.instrument, self.command
        if closed:
            raise instrument.error(f"{command!r}: connection closed by the instrument after "
                                   f"{self.received} of the {self.announced} announced bytes")
        what = "binary block" if self.received < self.announced else "block terminator"
        instrument.clear()
        raise instrument.error(instrument._silence_message(command, what, self.announced,
                                                           self.received, exact=exact))


class ScpiChannel:
    """One channel of a multi-channel instrument; its settings use ``{ch}`` in their commands."""

    def __init__(self, instrument: ScpiInstrument, number: int) -> None:
        self.instrument = instrument
        self.number = number

    def scpi_target(self) -> tuple[ScpiInstrument, dict[str, Any]]:
        return self.instrument, {"ch": self.number}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.number} of {self.instrument!r}>"
