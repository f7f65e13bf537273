"""Symmetrical components and the Clarke / Park transforms.

Phase order is A, B, C with B lagging A by 120 degrees for a positive-sequence set.
The Clarke transform is amplitude-invariant: a balanced set of peak amplitude V gives
|alpha + j*beta| = V. With this scaling, three-phase power is 3/2 * (v_alpha*i_alpha +
v_beta*i_beta) + 3*v_0*i_0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SequenceComponents",
    "sequence_components",
    "phases_from_sequence",
    "clarke",
    "inverse_clarke",
    "park",
    "inverse_park",
]

# The operator a = exp(j*120 deg) rotates a phasor forward by one third of a turn.
A_OPERATOR: complex = np.exp(2j * np.pi / 3)


class SequenceComponents(NamedTuple):
    zero: NDArray[np.complex128]
    positive: NDArray[np.complex128]
    negative: NDArray[np.complex128]


def sequence_components(va: ArrayLike, vb: ArrayLike, vc: ArrayLike) -> SequenceComponents:
    """Zero, positive and negative sequence phasors of the phase phasors (any matching shapes)."""
    va, vb, vc = (np.asarray(v, dtype=np.complex128) for v in (va, vb, vc))
    a, a2 = A_OPERATOR, A_OPERATOR * A_OPERATOR
    return SequenceComponents(
        zero=(va + vb + vc) / 3.0,
        positive=(va + a * vb + a2 * vc) / 3.0,
        negative=(va + a2 * vb + a * vc) / 3.0,
    )


def phases_from_sequence(
    zero: ArrayLike, positive: ArrayLike, negative: ArrayLike
) -> tuple[NDArray[np.complex128], NDArray[np.complex128], NDArray[np.complex128]]:
    """Phase phasors (A, B, C) built from sequence components; inverse of :func:`sequence_components`."""
    v0, v1, v2 = (np.asarray(v, dtype=np.complex128) for v in (zero, positive, negative))
    a, a2 = A_OPERATOR, A_OPERATOR * A_OPERATOR
    return v0 + v1 + v2, v0 + a2 * v1 + a * v2, v0 + a * v1 + a2 * v2


def clarke(
    a: ArrayLike, b: ArrayLike, c: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Amplitude-invariant Clarke transform of instantaneous phase quantities → (alpha, beta, zero)."""
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    zero = (a + b + c) / 3.0
    alpha = a - zero
    beta = (b - c) / np.sqrt(3.0)
    return alpha, beta, zero


def inverse_clarke(
    alpha: ArrayLike, beta: ArrayLike, zero: ArrayLike = 0.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Phase quantities (a, b, c) from (alpha, beta, zero); inverse of :func:`clarke`."""
    alpha, beta, zero = (np.asarray(v, dtype=np.float64) for v in (alpha, beta, zero))
    half_sqrt3_beta = 0.5 * np.sqrt(3.0) * beta
    return alpha + zero, -0.5 * alpha + half_sqrt3_beta + zero, -0.5 * alpha - half_sqrt3_beta + zero


def park(
    alpha: ArrayLike, beta: ArrayLike, theta_rad: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rotate (alpha, beta) into a frame at angle theta → (d, q).

    With theta equal to the voltage angle, d lies along the voltage and q leads it by
    90 degrees. For a balanced set cos(theta), the result is d = amplitude, q = 0.
    """
    alpha, beta, theta = (np.asarray(v, dtype=np.float64) for v in (alpha, beta, theta_rad))
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    return alpha * cos_t + beta * sin_t, -alpha * sin_t + beta * cos_t


def inverse_park(
    d: ArrayLike, q: ArrayLike, theta_rad: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(alpha, beta) from (d, q) in a frame at angle theta; inverse of :func:`park`."""
    d, q, theta = (np.asarray(v, dtype=np.float64) for v in (d, q, theta_rad))
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    return d * cos_t - q * sin_t, d * sin_t + q * cos_t
