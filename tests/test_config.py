"""Bench files: the shipped ones load; a malformed one reports every problem with its key."""
from pathlib import Path

import pytest

from bench.config import DEFAULT_BENCH, BenchFileError, load_bench, virtual_plant_config

EXAMPLE = Path(DEFAULT_BENCH).parent / "example_lab.toml"


def test_shipped_virtual_bench_loads():
    bench = load_bench()
    assert bench.is_virtual
    assert {"grid_simulator", "dc_source", "oscilloscope", "ac_load", "power_analyzer"} <= set(bench.instruments)
    assert [c.name for c in bench.instruments["oscilloscope"].channels][:3] == ["v_a", "v_b", "v_c"]
    assert bench.pcs.i_rated_a == pytest.approx(300.7, abs=0.1)


def test_example_lab_bench_loads_as_real():
    bench = load_bench(EXAMPLE)
    assert not bench.is_virtual
    assert bench.instruments["grid_simulator"].resource.startswith("TCPIP::")


def test_virtual_plant_config_carries_ratings_and_defects():
    bench = load_bench()
    plant = virtual_plant_config(bench, ["trip_on_sag"])
    assert plant.pcs.s_rated_va == 250e3
    assert plant.pcs.serial == "VPCS-0001"
    assert plant.defects == ("trip_on_sag",)


def _write(tmp_path, text):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def test_not_toml_is_reported_with_the_file(tmp_path):
    path = _write(tmp_path, "[bench\nname = 1")
    with pytest.raises(BenchFileError) as err:
        load_bench(path)
    assert str(path) in str(err.value) and "not valid TOML" in str(err.value)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(BenchFileError, match="cannot be read"):
        load_bench(tmp_path / "nope.toml")


def test_every_problem_is_listed_at_once(tmp_path):
    text = DEFAULT_BENCH.read_text()
    text = text.replace('driver = "ametek_mx"', 'driver = "acme_9000"')
    text = text.replace("s_rated_va = 250e3", "s_rated_va = -5")
    text = text.replace("[safety]", "[safety]\nmax_banana = 3")
    text = text.replace("scr = 5.0", 'scr = "weak"')
    with pytest.raises(BenchFileError) as err:
        load_bench(_write(tmp_path, text))
    problems = err.value.problems
    joined = "\n".join(problems)
    assert "instruments.grid_simulator.driver" in joined and "acme_9000" in joined
    assert "ametek_mx" in joined  # the known drivers are listed
    assert "pcs.s_rated_va" in joined
    assert "safety.max_banana" in joined and "unknown key" in joined
    assert "virtual.scr" in joined
    assert len(problems) >= 4


def test_missing_role_and_virtual_resource_on_real_bench(tmp_path):
    text = EXAMPLE.read_text().replace("[instruments.dc_source]", "[instruments.dc_sourcee]")
    text = text.replace('resource = "TCPIP::192.168.10.21::5025::SOCKET"', 'resource = "virtual"')
    with pytest.raises(BenchFileError) as err:
        load_bench(_write(tmp_path, text))
    joined = "\n".join(err.value.problems)
    assert "instruments.dc_source" in joined and "missing" in joined
    assert "instruments.dc_sourcee" in joined and "unknown role" in joined
    assert "only allowed on a bench with a [virtual] table" in joined


def test_unknown_defect_in_bench_file(tmp_path):
    text = DEFAULT_BENCH.read_text().replace("defects = []", 'defects = ["gremlins"]')
    with pytest.raises(BenchFileError, match="unknown defect 'gremlins'"):
        load_bench(_write(tmp_path, text))


def test_duplicate_scope_input(tmp_path):
    text = DEFAULT_BENCH.read_text().replace('name = "v_b"\nchannel = 2', 'name = "v_b"\nchannel = 1')
    with pytest.raises(BenchFileError, match="scope input 1 is used twice"):
        load_bench(_write(tmp_path, text))
