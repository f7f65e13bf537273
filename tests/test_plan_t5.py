"""T5 (AI-load buffering on a weak grid): on the virtual bench the plan passes the healthy PCS
at every SCR of the profile's sweep, with the grid simulator's emulated impedance reaching the
plant, and fails a buffer whose injection cannot keep up with the load (ramp_buffer_slow).

Each qualify run starts its own virtual bench (ports chosen by the OS).
"""
from plan_runs import measurement_rows, qualify






def test_T5_passes_the_healthy_pcs_at_every_scr(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T5", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for scr in ("scr2", "scr3"):
        for case in ("training", "step", "checkpoint"):
            assert f"PASS  T5   test_T5_weak_grid_buffering[{scr}-{case}]" in result.stdout
    rows = measurement_rows(out)
    scrs = sorted({round(float(r["value"]), 3) for r in rows if r["name"] == "scr_at_pcc"})
    assert scrs == [2.0, 3.0]                # wiring + emulated impedance give the sweep's points
    judged = {"grid_side_ramp_rate", "tracking_error", "pcc_voltage_oscillation", "pcc_voltage_min",
              "pcc_voltage_max", "residual_oscillation_from_1_to_5hz"}
    assert judged <= {r["name"] for r in rows}
    assert all(r["clause"] for r in rows if r["name"] in judged)
    assert len(list((out / "plots").rglob("weak_grid_buffering.png"))) == 6


def test_T5_fails_a_buffer_too_slow_for_the_load(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T5 and scr2 and (training or checkpoint)", "--defect", "ramp_buffer_slow",
                     "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T5   test_T5_weak_grid_buffering[scr2-training]" in result.stdout
    assert "FAIL  T5   test_T5_weak_grid_buffering[scr2-checkpoint]" in result.stdout
    assert "at SCR 2" in result.stdout and "at most 20% per second is allowed" in result.stdout
    failed = {r["name"] for r in measurement_rows(out) if r["outcome"] == "FAIL"}
    assert {"grid_side_ramp_rate", "tracking_error"} <= failed
