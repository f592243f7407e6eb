"""The lead vocal of a stereo mix, scaled by ``level`` in [0, 1]: two methods and the choice.

Mixes put the lead vocal in the centre: the same signal in both channels. Everything here
estimates that centred lead and subtracts ``1 - level`` of it from each channel; at level 1 the
input comes back untouched, sample for sample (:func:`render` does not even compute).

* ``mid-side`` (the centre channel): the lead is the mid signal ``(L + R) / 2`` in the vocal
  band (180 Hz–8 kHz, a zero-phase Butterworth band-pass, so the subtraction cancels in
  phase). Cheap and thorough on the lead, but it also takes everything else centred in that
  band: the snare, the centred parts of chords, the bass's upper harmonics.
* ``soft-mask`` (spectral): per time–frequency bin of an STFT (``scipy.fft``), a weight in
  [0, 1] that the bin is lead vocal — how centred it is (the inter-channel similarity,
  ``2·Re(L·R*) / (|L|² + |R|²)``, 1 for a source in the centre, ~0.6 for one panned half-way),
  how harmonic (median-filtering separation of harmonic and percussive energy: a horizontal
  median over time against a vertical one over frequency), and whether it is in the vocal
  band. The similarity is taken over ~0.15 s (cross and power summed over neighbouring
  frames before dividing): a centred source stays in phase across frames, a wide one (a
  detuned pad, a reverb) does not. The mask is then spread to the bins next to a lead bin
  (the window spreads a harmonic over ~3 bins, vibrato moves it) and raised to a low power,
  so around what it judges lead it takes the mid almost whole, as the centre cut does, and
  elsewhere leaves the mix alone. The lead estimate is the mid STFT times that mask, **plus
  the side STFT times the mask before sharpening** (:data:`SIDE_POWER`): in a bin that is
  clearly lead (centred, harmonic, in band) what differs between the channels is mostly the
  lead's own reverb, which no mid-only method can take (the mid/side ceiling: on the tuning
  songs the lead's side is 23.5 dB below it); elsewhere the unsharpened mask is small and the
  side is left alone. So the channels' estimates differ: ``mid ± side``. Centred drums, being
  percussive, and the bass, being below the band, are kept.

When the track has synced lyrics that fit the audio, the soft mask takes nothing outside the
lead's words: what is centred between them is accompaniment.

Which one a track gets is a quality estimate (:func:`estimate`): the soft mask relies on the
lead being harmonic; when little of the centre's in-band energy is harmonic (a spoken or rapped
lead, a noisy mix) the plain centre cut removes more of the lead. Both methods are linear once
the mask is fixed, so :class:`Plan` can apply the mask computed on a mix to its stems: that is
how the ground-truth songs measure what happens to the lead and to the accompaniment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage, signal

from segue.errors import SegueError

Method = Literal["mid-side", "soft-mask"]
METHODS: tuple[Method, ...] = ("mid-side", "soft-mask")
#: The vocal band: a lead's fundamental rarely goes below, its formants and sibilance above
#: carry little energy (and hi-hats live there).
BAND_HZ = (180.0, 8000.0)
#: Band weight below the low edge: 1 - LOW_SLOPE per octave (2: gone half an octave below).
LOW_SLOPE = 2.0
#: STFT frame of ~46 ms at 44.1 kHz (scaled with the rate), hop a quarter of it.
FRAME_S = 2048 / 44100
#: Median filter lengths: ~0.1 s in time (harmonic), ~350 Hz in frequency (percussive).
HARMONIC_S = 0.1
PERCUSSIVE_HZ = 600.0
#: Centre similarity below which a bin is not lead at all, and the sharpening above it.
CENTRE_FLOOR = 0.7
CENTRE_POWER = 1.0
#: The similarity is measured over this long (cross and power summed over frames first): a
#: wide source's inter-channel phase wanders from frame to frame, a centred one's does not.
#: Tuned on songs seed 0–19 only (lead reduction / accompaniment SDR at level 0, no lyrics,
#: spread 3 and power 0.2): 1 frame → 21.1 / 9.8 dB, 0.06 s → 21.0 / 10.5, 0.1 s → 21.0 /
#: 11.1, 0.15 s → 20.9 / 11.5, 0.2 s → 20.9 / 11.7 (mid/side: 20.2 / 6.7).
CENTRE_SMOOTH_S = 0.15
#: A bin next to one judged lead (this many bins, centred, in frequency) is judged like it:
#: the window spreads each harmonic over its neighbours, vibrato moves it; without the spread
#: the lead's leakage is much of what the soft mask left behind (1 → 3 bins, one-frame
#: similarity, power 0.35: 18.5 / 11.4 → 20.2 / 10.6 dB on the tuning songs).
MASK_SPREAD_BINS = 3
#: The exponent of the harmonic/percussive soft mask (2: Wiener-like; higher: harder).
HARMONIC_POWER = 2.0
#: Below 1 the mask leans towards taking a bin whole, as the centre cut does: a
#: lead-dominated bin at 0.8 leaves less of the lead behind (similarity over 0.1 s, spread
#: 3, tuning songs: 0.35 → 20.1 / 11.9 dB, 0.25 → 20.7 / 11.4, 0.2 → 21.0 / 11.1, 0.15 →
#: 21.3 / 10.7).
MASK_POWER = 0.2
#: The side is taken with the mask raised to this (1: the product before sharpening, so only
#: bins judged clearly lead give up their side). Tuned on songs seed 0–19 only (lead reduction
#: / accompaniment SDR at level 0, no lyrics; mid mask as above): no side 21.0 / 11.5 dB;
#: the sharpened mask 24.5 / 11.3; its square root 24.4 / 11.4; **1** 24.2 / 11.5; kept
#: 0.1 s longer after a note (a decaying maximum over frames, for the reverb tail) 24.3 /
#: 11.5. Mid/side with its band from 180 Hz: 20.2 / 6.7, from 120 Hz: 22.5 / 6.1, from 30 Hz:
#: 22.5 / 0.8 (the lead's side alone leaves 23.5 dB: a mid-only ceiling).
SIDE_POWER = 1.0
#: The share of the centre's in-band energy in clearly harmonic bins (horizontal median at
#: least twice the vertical: white noise has ~5 %, a sung lead over a band most of it)
#: under which mid/side is chosen.
HARMONIC_SHARE_MIN = 0.35
#: Lyrics gate the soft mask when they fit the audio: the mask's energy per second inside the
#: sung words (± GATE_MARGIN_S) at least this many times its energy per second outside them,
#: and at least ALIGNED_SHARE of it inside. Shifted lyrics give a density below 1; another
#: synthetic song's (built alike: an intro bar, then lines) 0.69–0.89 of the energy inside,
#: the song's own 0.92. A misfit that passes only leaves more lead in: it never takes more.
ALIGNED_DENSITY = 3.0
ALIGNED_SHARE = 0.9
GATE_MARGIN_S = 0.1


@dataclass(frozen=True)
class Estimate:
    """What the choice rests on: the chosen method, the harmonic share of the centre's
    in-band energy, and the stereo width (side over mid energy; ~0 for a mono file, where no
    centre method can tell the lead from the rest)."""

    method: Method
    harmonic_share: float
    width: float
    note: str = ""
    #: given lyrics: how much denser the mask's energy is inside the sung words than outside
    #: (None without lyrics), and whether that made them gate the mask
    lyrics_density: float | None = None
    lyrics_used: bool = False


@dataclass
class Plan:
    """The lead estimate of one mix: a method and, for the soft mask, its masks over the
    vocal band's STFT rows (one for the mid, one for the side). ``lead(x)`` applies them to
    any signal of the mix's length (the mix, or a stem of it); the mix's own spectra are kept
    so that rendering it costs no second STFT.
    """

    method: Method
    rate: int
    mask: np.ndarray | None = None
    rows: slice = field(default_factory=lambda: slice(0))
    nperseg: int = 0
    estimate: Estimate | None = None
    side_mask: np.ndarray | None = None
    #: mid-side only: where its band starts (the benchmark's fair variants lower it)
    low_hz: float = BAND_HZ[0]
    _mix_mid: np.ndarray | None = field(default=None, repr=False)
    _mix_side: np.ndarray | None = field(default=None, repr=False)

    def lead(self, x: np.ndarray) -> np.ndarray:
        """The part of ``x`` (frames × 2, float) this plan takes for lead vocal, per channel."""
        left, right = x[:, 0].astype(np.float32), x[:, 1].astype(np.float32)
        mid = 0.5 * (left + right)
        if self.method == "mid-side":
            est = _band_pass(mid, self.rate, self.low_hz)
            return np.repeat(est[:, None], 2, axis=1)
        side = _stft(0.5 * (left - right), self.nperseg, self.rows)
        return self._apply(_stft(mid, self.nperseg, self.rows), side, len(mid))

    def lead_of_mix(self, x: np.ndarray) -> np.ndarray:
        """``lead(x)`` for the mix the plan was made from, reusing its spectra."""
        if self.method == "mid-side" or self._mix_mid is None or self._mix_side is None:
            return self.lead(x)
        return self._apply(self._mix_mid, self._mix_side, x.shape[0])

    def _apply(self, mid: np.ndarray, side: np.ndarray, length: int) -> np.ndarray:
        """Left ``m + s``, right ``m - s``: the masked mid and side back in time."""
        assert self.mask is not None
        m = _istft(mid * self.mask, self.nperseg, length, self.rows)
        if self.side_mask is None:
            return np.repeat(m[:, None], 2, axis=1)
        s = _istft(side * self.side_mask, self.nperseg, length, self.rows)
        return np.stack([m + s, m - s], axis=1)


def _check(x: np.ndarray) -> None:
    if x.ndim != 2 or x.shape[1] != 2:
        shape = "x".join(map(str, x.shape))
        raise SegueError(
            f"the vocal level needs a stereo track (2 channels), this one is {shape}: the lead "
            "is found by where it sits between the channels"
        )


def _nperseg(rate: int) -> int:
    n = int(2 ** round(np.log2(FRAME_S * rate)))
    return max(256, n)


def _window(nperseg: int) -> np.ndarray:
    return signal.get_window("hann", nperseg).astype(np.float32)


def _stft(x: np.ndarray, nperseg: int, rows: slice) -> np.ndarray:
    """STFT rows ``rows`` (frequency bins × frames) of ``x``: Hann frames every quarter
    frame, the signal padded by half a frame at both ends. Our own (strided frames, one real
    FFT in float32) rather than ``scipy.signal.stft``, which is several times slower here,
    and only the rows the mask uses are kept."""
    hop = nperseg // 4
    pad = nperseg // 2
    n_frames = (len(x) + 2 * pad - nperseg) // hop + 1
    padded = np.zeros((n_frames - 1) * hop + nperseg, dtype=np.float32)
    padded[pad : pad + len(x)] = x[: len(padded) - pad]
    frames = np.lib.stride_tricks.sliding_window_view(padded, nperseg)[::hop]
    spec = sp_fft.rfft(frames * _window(nperseg), axis=1)
    return np.ascontiguousarray(spec[:, rows].T)


def _istft(spec: np.ndarray, nperseg: int, length: int, rows: slice) -> np.ndarray:
    """The inverse of :func:`_stft` (rows outside ``rows`` zero): windowed overlap-add,
    divided by the summed squared window, so ``_istft(_stft(x)) == x`` up to rounding."""
    hop = nperseg // 4
    pad = nperseg // 2
    n_frames = spec.shape[1]
    full = np.zeros((n_frames, nperseg // 2 + 1), dtype=np.complex64)
    full[:, rows] = spec.T
    window = _window(nperseg)
    frames = sp_fft.irfft(full, n=nperseg, axis=1).astype(np.float32, copy=False)
    frames *= window
    # overlap-add in hops: quarter q of frame k lands on hop k + q of the output, so the
    # output as (hops × hop) is four shifted sums of the frames' quarters (and the weight
    # four shifted copies of the squared window's quarters: no tiled window per frame)
    quarters = frames.reshape(n_frames, 4, hop)
    w2 = (window**2).reshape(4, hop)
    out = np.zeros((n_frames + 7, hop), dtype=np.float32)
    weight = np.zeros((n_frames + 7, hop), dtype=np.float32)
    for q in range(4):
        out[q : q + n_frames] += quarters[:, q]
        weight[q : q + n_frames] += w2[q]
    out, weight = out.reshape(-1), weight.reshape(-1)
    y = out[pad : pad + length] / np.maximum(weight[pad : pad + length], 1e-6)
    if len(y) < length:
        y = np.pad(y, (0, length - len(y)))
    return y


def _band_pass(x: np.ndarray, rate: int, low_hz: float = BAND_HZ[0]) -> np.ndarray:
    high = min(BAND_HZ[1], 0.45 * rate)
    sos = signal.butter(4, [low_hz, high], btype="bandpass", fs=rate, output="sos")
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def _band_weights(freqs: np.ndarray) -> np.ndarray:
    """1 inside the vocal band, falling off over an octave below and half an octave above."""
    lo, hi = BAND_HZ
    with np.errstate(divide="ignore"):
        below = np.clip(LOW_SLOPE * np.log2(np.maximum(freqs, 1.0) / lo) + 1.0, 0.0, 1.0)
        above = np.clip(1.0 - 2.0 * np.log2(np.maximum(freqs, 1.0) / hi), 0.0, 1.0)
    return (below * above).astype(np.float32)


@dataclass
class _Features:
    """Per bin of the vocal band's STFT rows of a mix."""

    mid: np.ndarray  # mid STFT
    side: np.ndarray  # side STFT, (L - R) / 2
    centre: np.ndarray  # centre weight
    harmonic: np.ndarray  # harmonic weight
    clear: np.ndarray  # clearly harmonic: the horizontal median at least twice the vertical
    band: np.ndarray  # band weight per row
    rows: slice
    width: float  # side over mid energy, in the band


