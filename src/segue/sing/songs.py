"""Synthetic multi-stem songs with their lyrics: the ground truth the vocal level is measured on.

Why synthesise: separation quality can only be measured against the stems a mix was made of,
and no multitrack set can be downloaded here. A song from :func:`render_song` is deterministic
by seed and is made like a small pop mix:

* **lead vocal**: a harmonic voice (additive synthesis up to 7 kHz, a source falling 6 dB per
  octave) through the formants of the vowel of each word (three resonances), following a
  pitch contour with glides between notes and a 5–6 Hz vibrato that fades in on held notes, a
  breathy consonant at each word's start; centred, with a little reverb;
* **background vocals**: two "ooh" voices a third and a fifth above, panned left and right
  (±0.7), answering the lead in the second bar of each line;
* **bass** (root notes, centred), **drums** (kick and snare centred, hi-hats right), **chords**
  (a pad whose left and right copies are detuned, so it is wide, as pads are);
* a stereo reverb (exponentially decaying noise, different per channel) on the vocals, the
  pad and the snare.

Every stem is returned as it sounds in the mix (its reverb included), so ``mix`` is exactly
the sum of the stems; the lyrics (enhanced LRC, :func:`segue.data.lyrics.to_lrc`) are the
words the lead sings, at the times it sings them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from segue.data.lyrics import BACKGROUND, LEAD, Line, Lyrics, Word, to_lrc
from segue.data.synth.names import ADJECTIVES, NOUNS, VERBS

#: Formant frequencies and bandwidths (Hz) of sung vowels.
VOWELS = {
    "a": ((800, 1200, 2800), (80, 90, 120)),
    "e": ((500, 1800, 2600), (70, 100, 120)),
    "i": ((300, 2300, 3000), (50, 100, 120)),
    "o": ((500, 900, 2600), (70, 80, 120)),
    "u": ((320, 800, 2400), (50, 80, 120)),
}
#: Level of the breathy consonant at each word's start, against the voiced part.
BREATH = 0.1
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4))


@dataclass(frozen=True)
class Song:
    """A rendered song: the stereo ``mix`` (frames × 2, float32), its ``stems`` by name
    (``lead``, ``background``, ``bass``, ``drums``, ``chords``; they sum to the mix), and the
    lyrics the lead sings."""

    rate: int
    mix: np.ndarray
    stems: dict[str, np.ndarray]
    lyrics: Lyrics

    @property
    def lead(self) -> np.ndarray:
        return self.stems["lead"]

    @property
    def accompaniment(self) -> np.ndarray:
        """Everything but the lead, background vocals included (what level 0 should keep)."""
        return self.mix - self.stems["lead"]

    @property
    def lrc(self) -> str:
        return to_lrc(self.lyrics)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan, -1 left … +1 right."""
    theta = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(theta), mono * np.sin(theta)], axis=1)


