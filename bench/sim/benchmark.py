"""Speed of the virtual bench's plant (`bessbench sim-benchmark`, JSON).

Figures are "times faster than real time" (plant seconds per wall second) of
`Plant.advance`, the call the bench clock makes, so per-chunk Python overhead counts.
Each figure is the best of a few repeats: the machine is shared, and the best run is the
one least disturbed by other processes; the load average is reported with it.
Nothing is asserted and nothing is printed: the CLI prints the returned dict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.sim.ai_load import TrainingIterations
from bench.sim.genset import GensetConfig
from bench.sim.plant import Plant, PlantConfig

EMT_RUN_S = 2.0             # plant seconds per timed repeat
PHASOR_DT_S = 5e-3          # phasor step of the phasor figures
PHASOR_RUN_S = 600.0
REPEATS = 3
PCS_P_SET_W = 200e3
REPO = Path(__file__).resolve().parents[2]


def _running_plant(full_bench: bool, phasor_dt_s: float | None = None) -> Plant:
    plant = Plant(PlantConfig(ring_s=30.0, genset=GensetConfig() if full_bench else None))
    if phasor_dt_s is not None:
        plant.set_fidelity("phasor", dt_s=phasor_dt_s)
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    if full_bench:
        rated_w = plant.config.pcs.s_rated_va
        plant.set_load_bank(p_w=0.3 * rated_w, q_inductive_var=0.1 * rated_w)
        plant.set_ai_load(TrainingIterations(rating_w=0.4 * rated_w, period_s=2.0))
        plant.set_genset(running=True, breaker_closed=False)
    plant.advance(0.2)
    if full_bench:
        plant.set_genset(running=True, breaker_closed=True)   # synchronised onto the grid
    plant.pcs_settings.p_ramp_w_per_s = 4 * plant.config.pcs.s_rated_va
    plant.pcs_settings.p_set_w = PCS_P_SET_W
    plant.pcs_command("start")
    plant.advance(0.6)
    return plant


def _x_realtime(plant: Plant, run_s: float = EMT_RUN_S, repeats: int = REPEATS) -> float:
    best_wall_s = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        plant.advance(run_s)
        best_wall_s = min(best_wall_s, time.perf_counter() - t0)
    return run_s / best_wall_s


def _compile_s() -> float:
    """First-call cost (numba compilation) in a fresh interpreter with an empty cache."""
    script = textwrap.dedent("""
        import time
        t0 = time.perf_counter()
        from bench.sim.plant import Plant, PlantConfig
        p = Plant(PlantConfig(ring_s=0.5))
        p.advance(0.001)
        print(time.perf_counter() - t0)
    """)
    with tempfile.TemporaryDirectory(prefix="bessbench-numba-") as cache_dir:
        env = dict(os.environ, BESSBENCH_NUMBA_CACHE_DIR=cache_dir)   # see bench/sim/__init__.py
        env.pop("NUMBA_DISABLE_JIT", None)
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=900, check=True)
    return float(out.stdout.split()[-1])


def _phasor_24h_peak_mb() -> float:
    """Peak resident memory (MB) of a fresh interpreter running the full bench for 24 h
    of plant time in phasor mode (scope ring of 30 s, SOC manager working, smoothing on)."""
    script = textwrap.dedent(f"""
        import resource
        from bench.sim.benchmark import _running_plant
        plant = _running_plant(True, phasor_dt_s={PHASOR_DT_S!r})
        plant.pcs_settings.smoothing_enabled = True
        plant.advance(24 * 3600.0)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=3600, check=True)
    return float(out.stdout.split()[-1])


def sim_benchmark() -> dict:
    """Speed figures of the plant; see the module doc."""
    _running_plant(False).advance(0.01)          # compile (or load the cache) first
    single = _x_realtime(_running_plant(False))
    full = _x_realtime(_running_plant(True))
    load_1min = os.getloadavg()[0]
    phasor = _x_realtime(_running_plant(True, PHASOR_DT_S), run_s=PHASOR_RUN_S)
    return {
        "emt_single_pcs_x_realtime": round(single, 1),
        "emt_full_bench_x_realtime": round(full, 1),
        "phasor_full_bench_x_realtime": round(phasor, 1),
        "phasor_24h_peak_mb": round(_phasor_24h_peak_mb(), 1),
        "phasor_dt_s": PHASOR_DT_S,
        "full_bench_contents": "PCS + grid impedance + RLC bank + AI load + genset (G2, breaker closed)",
        "compile_s": round(_compile_s(), 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "load_average_during_emt": round(load_1min, 2),
        "cpu_count": os.cpu_count(),
    }
