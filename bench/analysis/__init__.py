"""Waveform analysis: arrays in, numbers out.

Pure numpy/scipy functions with no I/O, no plotting and no knowledge of instruments.
Plans turn their results into measurements and verdicts. Units are in the names:
``_s``, ``_hz``, ``_pu``, ``_w``, ``_var``. Sample rates, nominal frequencies and bases
are always arguments, never constants.
"""

from .cycles import PerCyclePhasor, PerCycleRms, per_cycle_phasor, per_cycle_rms
from .frequency import FrequencySeries, RocofSeries, frequency_from_phasors, frequency_hz, rocof_hz_per_s
from .oscillation import (
    BandOscillation,
    DominantOscillation,
    band_oscillation,
    band_oscillation_amplitude,
    dominant_oscillation,
)
from .power import (
    ActiveReactiveCurrent,
    InstantaneousPower,
    PerCyclePower,
    active_reactive_current_pu,
    instantaneous_power,
    per_cycle_power,
    phasor_power,
)
from .ramp import RampRate, TrackingError, max_ramp_rate, ramp_rate_at, tracking_error
from .ride_through import (
    BandViolation,
    BelowThreshold,
    FollowsReferenceResult,
    RideThroughCurve,
    RideThroughRegion,
    current_ceased,
    first_time_reaching,
    follows_reference,
    mandatory_region_duration,
    stays_within_band,
    time_below,
)
from .sequence import (
    SequenceComponents,
    clarke,
    inverse_clarke,
    inverse_park,
    park,
    phases_from_sequence,
    sequence_components,
)
from .step_response import DampedOscillation, StepMetrics, damping_ratio_and_frequency, step_response

__all__ = [
    "ActiveReactiveCurrent",
    "BandOscillation",
    "BandViolation",
    "BelowThreshold",
    "DampedOscillation",
    "DominantOscillation",
    "FollowsReferenceResult",
    "FrequencySeries",
    "InstantaneousPower",
    "PerCyclePhasor",
    "PerCyclePower",
    "PerCycleRms",
    "RampRate",
    "RideThroughCurve",
    "RideThroughRegion",
    "RocofSeries",
    "SequenceComponents",
    "StepMetrics",
    "TrackingError",
    "active_reactive_current_pu",
    "band_oscillation",
    "band_oscillation_amplitude",
    "clarke",
    "current_ceased",
    "damping_ratio_and_frequency",
    "dominant_oscillation",
    "first_time_reaching",
    "follows_reference",
    "frequency_from_phasors",
    "frequency_hz",
    "instantaneous_power",
    "inverse_clarke",
    "inverse_park",
    "mandatory_region_duration",
    "max_ramp_rate",
    "park",
    "per_cycle_phasor",
    "per_cycle_power",
    "per_cycle_rms",
    "phases_from_sequence",
    "phasor_power",
    "ramp_rate_at",
    "rocof_hz_per_s",
    "sequence_components",
    "stays_within_band",
    "step_response",
    "time_below",
    "tracking_error",
]
