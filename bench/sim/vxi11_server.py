"""A VXI-11 instrument server (ONC RPC over TCP) for the simulated instruments that a real lab
reaches as ``TCPIP::<ip>::INSTR``, not as a raw SCPI socket (the Yokogawa WT power analyzers).

Written from the protocol documents, not from a client library:

* ONC RPC version 2 (RFC 5531): a call is ``xid, CALL(0), rpcvers 2, prog, vers, proc,
  cred, verf, args``; an accepted reply is ``xid, REPLY(1), MSG_ACCEPTED(0), verf,
  accept_stat, results``; ``accept_stat`` 1 PROG_UNAVAIL, 2 PROG_MISMATCH (+ low, high),
  3 PROC_UNAVAIL, 4 GARBAGE_ARGS; an RPC version other than 2 is MSG_DENIED(1) /
  RPC_MISMATCH(0) (+ low, high). On TCP every message is a record (§11, record marking):
  fragments, each behind a 4-byte big-endian header whose top bit marks the last fragment and
  whose other 31 bits give its length.
* XDR (RFC 4506): 4-byte big-endian integers, booleans as 0/1, variable-length opaque data
  and strings as a length then the bytes padded to a multiple of 4.
* VXI-11 (VXIbus Consortium, TCP/IP Instrument Protocol Specification, rev. 1.0), the core
  channel: program 0x0607AF version 1, procedures create_link (10), device_write (11),
  device_read (12), device_readstb (13), device_trigger (14), device_clear (15),
  device_remote (16), device_local (17), device_lock (18), device_unlock (19),
  device_enable_srq (20), device_docmd (22), destroy_link (23), create_intr_chan (25),
  destroy_intr_chan (26). Device_Flags: waitlock 1, end 8, termchrset 128. Read reasons:
  REQCNT 1 (the requested count was reached), CHR 2 (the termination character), END 4 (the
  end of the response message). Error codes: 0 none, 1 syntax, 3 device not accessible,
  4 invalid link identifier, 5 parameter error, 8 operation not supported, 9 out of resources,
  11 device locked by another link, 12 no lock held by this link, 15 I/O timeout, 17 I/O error.

What is left out, on purpose: the portmapper (RPC program 100000 on port 111). A VISA client
given ``TCPIP::127.0.0.1,<port>::INSTR`` (host, comma, port) connects to that port directly
and never asks a portmapper, and binding port 111 needs privileges the virtual bench does not
have. The abort channel is not served either (create_link reports abort port 0), nor are
service requests (create_intr_chan answers "operation not supported").

The server serves any object with the simulated instruments' command interface
(``execute_chunks(message) -> list of response chunks``, ``bench/sim/scpi/server.py``): a
device_write with the END flag completes one program message; its response is kept for the
link until device_read takes it, in pieces as large as the client asks for.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from bench.sim.scpi.server import ScpiError
from bench.sim.stream_server import StreamServer

log = logging.getLogger(__name__)

# --- ONC RPC (RFC 5531) ---------------------------------------------------------------------
RPC_VERSION = 2
MSG_CALL, MSG_REPLY = 0, 1
MSG_ACCEPTED, MSG_DENIED = 0, 1
ACCEPT_SUCCESS, PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR = 0, 1, 2, 3, 4, 5
REJECT_RPC_MISMATCH = 0
AUTH_NONE = 0
LAST_FRAGMENT = 0x8000_0000
MAX_RECORD_BYTES = 64 << 20          # a record larger than this is refused (the connection closes)

# --- VXI-11 core channel ----------------------------------------------------------------------
DEVICE_CORE_PROG, DEVICE_CORE_VERS = 0x0607AF, 1
(CREATE_LINK, DEVICE_WRITE, DEVICE_READ, DEVICE_READSTB, DEVICE_TRIGGER, DEVICE_CLEAR, DEVICE_REMOTE,
 DEVICE_LOCAL, DEVICE_LOCK, DEVICE_UNLOCK, DEVICE_ENABLE_SRQ) = range(10, 21)
DEVICE_DOCMD, DESTROY_LINK, CREATE_INTR_CHAN, DESTROY_INTR_CHAN = 22, 23, 25, 26
FLAG_WAITLOCK, FLAG_END, FLAG_TERMCHRSET = 1, 8, 128
REASON_REQCNT, REASON_CHR, REASON_END = 1, 2, 4
ERR_NONE, ERR_SYNTAX, ERR_NOT_ACCESSIBLE, ERR_INVALID_LINK, ERR_PARAMETER = 0, 1, 3, 4, 5
ERR_NOT_SUPPORTED, ERR_OUT_OF_RESOURCES, ERR_LOCKED, ERR_NO_LOCK, ERR_IO_TIMEOUT = 8, 9, 11, 12, 15

MAX_PENDING_CHUNKS = 16             # a program message may span this many write chunks
DEFAULT_MAX_RECV_BYTES = 1 << 20     # what create_link announces: the largest write chunk we take
MAX_LINKS = 16
MAV_BIT = 0x10                       # IEEE 488.2 status byte: message available


class XdrError(ValueError):
    """Arguments that do not decode (GARBAGE_ARGS)."""


class XdrReader:
    """Decodes XDR items from one record, front to back."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise XdrError(f"record ends after {len(self.data)} bytes, {count} more were expected")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def uint(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def int(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def bool(self) -> bool:
        value = self.uint()
        if value not in (0, 1):
            raise XdrError(f"boolean encoded as {value}")
        return bool(value)

    def opaque(self, max_bytes: int | None = None) -> bytes:
        length = self.uint()
        if max_bytes is not None and length > max_bytes:
            raise XdrError(f"opaque of {length} bytes, at most {max_bytes} allowed")
        data = self._take(length)
        self._take((-length) % 4)
        return data

    def done(self) -> None:
        if self.offset != len(self.data):
            raise XdrError(f"{len(self.data) - self.offset} bytes left over after the arguments")


