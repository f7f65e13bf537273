"""Plots of AI-load buffering (T4, and T5 on a weak grid): powers with the limits drawn."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.buffering_procedure import AiLoadRecord  # noqa: E402
from bench.weak_grid import PccVoltageFigures  # noqa: E402


def plot_buffering(path: Path, *, title: str, record: AiLoadRecord, it_base_w: float, ramp_limit_w_per_s: float,
                   ramp_window_s: float, tracking_window_s: float) -> Path:
    """IT load, grid-side and PCS power, the ideal ramp-limited IT load, and the permitted slope
    drawn through the worst grid-side ramp window."""
    t_s, it_load_w, grid_w, pcs_w = record.t_s, record.it_load_w, record.grid_w, record.pcs_w
    fig, meter = record.figures, record.readings
    figure, (power_ax, error_ax) = plt.subplots(2, 1, figsize=(14, 7), sharex=True,
                                                gridspec_kw={"height_ratios": [3, 1]})
    kw = 1e-3
    power_ax.plot(t_s, it_load_w * kw, color="tab:gray", lw=1.2, label="IT load (PCC balance, scope)")
    if len(meter):
        power_ax.plot(meter.index, meter["p_w"] * kw, ".", color="tab:olive", ms=3, label="IT load (AC load meter)")
    power_ax.plot(t_s, fig.ideal_at_permitted_w * kw, ":", color="tab:red", lw=1.0,
                  label=f"IT load ramp-limited at the permitted {ramp_limit_w_per_s * kw:.0f} kW/s")
    power_ax.plot(t_s, fig.ideal_w * kw, "--", color="tab:green", lw=1.2,
                  label=f"IT load ramp-limited at the held {fig.held_ramp_fraction_per_s * it_base_w * kw:.0f} kW/s "
                        "(tracking reference)")
    power_ax.plot(t_s, grid_w * kw, color="tab:blue", lw=1.5, label="grid side (two-wattmeter)")
    power_ax.plot(t_s, pcs_w * kw, color="tab:orange", lw=1.0, label="PCS output")
    # the permitted slope, anchored where the grid-side ramp was steepest
    t_from = fig.ramp_at_s
    p_from = float(np.interp(t_from, t_s, grid_w))
    p_to = float(np.interp(t_from + ramp_window_s, t_s, grid_w))
    direction = 1.0 if p_to >= p_from else -1.0
    power_ax.plot([t_from, t_from + ramp_window_s],
                  [p_from * kw, (p_from + direction * ramp_limit_w_per_s * ramp_window_s) * kw],
                  color="tab:red", lw=2.5, label="ramp limit (steepest window)")
    power_ax.axvline(0.0, color="black", lw=0.6, ls=":")
    power_ax.set_ylabel("active power (kW)")
    power_ax.set_title(title)
    power_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    power_ax.grid(alpha=0.3)
    error_ax.plot(t_s, (grid_w - fig.ideal_w) * kw, color="tab:purple", lw=1.0)
    error_ax.axvline(fig.tracking_error_at_s, color="tab:red", lw=0.8, ls="--")
    error_ax.set_ylabel(f"grid − reference (kW)\nper cycle; judged on\n{tracking_window_s:g} s averages", fontsize=8)
    error_ax.set_xlabel("time from the profile start (s)")
    error_ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_weak_grid(path: Path, *, title: str, record: AiLoadRecord, voltage: PccVoltageFigures, it_base_w: float,
                   v_band_pu: tuple[float, float]) -> Path:
    """Powers with the tracking reference above, the PCC voltage of each phase and its band below."""
    figure, (power_ax, voltage_ax) = plt.subplots(2, 1, figsize=(14, 7), sharex=True,
                                                  gridspec_kw={"height_ratios": [3, 2]})
    kw = 1e-3
    fig = record.figures
    power_ax.plot(record.t_s, record.it_load_w * kw, color="tab:gray", lw=1.2, label="IT load (PCC balance)")
    power_ax.plot(record.t_s, fig.ideal_w * kw, "--", color="tab:green", lw=1.2,
                  label=f"IT load ramp-limited at the held {fig.held_ramp_fraction_per_s * it_base_w * kw:.0f} kW/s")
    power_ax.plot(record.t_s, record.grid_w * kw, color="tab:blue", lw=1.5, label="grid side (two-wattmeter)")
    power_ax.plot(record.t_s, record.pcs_w * kw, color="tab:orange", lw=1.0, label="PCS output")
    power_ax.set_ylabel("active power (kW)")
    power_ax.set_title(title)
    power_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    power_ax.grid(alpha=0.3)
    for phase, v_pu in zip("abc", voltage.v_pu):
        voltage_ax.plot(voltage.t_s, v_pu, lw=1.0, label=f"v_{phase} (per-cycle rms)")
    for bound in v_band_pu:
        voltage_ax.axhline(bound, color="tab:red", lw=1.0, ls="--")
    voltage_ax.set_ylabel("PCC voltage (pu)")
    voltage_ax.set_xlabel("time from the profile start (s)")
    voltage_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    voltage_ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