def _env(n: int, rate: int, attack_s: float, release_s: float) -> np.ndarray:
    env = np.ones(n, dtype=np.float64)
    a = min(n, max(1, int(attack_s * rate)))
    r = min(n - a, max(1, int(release_s * rate)))
    env[:a] = np.linspace(0.0, 1.0, a)
    if r > 0:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _voice(
    rate: int,
    n: int,
    f0: np.ndarray,
    amp: np.ndarray,
    formants: np.ndarray,
    bandwidths: np.ndarray,
    rng: np.random.Generator,
    breath: np.ndarray | None = None,
) -> np.ndarray:
    """Additive voice: harmonics of ``f0`` (per sample) weighted by the formant envelope
    (per-sample formant frequencies ``formants``: n × 3), times ``amp``."""
    phase = 2.0 * np.pi * np.cumsum(f0) / rate
    out = np.zeros(n, dtype=np.float64)
    top = min(7000.0, 0.45 * rate)
    max_k = int(top / max(1.0, float(f0[amp > 0].min(initial=100.0))))
    for k in range(1, max_k + 1):
        fk = k * f0
        alive = fk < top
        if not alive.any():
            break
        gain = np.full(n, 0.02)
        for i in range(3):
            gain += (1.0 / (1 + i)) / (1.0 + ((fk - formants[:, i]) / (bandwidths[i] / 2)) ** 2)
        out += np.where(alive, gain / k, 0.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    out *= amp
    if breath is not None:
        noise = rng.standard_normal(n)
        sos = signal.butter(
            2, [2000, min(9000, 0.45 * rate)], btype="bandpass", fs=rate, output="sos"
        )
        out += BREATH * signal.sosfilt(sos, noise) * breath
    return out


def _reverb(rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Two decorrelated impulse responses (n × 2) of unit energy: decaying noise, 20 ms late."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    decay = np.exp(-6.9 * t / seconds)  # -60 dB at the end
    ir = rng.standard_normal((n, 2)) * decay[:, None]
    ir[: int(0.02 * rate)] = 0.0
    return ir / np.sqrt((ir**2).sum(axis=0, keepdims=True))


def _wet(dry: np.ndarray, ir: np.ndarray, send: float) -> np.ndarray:
    """``dry`` (n × 2) plus its reverb at ``send`` (energy ratio of the tail to the dry)."""
    mono = dry.mean(axis=1)
    tails = np.stack([signal.fftconvolve(mono, ir[:, c])[: len(mono)] for c in range(2)], axis=1)
    scale = np.sqrt(send * (dry**2).sum() / max((tails**2).sum(), 1e-12))
    return dry + scale * tails


def _words(rng: np.random.Generator, count: int) -> list[str]:
    pool = [w.lower() for w in (*NOUNS, *ADJECTIVES, *VERBS)]
    return [str(pool[i]) for i in rng.integers(0, len(pool), count)]


def _vowel(word: str) -> str:
    for ch in word:
        if ch in VOWELS:
            return ch
    return "a"


def render_song(seed: int, *, seconds: float = 16.0, rate: int = 22050) -> Song:
    """A song of about ``seconds`` (whole bars) at ``rate``, deterministic by ``seed``."""
    rng = np.random.default_rng([seed, 2024])
    bpm = float(rng.uniform(90, 130))
    beat = 60.0 / bpm
    bar = 4 * beat
    n_bars = max(3, int(seconds / bar))  # an intro bar and one sung line at least
    n = int(n_bars * bar * rate) + int(0.5 * rate)
    root = int(rng.integers(33, 40))  # bass root, A1..E2, where bass lines sit
    low_voice = bool(rng.random() < 0.5)  # a low (tenor) or a high (alto/soprano) lead
    voice_lo = 52 if low_voice else 60  # E3 or C4: the lowest note of the lead's range
    progression = _PROGRESSIONS[int(rng.integers(0, len(_PROGRESSIONS)))]

    def chord_notes(degree: int) -> list[int]:
        base = root + 24  # the pad and the background vocals: two octaves above the bass
        return [base + _MAJOR[(degree + s) % 7] + 12 * ((degree + s) // 7) for s in (0, 2, 4)]

    # -- the lead: a line per two bars from bar 1, words on eighths --------------------------
    f0 = np.full(n, 220.0)
    amp = np.zeros(n)
    breath = np.zeros(n)
    formants = np.zeros((n, 3))
    bws = np.array((80.0, 90.0, 120.0))
    lines: list[Line] = []
    t = bar
    melody = voice_lo + 4
    while t + 2 * bar <= n_bars * bar:
        count = int(rng.integers(5, 8))
        words = _words(rng, count)
        line_words: list[Word] = []
        w_t = t
        for word in words:
            held = beat / 2 * (2 if rng.random() < 0.35 else 1)
            degree = int(rng.integers(-2, 3))
            melody = int(np.clip(melody + degree, voice_lo, voice_lo + 12))
            s0, s1 = int(w_t * rate), int((w_t + held * 0.9) * rate)
            f0[s0:] = _midi_hz(melody)
            amp[s0:s1] = _env(s1 - s0, rate, 0.02, 0.05)
            breath[s0 : s0 + int(0.03 * rate)] = 1.0
            formants[s0:] = VOWELS[_vowel(word)][0]
            start_ms, end_ms = round(w_t * 100) * 10, round((w_t + held) * 100) * 10
            line_words.append(Word(word, start_ms, end_ms, LEAD))
            w_t += held
        line_words[0] = Word(
            words[0].capitalize(), *(line_words[0].start_ms, line_words[0].end_ms, LEAD)
        )
        text = " ".join(w.text for w in line_words)
        lines.append(
            Line(line_words[0].start_ms, line_words[-1].end_ms, text, LEAD, tuple(line_words), True)
        )
        t += 2 * bar
    # glides between notes (a 40 ms one-pole on log-frequency) and vibrato fading in
    glide = signal.lfilter(
        [1 - np.exp(-1 / (0.04 * rate))],
        [1, -np.exp(-1 / (0.04 * rate))],
        np.log(f0),
        zi=[np.log(f0[0]) * np.exp(-1 / (0.04 * rate))],
    )[0]
    rate_hz = rng.uniform(5.0, 6.0)
    onset = np.minimum(1.0, _since_rise(amp > 0, rate) / 0.25)
    vibrato = 1.0 + 0.015 * onset * np.sin(2 * np.pi * rate_hz * np.arange(n) / rate)
    f0_lead = np.exp(glide) * vibrato
    formants = signal.lfilter(
        [0.01], [1, -0.99], formants, axis=0, zi=np.outer([0.99], formants[0])
    )[0]
    lead_mono = _voice(rate, n, f0_lead, amp, formants, bws, rng, breath)

    # -- background vocals: "ooh" answering in the second bar of every line ---------------
    bg_amp = np.zeros(n)
    bg_f0 = np.zeros((n, 2))
    for k, line in enumerate(lines):
        b0, b1 = line.start_ms / 1000 + bar, line.start_ms / 1000 + 2 * bar
        s0, s1 = int(b0 * rate), min(n, int(b1 * rate))
        bg_amp[s0:s1] = _env(s1 - s0, rate, 0.15, 0.3)
        chord = chord_notes(progression[(k * 2 + 1) % 4])
        bg_f0[s0:s1, 0] = _midi_hz(chord[1] + 12)
        bg_f0[s0:s1, 1] = _midi_hz(chord[2] + 12)
        ooh = Word("(ooh)", round(b0 * 100) * 10, round(min(b1, n / rate) * 100) * 10, BACKGROUND)
        words = tuple(sorted((*line.words, ooh), key=lambda w: w.start_ms))  # as LRC reads
        lines[k] = Line(line.start_ms, ooh.end_ms, line.text, LEAD, words, True)
    bg_f0[bg_f0 == 0] = 300.0
    ooh = np.tile(VOWELS["u"][0], (n, 1)).astype(float)
    background = sum(
        _pan(
            _voice(
                rate,
                n,
                bg_f0[:, v] * (1 + 0.004 * np.sin(2 * np.pi * 4.7 * np.arange(n) / rate + v)),
                bg_amp,
                ooh,
                np.array((50.0, 80, 120)),
                rng,
            ),
            pan,
        )
        for v, pan in ((0, -0.7), (1, 0.7))
    )

    # -- bass, drums, chords --------------------------------------------------------------
    times = np.arange(n) / rate
    bass = np.zeros(n)
    chords = np.zeros((n, 2))
    for b in range(n_bars):
        degree = progression[b % 4]
        s0, s1 = int(b * bar * rate), min(n, int((b + 1) * bar * rate))
        seg = times[s0:s1] - times[s0]
        f_bass = _midi_hz(root + _MAJOR[degree % 7] - 12 * (degree >= 5))
        pulse = np.exp(-3.0 * (seg % beat))
        bass[s0:s1] = (
            np.sin(2 * np.pi * f_bass * seg) + 0.3 * np.sin(4 * np.pi * f_bass * seg)
        ) * pulse
        pad = _env(s1 - s0, rate, 0.08, 0.1)
        for note in chord_notes(degree):
            f = _midi_hz(note)
            for c, detune in ((0, -0.004), (1, 0.004)):
                tone = sum(
                    np.sin(2 * np.pi * f * (1 + detune) * h * seg + c) / h for h in range(1, 7)
                )
                chords[s0:s1, c] += tone * pad
    drums = np.zeros((n, 2))
    hits = int(n_bars * 8)
    for h in range(hits):
        s0 = int(h * beat / 2 * rate)
        if s0 >= n:
            break
        if h % 4 == 0:  # kick on 1 and 3
            m = min(n - s0, int(0.25 * rate))
            tt = np.arange(m) / rate
            kick = np.sin(2 * np.pi * (50 * tt + 70 * (1 - np.exp(-tt / 0.03)) * 0.03)) * np.exp(
                -tt / 0.12
            )
            drums[s0 : s0 + m] += _pan(1.2 * kick, 0.0)
        if h % 4 == 2:  # snare on 2 and 4
            m = min(n - s0, int(0.2 * rate))
            tt = np.arange(m) / rate
            snare = (0.7 * rng.standard_normal(m) + 0.5 * np.sin(2 * np.pi * 185 * tt)) * np.exp(
                -tt / 0.06
            )
            drums[s0 : s0 + m] += _pan(0.8 * snare, 0.0)
        m = min(n - s0, int(0.04 * rate))  # hi-hat on every eighth, right
        hat = signal.sosfilt(
            signal.butter(4, 0.35 * rate, btype="high", fs=rate, output="sos"),
            rng.standard_normal(m),
        )
        drums[s0 : s0 + m] += _pan(0.25 * hat * np.exp(-np.arange(m) / (0.01 * rate)), 0.4)

    ir = _reverb(rate, 1.2, rng)
    lead = _wet(_pan(lead_mono, 0.0), ir, 0.01)
    background = _wet(background, ir, 0.15)
    chords = _wet(chords, ir, 0.1)
    stems = {
        "lead": _level(lead, 1.0),
        "background": _level(background, 0.35),
        "bass": _level(_pan(bass, 0.0), 0.6),
        "drums": _level(drums, 0.6),
        "chords": _level(chords, 0.45),
    }
    mix = sum(stems.values())
    peak = float(np.abs(mix).max())
    scale = 0.9 / peak if peak > 0 else 1.0
    stems = {k: (v * scale).astype(np.float32) for k, v in stems.items()}
    mix32 = np.sum(list(stems.values()), axis=0, dtype=np.float32)
    return Song(
        rate,
        mix32,
        stems,
        Lyrics(tuple(lines), {"ti": f"Synthetic song {seed}", "by": "segue sing"}),
    )


def _level(stem: np.ndarray, rms: float) -> np.ndarray:
    """``stem`` scaled to ``rms`` relative to the others (before the mix is normalised)."""
    current = float(np.sqrt(np.mean(stem**2)))
    return stem * (rms / current) if current > 0 else stem


def _since_rise(on: np.ndarray, rate: int) -> np.ndarray:
    """Seconds since ``on`` last became true (0 where it is false)."""
    idx = np.arange(len(on))
    starts = np.where(on & ~np.concatenate(([False], on[:-1])), idx, 0)
    last = np.maximum.accumulate(starts)
    return np.where(on, (idx - last) / rate, 0.0)