class XdrWriter:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def uint(self, value: int) -> "XdrWriter":
        self.parts.append(struct.pack(">I", value & 0xFFFF_FFFF))
        return self

    def int(self, value: int) -> "XdrWriter":
        self.parts.append(struct.pack(">i", value))
        return self

    def opaque(self, data: bytes) -> "XdrWriter":
        self.uint(len(data))
        self.parts.append(bytes(data))
        self.parts.append(b"\0" * ((-len(data)) % 4))
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def record(payload: bytes) -> bytes:
    """One RPC message as a single-fragment record."""
    return struct.pack(">I", LAST_FRAGMENT | len(payload)) + payload


async def read_record(reader: asyncio.StreamReader) -> bytes | None:
    """The next record (its fragments joined), or None when the client closed the connection."""
    fragments: list[bytes] = []
    total = 0
    while True:
        try:
            header = await reader.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            if exc.partial or fragments:
                log.debug("VXI-11: connection closed inside a record")
            return None
        (word,) = struct.unpack(">I", header)
        length = word & ~LAST_FRAGMENT
        total += length
        if total > MAX_RECORD_BYTES:
            raise XdrError(f"record of more than {MAX_RECORD_BYTES} bytes")
        try:
            fragments.append(await reader.readexactly(length))
        except asyncio.IncompleteReadError:
            return None
        if word & LAST_FRAGMENT:
            return b"".join(fragments)


# --- the device side ---------------------------------------------------------------------------

@dataclass
class Link:
    """One client link (create_link … destroy_link): its partial input and unread output."""

    lid: int
    client_id: int
    device: str
    pending_input: bytearray = field(default_factory=bytearray)
    output: bytearray = field(default_factory=bytearray)
    remote: bool = False


