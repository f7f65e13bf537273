"""Evidence plot of an islanded-bus record: waveforms, positive-sequence voltage and the bus
frequency, with the limits and the instants that judged them drawn on."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.plots import LevelMarker, TimeMarker  # noqa: E402


@dataclass
class IslandPlot:
    title: str
    t_s: np.ndarray
    v_phases: dict[str, np.ndarray]
    i_phases: dict[str, np.ndarray]          # the current the figures are about
    cycle_t_s: np.ndarray
    v_pu: np.ndarray
    f_hz: np.ndarray
    current_pu: dict[str, np.ndarray] = field(default_factory=dict)   # per-window traces, pu
    time_markers: list[TimeMarker] = field(default_factory=list)
    level_markers: list[LevelMarker] = field(default_factory=list)    # axis "voltage_pu" | "frequency" | "current_pu"
    shaded_s: tuple[float, float] | None = None


def plot_island(plot: IslandPlot, path: Path) -> Path:
    panels = ["voltage", "current", "voltage_pu", "frequency"] + (["current_pu"] if plot.current_pu else [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.3 * len(panels)), sharex=True)
    ax = dict(zip(panels, axes))
    for name, v in plot.v_phases.items():
        ax["voltage"].plot(plot.t_s, v, lw=0.5, label=name)
    ax["voltage"].set_ylabel("V")
    for name, i in plot.i_phases.items():
        ax["current"].plot(plot.t_s, i, lw=0.5, label=name)
    ax["current"].set_ylabel("A")
    ax["voltage_pu"].plot(plot.cycle_t_s, plot.v_pu, color="tab:blue", label="V1 (pu)")
    ax["voltage_pu"].set_ylabel("V1 (pu)")
    ax["frequency"].plot(plot.cycle_t_s, plot.f_hz, color="tab:green", label="f (Hz)")
    ax["frequency"].set_ylabel("Hz")
    for name, trace in plot.current_pu.items():
        ax["current_pu"].plot(plot.cycle_t_s, trace, label=name)
    if "current_pu" in ax:
        ax["current_pu"].set_ylabel("pu")
    for marker in plot.level_markers:
        ax[marker.axis].axhline(marker.level, color=marker.color, ls="--", lw=1, label=marker.label)
    for a in axes:
        if plot.shaded_s is not None:
            a.axvspan(*plot.shaded_s, color="tab:orange", alpha=0.08)
        for marker in plot.time_markers:
            a.axvline(marker.t_s, color=marker.color, ls=":", lw=1.2)
        a.grid(True, alpha=0.3)
        a.legend(loc="upper right", fontsize=7, ncol=4)
    for marker in plot.time_markers:
        axes[0].annotate(marker.label, (marker.t_s, 1.0), xycoords=("data", "axes fraction"),
                         fontsize=7, color=marker.color, rotation=90, va="top", ha="right")
    axes[-1].set_xlabel("time from the trigger (s)")
    axes[0].set_title(plot.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
