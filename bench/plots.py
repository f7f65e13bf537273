"""Plots people look at instead of reading tables: waveforms with the limits drawn on them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclass
class TimeMarker:
    t_s: float
    label: str
    color: str = "tab:red"


@dataclass
class LevelMarker:
    axis: str          # which panel: "voltage", "current", "power", "pu"
    level: float
    label: str
    color: str = "tab:red"


@dataclass
class RideThroughPlot:
    title: str
    t_s: np.ndarray
    v_phases: dict[str, np.ndarray]
    i_phases: dict[str, np.ndarray]
    cycle_t_s: np.ndarray
    p_w: np.ndarray
    q_var: np.ndarray
    disturbance_s: tuple[float, float]
    pu_traces: dict[str, np.ndarray] = field(default_factory=dict)
    time_markers: list[TimeMarker] = field(default_factory=list)
    level_markers: list[LevelMarker] = field(default_factory=list)


def plot_ride_through(plot: RideThroughPlot, path: Path) -> Path:
    """Per-phase voltage and current, P and Q, per-unit traces; disturbance shaded, limits drawn."""
    panels = ["voltage", "current", "power"] + (["pu"] if plot.pu_traces else [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.6 * len(panels)), sharex=True)
    ax = dict(zip(panels, axes))
    for name, v in plot.v_phases.items():
        ax["voltage"].plot(plot.t_s, v, lw=0.6, label=name)
    ax["voltage"].set_ylabel("V")
    for name, i in plot.i_phases.items():
        ax["current"].plot(plot.t_s, i, lw=0.6, label=name)
    ax["current"].set_ylabel("A")
    ax["power"].plot(plot.cycle_t_s, plot.p_w / 1e3, label="P (kW)")
    ax["power"].plot(plot.cycle_t_s, plot.q_var / 1e3, label="Q (kvar)")
    ax["power"].set_ylabel("kW / kvar")
    for name, trace in plot.pu_traces.items():
        ax["pu"].plot(plot.cycle_t_s, trace, label=name)
    if "pu" in ax:
        ax["pu"].set_ylabel("pu")
    for marker in plot.level_markers:
        ax[marker.axis].axhline(marker.level, color=marker.color, ls="--", lw=1, label=marker.label)
    start_s, end_s = plot.disturbance_s
    for a in axes:
        a.axvspan(start_s, end_s, color="tab:orange", alpha=0.08)
        for marker in plot.time_markers:
            a.axvline(marker.t_s, color=marker.color, ls=":", lw=1.2)
        a.grid(True, alpha=0.3)
        a.legend(loc="upper right", fontsize=7, ncol=4)
    for marker in plot.time_markers:
        axes[0].annotate(marker.label, (marker.t_s, 1.0), xycoords=("data", "axes fraction"),
                         fontsize=7, color=marker.color, rotation=90, va="top", ha="right")
    axes[-1].set_xlabel("time from disturbance start (s)")
    axes[0].set_title(plot.title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
