"""Vendor point-map files: the shipped map against the manual, and every bad input named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dut.errors import DutError
from dut.pointmap import PointMapError, load_point_map, parse_point_map

MANUAL = Path(__file__).resolve().parents[1] / "docs" / "vendor_points_vpcs.md"

GOOD = """
[map]
name = "tiny"

[[point]]
name = "mode"
address = 100
type = "enum16"
access = "RW"
values = { 0 = "OFF", 1 = "ON" }

[[point]]
name = "power"
address = 101
type = "int32"
scale = 0.1
units = "kW"
access = "RW"
min = -250.0
max = 250.0
"""


def manual_rows() -> dict[int, tuple[str, str, str, str]]:
    """address -> (name, type, scale, access) from the manual's table, read independently."""
    rows = {}
    for line in MANUAL.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and re.fullmatch(r"\d{5}", cells[0]):
            rows[int(cells[0])] = (cells[1], cells[2], cells[3], cells[5])
    return rows


def test_shipped_map_transcribes_the_manual():
    point_map = load_point_map("vpcs250")
    rows = manual_rows()
    assert len(rows) == 41
    by_address = {point.address: point for point in point_map.points.values()}
    assert sorted(by_address) == sorted(rows)
    renamed = {"reserved": "event_reserved"}  # the manual's bare name is ambiguous in a map
    for address, (name, point_type, scale, access) in rows.items():
        point = by_address[address]
        assert point.name == renamed.get(name, name), address
        # trip_code is uint16 in the manual and read as an enumeration of its documented codes
        expected_type = "enum16" if name == "trip_code" else point_type
        assert point.point_type == expected_type, name
        assert point.access == access, name
        if scale and scale != "1":
            assert point.scale == pytest.approx(float(scale)), name
    assert point_map.points["control_mode"].values == {
        0: "GRID_FOLLOWING", 1: "GRID_FORMING_DROOP", 2: "GRID_FORMING_VSM"}
    assert (point_map.points["k_factor"].minimum, point_map.points["k_factor"].maximum) == (0.0, 10.0)
    assert point_map.points["dr_target"].size == 2
    assert point_map.version_point == "map_version" and point_map.version == 1


def test_a_good_small_map():
    point_map = parse_point_map(GOOD, "tiny.toml")
    assert list(point_map.points) == ["mode", "power"]
    assert point_map.points["power"].end == 103


def problems_of(text: str) -> list[str]:
    with pytest.raises(PointMapError) as caught:
        parse_point_map(text, "bad.toml")
    assert all(problem.startswith("bad.toml: ") for problem in caught.value.problems)
    return caught.value.problems


def test_overlapping_registers_are_named():
    text = GOOD + '\n[[point]]\nname = "energy"\naddress = 102\ntype = "uint16"\naccess = "R"\n'
    (problem,) = problems_of(text)
    assert "point 'energy'" in problem and "'address'" in problem
    assert "102..102 overlap point 'power' (101..102)" in problem


def test_every_problem_is_listed_with_point_and_field():
    text = """
[map]
name = "bad"

[[point]]
name = "a"
address = 70000
type = "uint24"
access = "RW"

[[point]]
name = "b"
address = 10
type = "enum16"
access = "R"

[[point]]
name = "c"
address = 11
type = "uint16"
scale = 0.1
sf = "c_sf"
access = "X"

[[point]]
name = "b"
address = 20
type = "uint16"
access = "R"
colour = "red"
"""
    problems = problems_of(text)
    expected = [
        ("point 'a', field 'address'", "outside 0..65535"),
        ("point 'a', field 'type'", "unknown type 'uint24'"),
        ("point 'b', field 'values'", "needs values"),
        ("point 'c', field 'access'", "must be one of R, RW, W"),
        ("point 'c', field 'scale'", "scale and sf are both given"),
        ("point 'b', field 'colour'", "unknown field"),
    ]
    for where, what in expected:
        assert any(where in p and what in p for p in problems), (where, problems)


def test_duplicate_names_are_refused():
    text = GOOD + '\n[[point]]\nname = "mode"\naddress = 200\ntype = "uint16"\naccess = "R"\n'
    (problem,) = problems_of(text)
    assert "point 'mode'" in problem and "duplicate name" in problem


@pytest.mark.parametrize("extra, where, what", [
    ('name = "x"\naddress = 65535\ntype = "uint32"\naccess = "R"', "'address'", "runs past 65535"),
    ('name = "x"\naddress = 5\ntype = "string"\naccess = "R"', "'size'", "string needs size"),
    ('name = "x"\naddress = 5\ntype = "uint16"\naccess = "R"\nvalues = { 0 = "A" }', "'values'", "only enum16"),
    ('name = "x"\naddress = 5\ntype = "uint16"\naccess = "R"\nsf = "nope"', "'sf'", "names no point"),
    ('name = "x"\naddress = 5\ntype = "uint16"\naccess = "RW"\nmin = 5\nmax = 1', "'min'", "above max"),
    ('name = "x"\naddress = 5\ntype = "uint16"\naccess = "R"\nscale = 0', "'scale'", "non-zero"),
    ('name = "x"\naddress = 5\ntype = "enum16"\naccess = "R"\nvalues = { a = "A" }', "'values'", "not an integer"),
])
def test_single_field_problems(extra, where, what):
    (problem,) = problems_of(GOOD + "\n[[point]]\n" + extra + "\n")
    assert where in problem and what in problem


def test_map_without_header_and_invalid_toml():
    assert any("[map]" in p for p in problems_of('[[point]]\nname="a"\naddress=1\ntype="uint16"\naccess="R"\n'))
    assert "not valid TOML" in problems_of("[map\nname=")[0]


def test_unknown_shipped_map_name_lists_the_shipped_ones(tmp_path):
    with pytest.raises(DutError, match="no shipped point map named 'vpcs999'.*vpcs250"):
        load_point_map("vpcs999")
    with pytest.raises(DutError, match="does not exist"):
        load_point_map(tmp_path / "missing.toml")
    path = tmp_path / "tiny.toml"
    path.write_text(GOOD)
    assert load_point_map(path).name == "tiny"
