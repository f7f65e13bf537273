"""The PCS's own disturbance records (COMTRADE .cfg/.dat), as raw files.

`RecordSource` is the seam: a PCS that publishes its records by FTP/SFTP or a web page gets its
own source class with the same two methods; plans and reports only see `RecordInfo` and the
raw cfg/dat. `ModbusFileRecordSource` is the Modbus way (the VPCS-250 manual): the record list
through vendor points (count, select, trigger time, file number, cause) and the files through
function code 20 (read file record). Parsing the COMTRADE files is left to the analysis side.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .errors import DutError, ModbusPointError
from .modbus_transport import MAX_FILE_RECORD_REGISTERS, ModbusTransport
from .pcs import RecordInfo
from .vendor_points import VendorPoints

ILLEGAL_DATA_ADDRESS = 0x02
RECORD_POINTS = ("record_count", "record_select", "record_trigger_time", "record_file", "record_cause")


@runtime_checkable
class RecordSource(Protocol):
    def list_records(self) -> list[RecordInfo]:
        """The records the device holds, oldest first."""
        ...

    def fetch(self, record: RecordInfo) -> tuple[str, bytes]:
        """(cfg text, dat bytes) of one record, exactly as the device holds them."""
        ...


class ModbusFileRecordSource:
    """Record list from vendor points, files through FC20 in chunks of at most 120 registers.

    Selecting a record is a register write (record_select); the caller gates it like any
    other write (the PCS layer does: control allowed, identity confirmed).
    """

    def __init__(self, transport: ModbusTransport, points: VendorPoints) -> None:
        missing = [name for name in RECORD_POINTS if not points.map.has(name)]
        if missing:
            raise DutError(
                f"point map {points.map.name} has no disturbance-record points {missing}; "
                "records cannot be listed over Modbus"
            )
        self.transport = transport
        self.points = points

    def list_records(self) -> list[RecordInfo]:
        count = int(self.points.read_one("record_count"))
        records = []
        for index in range(1, count + 1):
            # The select register is read back with the record's points in the same request,
            # which is the write's verification and saves a transaction per record.
            self.points.write({"record_select": index}, verify=False)
            values = self.points.read(RECORD_POINTS[1:])
            if values["record_select"] != index:
                select = self.points.map.point("record_select")
                raise ModbusPointError(
                    f"{self.points.map.name}.record_select", select.address, self.transport.device,
                    f"selected record {index} but the device shows {values['record_select']}",
                )
            cause = values["record_cause"]
            records.append(RecordInfo(
                index=index,
                trigger_time_s=values["record_trigger_time"],
                cause=cause if isinstance(cause, str) else f"CODE_{cause}",
                file_number=int(values["record_file"]),
            ))
        return records

    def fetch(self, record: RecordInfo) -> tuple[str, bytes]:
        if record.file_number is None:
            raise DutError(f"record {record.index} has no Modbus file number; it came from another source")
        cfg_bytes = self.read_file(record.file_number, what=f"record {record.index} .cfg")
        dat_bytes = self.read_file(record.file_number + 1, what=f"record {record.index} .dat")
        # The .cfg is ASCII padded with one NUL to a whole register.
        cfg_text = cfg_bytes.rstrip(b"\x00").decode("utf-8", errors="replace")
        # A BINARY .dat is whole registers by construction (4 + 4 + 2·A + 2·⌈D/16⌉ bytes per
        # sample), so nothing is trimmed from it.
        return cfg_text, dat_bytes

    def read_file(self, file_number: int, *, what: str = "file") -> bytes:
        """All registers of one file, as bytes (high byte first)."""
        words: list[int] = []
        record = 0
        while True:
            chunk = self._read_chunk(file_number, record, MAX_FILE_RECORD_REGISTERS, what)
            words += chunk
            if len(chunk) < MAX_FILE_RECORD_REGISTERS:
                break
            record += len(chunk)
        if not words:
            raise DutError(f"{what}: file {file_number} on {self.transport.device} is empty or absent")
        return b"".join(word.to_bytes(2, "big") for word in words)

    def _read_chunk(self, file_number: int, record: int, count: int, what: str) -> list[int]:
        try:
            return self.transport.read_file_record(file_number, record, count, point=what)
        except ModbusPointError as exc:
            if exc.exception_code != ILLEGAL_DATA_ADDRESS:
                raise
        # Exception 02 means the chunk runs past the end of the file; the manual does not say
        # whether a short last chunk is served, so find the largest readable length (bisection,
        # at most 7 requests per file).
        readable: list[int] = []
        low, high = 0, count - 1
        while low < high:
            middle = (low + high + 1) // 2
            try:
                readable = self.transport.read_file_record(file_number, record, middle, point=what)
                low = middle
            except ModbusPointError as exc:
                if exc.exception_code != ILLEGAL_DATA_ADDRESS:
                    raise
                high = middle - 1
        return readable[:low]
