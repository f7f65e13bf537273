"""The evidence plot of a dispatch: measured power against the commanded trajectory and limits."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclass
class DispatchPlot:
    title: str
    t_s: np.ndarray               # per-cycle P from the oscilloscope, t = 0 at the dispatch
    p_w: np.ndarray
    telemetry_t_s: np.ndarray     # the PCS's own reading
    telemetry_p_w: np.ndarray
    initial_w: float
    target_w: float
    commanded_time_s: float       # the allowed (and commanded) time to arrive
    response_time_s: float | None
    accuracy_pct: float           # ± band around the target, % of reading
    record_starts_s: tuple[float, ...] = ()


def plot_dispatch(plot: DispatchPlot, path: Path) -> Path:
    """P (kW) from the scope and from telemetry, the commanded ramp, the 90 % level, the
    allowed time and the accuracy band around the target."""
    fig, ax = plt.subplots(figsize=(11, 4.8))
    ax.plot(plot.t_s, plot.p_w / 1e3, lw=1.2, label="P from scope v·i (per cycle)")
    ax.plot(plot.telemetry_t_s, plot.telemetry_p_w / 1e3, ".", ms=3, color="tab:gray", label="P, PCS telemetry")
    ramp_t = np.array([min(plot.t_s[0], 0.0), 0.0, plot.commanded_time_s, max(plot.t_s[-1], plot.commanded_time_s)])
    ramp_p = np.array([plot.initial_w, plot.initial_w, plot.target_w, plot.target_w]) / 1e3
    ax.plot(ramp_t, ramp_p, "--", color="black", lw=1, label="commanded trajectory")
    level_90 = plot.initial_w + 0.9 * (plot.target_w - plot.initial_w)
    ax.axhline(level_90 / 1e3, color="tab:purple", ls=":", lw=1, label="90 % of the change")
    band = abs(plot.target_w) * plot.accuracy_pct / 100.0
    ax.axhspan((plot.target_w - band) / 1e3, (plot.target_w + band) / 1e3, color="tab:green", alpha=0.15,
               label=f"target ±{plot.accuracy_pct:g} %")
    ax.axvline(plot.commanded_time_s, color="tab:red", ls=":", lw=1.2, label="allowed response time")
    if plot.response_time_s is not None:
        ax.axvline(plot.response_time_s, color="tab:purple", lw=1, label=f"response {plot.response_time_s:.2f} s")
    for start_s in plot.record_starts_s[1:]:
        ax.axvline(start_s, color="tab:gray", lw=0.5, alpha=0.5)
    ax.set_xlabel("time from dispatch (s)")
    ax.set_ylabel("kW")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=7, ncol=2)
    ax.set_title(plot.title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
