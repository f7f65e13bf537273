"""Captures started by the signal itself: the scope's edge trigger on one of its inputs.

The shared capture (bench/procedures.capture_transient) starts the scope from the grid
simulator's trigger output, but an island has no grid simulator transient: a dead bus being
energised, or a load stepped on a live island, is caught the way a lab catches it, by an edge
trigger on a waveform (the bus voltage rising through a level, a phase current rising past a
level between its before and after peaks).
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from bench.capture import CaptureSettings, WaveformCapture
from bench.clock import BenchClock


def capture_on_edge(capture: WaveformCapture, clock: BenchClock, settings: CaptureSettings, names: list[str], *,
                    trigger_on: str, level: float, slope: str, stimulus: Callable[[], None], test_name: str,
                    capture_name: str, metadata: dict | None = None) -> pd.DataFrame:
    """Arm the scope on an edge of channel `trigger_on` crossing `level` (volts or amperes at
    the probe tip), wait for its pre-trigger record, run the stimulus, and return the capture
    (already on disk). The trigger must come from the stimulus within the record's
    post-trigger time."""
    capture.arm(settings, names)                  # verticals, timebase, single sequence
    channel = capture.channel(trigger_on)
    # retarget the armed scope from its AUX input to the waveform (scope volts at the input)
    capture.scope.trigger_edge(channel.channel, level / channel.ratio, slope)
    clock.wait(settings.pretrigger_s)             # the pre-trigger record fills first
    try:
        stimulus()
    except BaseException:
        # an armed scope left waiting would trigger on whatever comes next (and a scope still
        # acquiring ignores the next arm): its safe state stops the acquisition
        capture.scope.safe_state()
        raise
    capture.wait_complete(timeout_s=10.0 + settings.duration_s)
    return capture.fetch(test_name, capture_name, names,
                         metadata={"trigger": f"{trigger_on} {slope} edge through {level:g}", **(metadata or {})})
