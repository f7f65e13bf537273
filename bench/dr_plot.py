"""Evidence plot of plan DR: the PCS's own record laid over the bench's capture of the same event."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclass
class RecordOverlayPlot:
    title: str
    bench_t_s: np.ndarray                  # s from the bench trigger of this event
    bench_v: dict[str, np.ndarray]
    bench_i: dict[str, np.ndarray]
    record_t_s: np.ndarray                 # the record's samples on the same axis (offset applied)
    record_v: dict[str, np.ndarray]
    record_i: dict[str, np.ndarray]
    record_pq: dict[str, np.ndarray]       # e.g. {"P (kW)": ..., "Q (kvar)": ...}
    record_status: dict[str, np.ndarray]
    record_trigger_s: float
    onsets_s: dict[str, float | None] = field(default_factory=dict)   # label -> time on the axis


def plot_record_overlay(plot: RecordOverlayPlot, path: Path) -> Path:
    """Voltages and currents (bench thin grey, record coloured dots), the record's P/Q and its
    status channels; the record's pre-trigger stretch shaded, trigger and onsets marked."""
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True,
                             gridspec_kw={"height_ratios": [3, 3, 2, 1.6]})
    for ax, bench, record, unit in ((axes[0], plot.bench_v, plot.record_v, "V"),
                                    (axes[1], plot.bench_i, plot.record_i, "A")):
        for name, y in bench.items():
            ax.plot(plot.bench_t_s, y, color="0.6", lw=0.6)
        for name, y in record.items():
            ax.plot(plot.record_t_s, y, ".", ms=2.0, label=f"record {name}")
        ax.plot([], [], color="0.6", lw=0.6, label="bench capture")
        ax.set_ylabel(unit)
        if not record:
            ax.text(0.5, 0.5, "not in the PCS's record", transform=ax.transAxes, ha="center",
                    color="tab:red", fontsize=12)
    for name, y in plot.record_pq.items():
        axes[2].plot(plot.record_t_s, y, label=name)
    axes[2].set_ylabel("record P, Q")
    for offset, (name, bits) in enumerate(plot.record_status.items()):
        axes[3].step(plot.record_t_s, bits.astype(float) * 0.8 + offset, where="post", label=name)
    axes[3].set_yticks(range(len(plot.record_status)), list(plot.record_status), fontsize=7)
    axes[3].set_ylabel("status")
    if plot.record_t_s.size:
        for ax in axes:
            ax.axvspan(plot.record_t_s[0], plot.record_trigger_s, color="tab:blue", alpha=0.07)
    for ax in axes:
        ax.axvline(plot.record_trigger_s, color="tab:blue", ls="--", lw=1)
        for (label, t_s), color in zip(plot.onsets_s.items(), ("tab:green", "tab:red", "tab:purple")):
            if t_s is not None:
                ax.axvline(t_s, color=color, ls=":", lw=1.2)
        ax.grid(True, alpha=0.3)
    axes[0].annotate("record pre-trigger", (plot.record_trigger_s, 1.0), xycoords=("data", "axes fraction"),
                     fontsize=7, color="tab:blue", va="top", ha="right")
    for (label, t_s), color in zip(plot.onsets_s.items(), ("tab:green", "tab:red", "tab:purple")):
        if t_s is not None:
            axes[1].annotate(label, (t_s, 0.02), xycoords=("data", "axes fraction"), fontsize=7,
                             color=color, rotation=90, va="bottom", ha="right")
    for ax in axes[:3]:
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1].set_xlabel("time from the bench trigger of this event (s); record placed with the PCS clock offset")
    axes[0].set_title(plot.title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