def _rows(rate: int, nperseg: int) -> tuple[slice, np.ndarray]:
    """The STFT rows with a band weight above zero, and those weights."""
    weights = _band_weights(np.fft.rfftfreq(nperseg, 1.0 / rate))
    inside = np.flatnonzero(weights > 0)
    rows = slice(int(inside[0]), int(inside[-1]) + 1)
    return rows, weights[rows]


def _features(x: np.ndarray, rate: int, nperseg: int) -> _Features:
    rows, band = _rows(rate, nperseg)
    left = _stft(x[:, 0], nperseg, rows)
    right = _stft(x[:, 1], nperseg, rows)
    mid = 0.5 * (left + right)
    side = 0.5 * (left - right)
    power = (left.real**2 + left.imag**2) + (right.real**2 + right.imag**2)
    cross = 2.0 * (left.real * right.real + left.imag * right.imag)
    hop_s = (nperseg // 4) / rate
    smooth = max(1, round(CENTRE_SMOOTH_S / hop_s) | 1)
    if smooth > 1:  # averages over the same frames: their ratio is the similarity over them
        cross_s = ndimage.uniform_filter1d(cross, smooth, axis=1, mode="nearest")
        power_s = ndimage.uniform_filter1d(power, smooth, axis=1, mode="nearest")
    else:
        cross_s, power_s = cross, power
    similarity = cross_s / np.maximum(power_s, 1e-12)
    centre = np.clip((similarity - CENTRE_FLOOR) / (1.0 - CENTRE_FLOOR), 0.0, 1.0) ** CENTRE_POWER
    magnitude = np.abs(mid)
    t_len = max(3, round(HARMONIC_S / hop_s) | 1)
    horizontal = ndimage.median_filter(magnitude, size=(1, t_len), mode="nearest")
    vertical = _vertical_median(magnitude, PERCUSSIVE_HZ / (rate / nperseg))
    h2, p2 = horizontal**HARMONIC_POWER, vertical**HARMONIC_POWER
    harmonic = h2 / np.maximum(h2 + p2, 1e-12)
    clear = horizontal >= 2.0 * vertical
    side_energy = float(np.sum(power)) / 2 - float(np.sum(np.abs(mid) ** 2))
    mid_energy = float(np.sum(np.abs(mid) ** 2))
    width = max(0.0, side_energy) / max(mid_energy, 1e-12)
    return _Features(mid, side, centre.astype(np.float32), harmonic, clear, band, rows, width)


def _vertical_median(magnitude: np.ndarray, bins: float) -> np.ndarray:
    """The median over ``bins`` frequency bins, computed on pairs of bins averaged (half the
    rows, half the kernel: four times cheaper, and the percussive estimate is a broad one)."""
    rows = magnitude.shape[0] - magnitude.shape[0] % 2
    pooled = 0.5 * (magnitude[0:rows:2] + magnitude[1:rows:2])
    length = max(3, round(bins / 2) | 1)
    filtered = ndimage.median_filter(pooled, size=(length, 1), mode="nearest")
    out = np.repeat(filtered, 2, axis=0)
    if out.shape[0] < magnitude.shape[0]:
        out = np.concatenate([out, out[-1:]], axis=0)
    return out


def _estimate(feat: _Features) -> Estimate:
    energy = (feat.mid.real**2 + feat.mid.imag**2) * feat.centre * feat.band[:, None]
    total = float(energy.sum())
    share = float(energy[feat.clear].sum()) / total if total > 0 else 0.0
    if feat.width < 1e-4:
        note = "mono: the lead cannot be told from the rest by position; everything centred moves"
    else:
        note = ""
    method: Method = "soft-mask" if share >= HARMONIC_SHARE_MIN else "mid-side"
    return Estimate(method, share, feat.width, note)


def estimate(x: np.ndarray, rate: int) -> Estimate:
    """The method for this track (see the module docstring), from the whole track."""
    _check(x)
    return _estimate(_features(to_work(x), rate, _nperseg(rate)))


def plan(
    x: np.ndarray,
    rate: int,
    method: Method | Literal["auto"] = "auto",
    sung: Sequence[tuple[int, int]] | None = None,
) -> Plan:
    """The lead estimate for ``x`` (frames × 2, float32 in [-1, 1]) by ``method``.

    ``sung``: the (start, end) ms of the words the lead sings, from the track's synced lyrics.
    When they fit the audio (:data:`ALIGNED_DENSITY`) the soft mask is zero outside them: the
    centre between the lead's words is accompaniment, so nothing there is taken. Lyrics that
    do not fit are ignored (``estimate.lyrics_used``)."""
    _check(x)
    if method not in ("auto", *METHODS):
        raise SegueError(f"method must be auto, mid-side or soft-mask, not {method!r}")
    nperseg = _nperseg(rate)
    if method == "mid-side":
        return Plan("mid-side", rate)
    feat = _features(to_work(x), rate, nperseg)
    est = _estimate(feat)
    chosen = est.method if method == "auto" else method
    if chosen == "mid-side":
        return Plan("mid-side", rate, estimate=est)
    mask, side_mask = _masks(feat)
    if sung:
        est = _gate(mask, feat.mid, sung, rate, nperseg, est, side_mask)
    return Plan("soft-mask", rate, mask, feat.rows, nperseg, est, side_mask, feat.mid, feat.side)


def _masks(feat: _Features) -> tuple[np.ndarray, np.ndarray]:
    """The soft masks of the mid and of the side: centred × harmonic × in band, spread over
    :data:`MASK_SPREAD_BINS` neighbouring bins, raised to :data:`MASK_POWER` for the mid and to
    :data:`SIDE_POWER` for the side (see the module docstring)."""
    raw = feat.centre * feat.harmonic * feat.band[:, None]
    if MASK_SPREAD_BINS > 1:
        raw = ndimage.maximum_filter1d(raw, MASK_SPREAD_BINS, axis=0, mode="nearest")
    side = raw if SIDE_POWER == 1.0 else raw**SIDE_POWER
    return (raw**MASK_POWER).astype(np.float32), side.astype(np.float32)


def _gate(
    mask: np.ndarray,
    mid: np.ndarray,
    sung: Sequence[tuple[int, int]],
    rate: int,
    nperseg: int,
    est: Estimate,
    side_mask: np.ndarray | None = None,
) -> Estimate:
    """Zero ``mask`` and ``side_mask`` (in place) outside the sung words when they fit the
    audio."""
    hop_s = (nperseg // 4) / rate
    times = np.arange(mask.shape[1]) * hop_s
    inside = np.zeros(mask.shape[1], dtype=bool)
    for start_ms, end_ms in sung:
        inside |= (times >= start_ms / 1000 - GATE_MARGIN_S) & (
            times < end_ms / 1000 + GATE_MARGIN_S
        )
    per_frame = (mask * (mid.real**2 + mid.imag**2)).sum(axis=0)
    n_in, n_out = int(inside.sum()), int((~inside).sum())
    if n_in == 0 or n_out == 0:
        return replace(est, lyrics_density=None)
    density_in = float(per_frame[inside].sum()) / n_in
    density_out = float(per_frame[~inside].sum()) / n_out
    density = density_in / max(density_out, 1e-12)
    share = float(per_frame[inside].sum()) / max(float(per_frame.sum()), 1e-12)
    used = density >= ALIGNED_DENSITY and share >= ALIGNED_SHARE
    if used:
        mask[:, ~inside] = 0.0
        if side_mask is not None:
            side_mask[:, ~inside] = 0.0
    return replace(est, lyrics_density=density, lyrics_used=used)


def to_work(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def render(
    x: np.ndarray,
    rate: int,
    level: float,
    method: Method | Literal["auto"] = "auto",
    sung: Sequence[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, Plan | None]:
    """``x`` with its lead vocal scaled by ``level``; at 1 it is ``x`` itself, untouched.
    Returns the render and the plan used (None at level 1)."""
    if not 0.0 <= level <= 1.0 or level != level:
        raise SegueError(f"the vocal level is between 0 and 1, not {level}")
    _check(x)
    if level == 1.0:
        return x, None
    chosen = plan(x, rate, method, sung)
    out = to_work(x) - np.float32(1.0 - level) * chosen.lead_of_mix(x)
    return out, chosen