class Vxi11Server(StreamServer):
    """Serves one simulated instrument on the VXI-11 core channel (loopback by default)."""

    def __init__(self, instrument: Any, *, device_names: tuple[str, ...] = ("inst0",),
                 max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES) -> None:
        super().__init__()
        self.instrument = instrument
        self.device_names = tuple(name.lower() for name in device_names)
        self.max_recv_bytes = int(max_recv_bytes)
        self.links: dict[int, Link] = {}
        self.lock_owner: int | None = None       # lid holding the device lock
        self._lids = itertools.count(1)
        self._procedures: dict[int, Callable[[XdrReader, set[int]], Any]] = {
            CREATE_LINK: self._create_link, DEVICE_WRITE: self._device_write,
            DEVICE_READ: self._device_read, DEVICE_READSTB: self._device_readstb,
            DEVICE_TRIGGER: self._device_trigger, DEVICE_CLEAR: self._device_clear,
            DEVICE_REMOTE: self._device_remote, DEVICE_LOCAL: self._device_local,
            DEVICE_LOCK: self._device_lock, DEVICE_UNLOCK: self._device_unlock,
            DEVICE_ENABLE_SRQ: self._not_supported_generic, DEVICE_DOCMD: self._device_docmd,
            DESTROY_LINK: self._destroy_link, CREATE_INTR_CHAN: self._create_intr_chan,
            DESTROY_INTR_CHAN: self._destroy_intr_chan,
        }

    @property
    def resource(self) -> str:
        """The VISA address: host and port, so that clients skip the portmapper."""
        return f"TCPIP::{self.host},{self.port}::INSTR"

    # --- the connection: records in, records out -------------------------------------------------
    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track(writer)
        owned: set[int] = set()          # links created on this connection die with it
        try:
            while True:
                try:
                    message = await read_record(reader)
                except XdrError as exc:
                    log.warning("VXI-11: %s; closing the connection", exc)
                    break
                if message is None:
                    break
                reply = await self._handle_call(message, owned)
                if reply is not None:
                    writer.write(record(reply))
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for lid in owned:
                self._drop_link(lid)
            self._untrack(writer)
            writer.close()

    async def _handle_call(self, message: bytes, owned: set[int]) -> bytes | None:
        args = XdrReader(message)
        try:
            xid = args.uint()
            if args.uint() != MSG_CALL:
                return None                          # a reply sent to a server: ignore it
            rpc_version = args.uint()
            program, version, procedure = args.uint(), args.uint(), args.uint()
            args.uint(), args.opaque(400)            # credentials (flavor, body): not checked
            args.uint(), args.opaque(400)            # verifier
        except XdrError:
            return None                              # not even a call header: nothing to answer
        head = XdrWriter().uint(xid).uint(MSG_REPLY)
        if rpc_version != RPC_VERSION:
            return head.uint(MSG_DENIED).uint(REJECT_RPC_MISMATCH).uint(RPC_VERSION).uint(RPC_VERSION).bytes()
        head.uint(MSG_ACCEPTED).uint(AUTH_NONE).opaque(b"")
        if program != DEVICE_CORE_PROG:
            return head.uint(PROG_UNAVAIL).bytes()
        if version != DEVICE_CORE_VERS:
            return head.uint(PROG_MISMATCH).uint(DEVICE_CORE_VERS).uint(DEVICE_CORE_VERS).bytes()
        if procedure == 0:                           # the NULL procedure: a ping
            return head.uint(ACCEPT_SUCCESS).bytes()
        handler = self._procedures.get(procedure)
        if handler is None:
            return head.uint(PROC_UNAVAIL).bytes()
        try:
            result = handler(args, owned)
            if asyncio.iscoroutine(result):
                result = await result
        except XdrError as exc:
            log.debug("VXI-11 procedure %d: garbage arguments (%s)", procedure, exc)
            return head.uint(GARBAGE_ARGS).bytes()
        return head.uint(ACCEPT_SUCCESS).bytes() + result.bytes()

    # --- links ------------------------------------------------------------------------------------
    def _link(self, lid: int) -> Link | None:
        return self.links.get(lid)

    def _drop_link(self, lid: int) -> None:
        self.links.pop(lid, None)
        if self.lock_owner == lid:
            self.lock_owner = None

    def _locked_out(self, lid: int) -> bool:
        return self.lock_owner is not None and self.lock_owner != lid

    def _create_link(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        client_id, lock_device, _lock_timeout_ms = args.int(), args.bool(), args.uint()
        device = args.opaque(256).decode("ascii", "replace")
        args.done()
        reply = XdrWriter()
        if device.lower() not in self.device_names:
            return reply.int(ERR_NOT_ACCESSIBLE).int(0).uint(0).uint(0)
        if len(self.links) >= MAX_LINKS:
            return reply.int(ERR_OUT_OF_RESOURCES).int(0).uint(0).uint(0)
        lid = next(self._lids)
        if lock_device:
            if self.lock_owner is not None:
                return reply.int(ERR_LOCKED).int(0).uint(0).uint(0)
            self.lock_owner = lid
        self.links[lid] = Link(lid, client_id, device)
        owned.add(lid)
        # abort port 0: no abort channel is served
        return reply.int(ERR_NONE).int(lid).uint(0).uint(self.max_recv_bytes)

    def _destroy_link(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        lid = args.int()
        args.done()
        if lid not in self.links:
            return XdrWriter().int(ERR_INVALID_LINK)
        self._drop_link(lid)
        owned.discard(lid)
        return XdrWriter().int(ERR_NONE)

    # --- data -------------------------------------------------------------------------------------
    def _device_write(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        lid, _io_timeout_ms, _lock_timeout_ms, flags = args.int(), args.uint(), args.uint(), args.int()
        data = args.opaque()
        args.done()
        link = self._link(lid)
        if link is None:
            return XdrWriter().int(ERR_INVALID_LINK).uint(0)
        if self._locked_out(lid):
            return XdrWriter().int(ERR_LOCKED).uint(0)
        if len(data) > self.max_recv_bytes:
            return XdrWriter().int(ERR_PARAMETER).uint(0)
        if len(link.pending_input) + len(data) > MAX_PENDING_CHUNKS * self.max_recv_bytes:
            # a client that never sends END must not grow a message without bound
            link.pending_input.clear()
            return XdrWriter().int(ERR_OUT_OF_RESOURCES).uint(0)
        link.pending_input += data
        if flags & FLAG_END:
            message, link.pending_input = bytes(link.pending_input), bytearray()
            self._execute(link, message)
        return XdrWriter().int(ERR_NONE).uint(len(data))

    def _execute(self, link: Link, message: bytes) -> None:
        """Run one program message (END received); keep its response for device_read."""
        text = message.decode("latin-1")
        lines = [line for line in text.replace("\r", "").split("\n") if line.strip()]
        for line in lines:
            if link.output and "?" in line and hasattr(self.instrument, "push_error"):
                # IEEE 488.2 §6.3.2.3: a new query while a response is unread interrupts it
                link.output.clear()
                self.instrument.push_error(ScpiError(-410, "Query INTERRUPTED"))
            for chunk in self.instrument.execute_chunks(line):
                link.output += chunk

    async def _device_read(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        lid, request_size, io_timeout_ms, _lock_timeout_ms = args.int(), args.uint(), args.uint(), args.uint()
        flags, term_char = args.int(), args.int()
        args.done()
        link = self._link(lid)
        if link is None:
            return XdrWriter().int(ERR_INVALID_LINK).int(0).opaque(b"")
        if self._locked_out(lid):
            return XdrWriter().int(ERR_LOCKED).int(0).opaque(b"")
        if not link.output:
            # Nothing to send and nothing will come (the simulated instruments answer at once):
            # a real device waits out the client's I/O timeout, and so does this one.
            await asyncio.sleep(min(io_timeout_ms, 3_600_000) / 1000.0)
            if not link.output:
                return XdrWriter().int(ERR_IO_TIMEOUT).int(0).opaque(b"")
        count = max(int(request_size), 1)
        reason = 0
        if flags & FLAG_TERMCHRSET:
            at = link.output.find(bytes([term_char & 0xFF]), 0, count)
            if at >= 0:
                count, reason = at + 1, REASON_CHR
        data = bytes(link.output[:count])
        del link.output[:count]
        if not link.output:
            reason |= REASON_END                     # the whole response message has gone
        elif len(data) == request_size:
            reason |= REASON_REQCNT
        return XdrWriter().int(ERR_NONE).int(reason).opaque(data)

    # --- device functions -------------------------------------------------------------------------
    def _generic(self, args: XdrReader) -> Link | int:
        lid, _flags, _lock_timeout_ms, _io_timeout_ms = args.int(), args.int(), args.uint(), args.uint()
        args.done()
        link = self._link(lid)
        if link is None:
            return ERR_INVALID_LINK
        if self._locked_out(lid):
            return ERR_LOCKED
        return link

    def _device_readstb(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        link = self._generic(args)
        if isinstance(link, int):
            return XdrWriter().int(link).uint(0)
        stb = 0
        status_query = getattr(self.instrument, "execute", None)
        if status_query is not None:
            reply = status_query("*STB?")       # the twin's own status byte (no side effects)
            try:
                stb = int(reply.decode().strip()) if reply else 0
            except ValueError:
                stb = 0
        if link.output:
            stb |= MAV_BIT
        return XdrWriter().int(ERR_NONE).uint(stb & 0xFF)

    def _device_trigger(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        link = self._generic(args)
        if isinstance(link, int):
            return XdrWriter().int(link)
        self._execute(link, b"*TRG")             # the group execute trigger
        return XdrWriter().int(ERR_NONE)

    def _device_clear(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        link = self._generic(args)
        if isinstance(link, int):
            return XdrWriter().int(link)
        # device clear: input and output buffers emptied (IEEE 488.2 §5.8), settings kept
        link.pending_input.clear()
        link.output.clear()
        return XdrWriter().int(ERR_NONE)

    def _device_remote(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        link = self._generic(args)
        if isinstance(link, int):
            return XdrWriter().int(link)
        link.remote = True
        return XdrWriter().int(ERR_NONE)

    def _device_local(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        link = self._generic(args)
        if isinstance(link, int):
            return XdrWriter().int(link)
        link.remote = False
        return XdrWriter().int(ERR_NONE)

    def _device_lock(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        lid, _flags, _lock_timeout_ms = args.int(), args.int(), args.uint()
        args.done()
        if lid not in self.links:
            return XdrWriter().int(ERR_INVALID_LINK)
        if self._locked_out(lid):
            return XdrWriter().int(ERR_LOCKED)     # no waiting: the simulated device never frees it by itself
        self.lock_owner = lid
        return XdrWriter().int(ERR_NONE)

    def _device_unlock(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        lid = args.int()
        args.done()
        if lid not in self.links:
            return XdrWriter().int(ERR_INVALID_LINK)
        if self.lock_owner != lid:
            return XdrWriter().int(ERR_NO_LOCK)
        self.lock_owner = None
        return XdrWriter().int(ERR_NONE)

    def _device_docmd(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        return XdrWriter().int(ERR_NOT_SUPPORTED).opaque(b"")

    def _not_supported_generic(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        return XdrWriter().int(ERR_NOT_SUPPORTED)

    def _create_intr_chan(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        return XdrWriter().int(ERR_NOT_SUPPORTED)

    def _destroy_intr_chan(self, args: XdrReader, owned: set[int]) -> XdrWriter:
        return XdrWriter().int(ERR_NOT_SUPPORTED)


__all__ = ["Vxi11Server", "XdrReader", "XdrWriter", "record", "read_record", "DEVICE_CORE_PROG",
           "DEVICE_CORE_VERS"]
