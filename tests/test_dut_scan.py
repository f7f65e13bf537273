"""`scan_device`: lists SunSpec models and answering vendor points, and never writes."""

from __future__ import annotations

import pytest

from dut.errors import DutError
from dut.scan import format_scan, scan_device
from test_dut import ModbusTestServer, full_pcs_models, model_address
from test_dut_vendor_points import VendorTestServer, vendor_block


def connection(server, **extra):
    return {"transport": "tcp", "host": "127.0.0.1", "port": server.port, "timeout_s": 0.5,
            "retries": 0, **extra}


def test_scan_lists_models_and_vendor_points_without_writing():
    with VendorTestServer() as server:
        at_713 = model_address(40000, full_pcs_models(), 713)
        server.refuse_reads += [(at_713 + 2, at_713 + 9), (41030, 41031)]
        report = scan_device(connection(server, point_map="vpcs250"))
        assert {function_code for function_code, *_ in server.requests} == {3}
    assert report.sunspec_base == 40000
    assert [(m.model_id, m.available) for m in report.models] == [
        (1, True), (701, True), (702, True), (704, True), (707, True), (708, True), (713, False), (715, True)]
    assert "illegal data address" in report.models[6].reason
    assert report.identity["serial"] == "VPCS-0001"
    points = {point.name: point for point in report.vendor_points}
    assert "dr_execute" not in points  # write-only commands are not read
    assert points["vdc"].value == 900.1 and points["state"].value == "RUNNING"
    assert points["temperature"].value is None and "illegal data address" in points["temperature"].error
    text = format_scan(report)
    assert "713    40522       7  UNAVAILABLE: point '713.ID..Pct_SF'" in text
    assert "vendor points (vpcs250): 38 of 39 answer" in text
    assert "telemetry_time         12345.678 s" in text and "nothing was written" in text


def test_scan_of_a_device_without_sunspec_still_reads_vendor_points():
    block = vendor_block()
    with ModbusTestServer({41000: block[:38], 41040: block[40:]}) as server:
        report = scan_device(connection(server, point_map="vpcs250"))
    assert report.models == [] and "no SunSpec marker" in report.sunspec_error
    assert all(point.error is None for point in report.vendor_points)
    assert "SunSpec: not found" in format_scan(report)


def test_scan_without_a_map_lists_sunspec_only():
    with VendorTestServer() as server:
        report = scan_device(connection(server))
    assert report.point_map is None and report.vendor_points == [] and len(report.models) == 8


def test_scan_of_a_closed_port_is_a_clear_error():
    with ModbusTestServer({40000: [0, 0]}) as server:
        port = server.port
    with pytest.raises(DutError, match=f"cannot connect to Modbus TCP 127.0.0.1:{port}"):
        scan_device({"transport": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5, "retries": 0})
