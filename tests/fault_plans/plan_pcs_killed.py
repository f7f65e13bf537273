"""A plan used by tests/test_qualify_e2e.py: the virtual PCS dies in the middle of a test.

Not a qualification plan: it lives here so that `bessbench qualify` never collects it.
"""
import pytest

from bench.capture import CaptureSettings
from instruments.grid_simulator import GridSegment

pytestmark = pytest.mark.test_id("FAULT")


def test_pcs_lost_mid_test(bench_config, dc_source, grid_simulator, pcs, clock, capture, request):
    pcs_cfg = bench_config.pcs
    dc_source.set_voltage_v(pcs_cfg.vdc_nominal_v)
    dc_source.output_on()
    grid_simulator.configure_nominal(pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz)
    grid_simulator.output_on()
    clock.wait(0.2)
    pcs.set_active_power_w(100e3)
    pcs.start()
    clock.wait(1.0)
    nominal = (pcs_cfg.v_ln_nom_v,) * 3
    grid_simulator.program_transient([GridSegment(0.2, tuple(0.7 * v for v in nominal), pcs_cfg.f_nom_hz),
                                      GridSegment(0.1, nominal, pcs_cfg.f_nom_hz)])
    settings = CaptureSettings(sample_rate_hz=10_000, duration_s=0.6, pretrigger_s=0.1)
    capture.arm(settings, ["v_a", "i_a"])
    clock.wait(0.1)
    grid_simulator.start_transient()
    clock.wait(0.6)
    capture.wait_complete(timeout_s=5.0)
    capture.fetch(request.node.name, "before_the_loss", ["v_a", "i_a"])
    clock.request({"op": "fault", "what": "kill_pcs"})
    pcs.telemetry()  # the PCS is gone: this must raise an error that says so
