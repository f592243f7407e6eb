"""The lead vocal's level, measured on synthetic multi-stem songs whose stems are known: level 1
gives the input back bit for bit, level 0 takes the lead out and keeps the accompaniment, the
soft mask keeps more of it (background vocals included) than the centre channel, and the
choice between them follows the quality estimate."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from segue.data.lyrics import parse_lrc
from segue.errors import SegueError
from segue.sing.audio import Audio, from_float, read_audio, to_float, write_wav
from segue.sing.songs import Song, render_song
from segue.sing.vocals import Plan, estimate, plan, render


def _db(reference: np.ndarray, error: np.ndarray) -> float:
    """10·log10(‖ref‖² / ‖error‖²): SDR when ``error`` is ref − estimate."""
    return float(10 * np.log10(np.sum(reference**2) / np.sum(error**2)))


@pytest.fixture(scope="module")
def song() -> Song:
    return render_song(3, seconds=8.0)


def test_the_song_is_its_stems_deterministic_and_sung_where_its_lyrics_say(song: Song) -> None:
    assert set(song.stems) == {"lead", "background", "bass", "drums", "chords"}
    np.testing.assert_allclose(sum(song.stems.values()), song.mix, atol=1e-5)
    again = render_song(3, seconds=8.0)
    assert np.array_equal(again.mix, song.mix) and again.lrc == song.lrc
    assert not np.array_equal(render_song(4, seconds=8.0).mix[:1000], song.mix[:1000])
    lyrics = parse_lrc(song.lrc, "song.lrc")  # the LRC reads back as the lyrics sung
    assert lyrics.lines == song.lyrics.lines and len(lyrics.lines[0].words) >= 5
    lead = song.lead.mean(axis=1) ** 2
    sung = np.zeros(len(lead), dtype=bool)
    for word in (w for line in lyrics.lines for w in line.words):
        sung[word.start_ms * song.rate // 1000 : word.end_ms * song.rate // 1000] = True
    # the lead's energy sits inside its words (the rest is reverb tail and release)
    assert lead[sung].sum() / lead.sum() > 0.95
    # centred lead, background off-centre
    left, right = song.stems["background"].T
    assert _db(song.lead[:, 0], song.lead[:, 0] - song.lead[:, 1]) > 15
    assert _db(left + right, left - right) < 6  # ±0.7: the side is 4.3 dB below the mid


def test_level_one_is_the_input_exactly(song: Song) -> None:
    out, used = render(song.mix, song.rate, 1.0)
    assert used is None and out is song.mix
    pcm = from_float(song.mix, np.dtype(np.int16))
    out16, _ = render(pcm, song.rate, 1.0)
    assert np.array_equal(out16, pcm)


@pytest.mark.parametrize("method", ["mid-side", "soft-mask"])
def test_level_zero_takes_the_lead_out_and_keeps_the_accompaniment(song: Song, method: str) -> None:
    out, p = render(song.mix, song.rate, 0.0, method)  # type: ignore[arg-type]
    assert p is not None and p.method == method
    lead_left = song.lead - p.lead(song.lead)  # the mask of the mix, applied to the lead stem
    reduction = _db(song.lead, lead_left)
    sdr = _db(song.accompaniment, song.accompaniment - out)
    assert reduction >= 14.0, reduction
    assert sdr >= (10.0 if method == "soft-mask" else 5.0), sdr
    # linear once planned: the render is the mix minus the plan's lead of the mix
    np.testing.assert_allclose(out, song.mix - p.lead(song.mix), atol=1e-6)


def test_the_soft_mask_keeps_more_than_the_centre_channel(song: Song) -> None:
    results = {}
    for method in ("mid-side", "soft-mask"):
        out, p = render(song.mix, song.rate, 0.0, method)  # type: ignore[arg-type]
        background = song.stems["background"]
        results[method] = (
            _db(song.accompaniment, song.accompaniment - out),
            _db(background, p.lead(background)),  # how far below the background its loss is
        )
    assert results["soft-mask"][0] >= results["mid-side"][0] + 3.0, results
    # background vocals stay: the soft mask takes < 10 % of their energy, the centre cut ~75 %
    assert results["soft-mask"][1] >= 10.0 and results["mid-side"][1] < 3.0, results


def test_the_soft_mask_beats_the_centre_cut_on_lead_and_accompaniment_both() -> None:
    """Issue 22's bar on four tuning songs (the fresh ones are the benchmark's), against plain
    mid/side and against mid/side with its band from 120 Hz, below every note the synthetic
    leads sing, so that the lead margin does not come from where mid/side's band starts. The
    soft mask takes the side too where it judges lead (the lead's own reverb: no mid-only
    method can take it); without that it lost on the lead here by ~1 dB (20.0 against 21.0 dB
    on average), with it it wins on every song, by ~2.5 dB on average; and by about as much
    on the songs where the band edge decides nothing (lowering it gains mid/side < 0.5 dB)."""
    cuts = {"mid-side": 180.0, "mid-side from 120 Hz": 120.0}
    names = [*cuts, "soft-mask"]
    reductions: dict[str, list[float]] = {m: [] for m in names}
    sdrs: dict[str, list[float]] = {m: [] for m in names}
    kept: dict[str, list[float]] = {m: [] for m in names}
    for seed in (3, 7, 8, 10):
        s = render_song(seed, seconds=8.0, rate=44100)
        plans = {name: Plan("mid-side", s.rate, low_hz=low) for name, low in cuts.items()}
        plans["soft-mask"] = plan(s.mix, s.rate, "soft-mask")
        for method, p in plans.items():
            out = s.mix - p.lead(s.mix)
            reductions[method].append(_db(s.lead, s.lead - p.lead(s.lead)))
            sdrs[method].append(_db(s.accompaniment, s.accompaniment - out))
            bg = s.stems["background"]  # how far below the background vocals their loss is
            kept[method].append(_db(bg, p.lead(bg)))
    lead = {m: np.array(v) for m, v in reductions.items()}
    sdr = {m: np.array(v) for m, v in sdrs.items()}
    best_cut = np.maximum(lead["mid-side"], lead["mid-side from 120 Hz"])  # per song
    # the songs where the band edge decides nothing: lowering it gains mid/side < 0.5 dB
    high = lead["mid-side from 120 Hz"] - lead["mid-side"] < 0.5
    assert 1 <= high.sum() < 4, lead  # both kinds of song are here
    assert np.all(lead["mid-side from 120 Hz"][~high] > lead["mid-side"][~high] + 3.0), lead
    margin = lead["soft-mask"] - best_cut
    assert np.all(margin > 0.5) and margin.mean() >= 1.5, (margin, lead)
    above = margin[high]  # where the band edge decides nothing
    assert above.mean() >= 1.5, (above, lead)
    assert lead["soft-mask"].mean() >= 15.0
    assert sdr["soft-mask"].mean() >= max(10.0, max(sdr[m].mean() for m in cuts) + 3.0), sdr
    # background vocals kept: a few % of their energy taken (the centre cut: ~70 %); where
    # they sing on the lead's harmonics more goes (seed 10: ~25 %), still far less than there
    soft, cut = np.array(kept["soft-mask"]), np.array(kept["mid-side"])
    assert float(np.median(soft)) >= 12.0 and np.all(soft >= cut + 3.0), kept


def test_the_soft_mask_takes_the_side_only_where_it_takes_the_lead(song: Song) -> None:
    """The side mask is the unsharpened mid mask: never above it, zero where it is zero; the
    channels' estimates are mid ± side; on a wide source alone (the pad, panned background
    vocals) it takes almost nothing of the side."""
    p = plan(song.mix, song.rate, "soft-mask")
    assert p.mask is not None and p.side_mask is not None
    assert np.all(p.side_mask <= p.mask + 1e-6)
    assert np.array_equal(p.mask == 0, p.side_mask == 0)
    est = p.lead(song.mix)
    assert not np.allclose(est[:, 0], est[:, 1])  # the side is taken too
    side = 0.5 * (song.mix[:, 0] - song.mix[:, 1])
    taken = 0.5 * (est[:, 0] - est[:, 1])
    assert _db(side, taken) >= 10.0  # most of the mix's side is left alone
    lead_side = 0.5 * (song.lead[:, 0] - song.lead[:, 1])
    lead_taken = p.lead(song.lead)
    left = lead_side - 0.5 * (lead_taken[:, 0] - lead_taken[:, 1])
    assert _db(lead_side, left) >= 3.0  # and of the lead's own side (its reverb), much


def _sung(song: Song, shift_ms: int = 0) -> list[tuple[int, int]]:
    return [
        (w.start_ms + shift_ms, w.end_ms + shift_ms)
        for line in song.lyrics.lines
        for w in line.words
        if w.singer != "bg"
    ]


def test_lyrics_that_fit_keep_the_accompaniment_between_the_words(song: Song) -> None:
    results = {}
    for label, sung in (("none", None), ("fit", _sung(song)), ("shifted", _sung(song, 1500))):
        out, p = render(song.mix, song.rate, 0.0, "soft-mask", sung)
        assert p is not None and p.estimate is not None
        results[label] = (
            p.estimate.lyrics_used,
            _db(song.lead, song.lead - p.lead(song.lead)),
            _db(song.accompaniment, song.accompaniment - out),
        )
    assert [r[0] for r in results.values()] == [False, True, False], results
    # the lead is taken as before, the accompaniment between the words is not touched
    assert abs(results["fit"][1] - results["none"][1]) < 0.5, results
    assert results["fit"][2] >= results["none"][2] + 2.0, results
    assert results["shifted"][1:] == results["none"][1:]  # ignored, not half-used
    # before the first word (less the gate's margin and a frame) neither mid nor side moves
    out, _ = render(song.mix, song.rate, 0.0, "soft-mask", _sung(song))
    quiet = int((min(start for start, _ in _sung(song)) / 1000 - 0.2) * song.rate)
    assert quiet > song.rate and np.array_equal(out[:quiet], song.mix[:quiet])


def test_a_level_in_between_scales_the_lead(song: Song) -> None:
    p = plan(song.mix, song.rate, "soft-mask")
    full = _db(song.lead, song.lead - p.lead(song.lead))
    half = _db(song.lead, song.lead - 0.5 * p.lead(song.lead))
    assert 4.0 <= half <= 6.1 < full  # at most 20·log10(2), at 0.5


def test_the_choice_follows_the_harmonic_share_of_the_centre(song: Song) -> None:
    sung = estimate(song.mix, song.rate)
    assert sung.method == "soft-mask" and sung.harmonic_share > 0.6 and sung.width > 0.01
    assert plan(song.mix, song.rate).method == "soft-mask"
    # a spoken (noise) lead in the centre: the soft mask would miss it, the centre cut wins
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(song.mix)).astype(np.float32) * 0.3
    spoken = song.accompaniment + np.stack([noise, noise], axis=1)
    said = estimate(spoken, song.rate)
    assert said.method == "mid-side" and said.harmonic_share < 0.1


def test_what_cannot_be_rendered_is_one_line(song: Song, tmp_path: Path) -> None:
    with pytest.raises(SegueError, match="stereo"):
        render(song.mix[:, :1], song.rate, 0.0)
    with pytest.raises(SegueError, match="between 0 and 1"):
        render(song.mix, song.rate, 1.5)
    flac = tmp_path / "a.flac"
    flac.write_bytes(b"fLaC")
    with pytest.raises(SegueError, match=r"a\.flac: not a readable FLAC file"):
        read_audio(flac)
    aac = tmp_path / "a.m4a"
    aac.write_bytes(b"....ftypM4A ")
    with pytest.raises(SegueError, match="convert it to WAV or FLAC"):
        read_audio(aac)
    broken = tmp_path / "b.wav"
    broken.write_bytes(b"RIFF....nonsense")
    with pytest.raises(SegueError, match="not a readable WAV"):
        read_audio(broken)


@pytest.mark.parametrize(
    ("suffix", "subtype", "lossless"),
    [(".flac", "PCM_16", True), (".flac", "PCM_24", True), (".ogg", "VORBIS", False),
     (".mp3", "MPEG_LAYER_III", False)],
)  # fmt: skip
def test_flac_ogg_and_mp3_are_read_and_sung(
    song: Song, tmp_path: Path, suffix: str, subtype: str, lossless: bool
) -> None:
    """The ``audio`` extra: compressed files decode to the samples written (exactly for FLAC),
    and the lead comes down in them as in the WAV."""
    soundfile = pytest.importorskip("soundfile", reason="the audio extra is not installed")
    path = tmp_path / f"song{suffix}"
    soundfile.write(str(path), song.mix, song.rate, subtype=subtype)
    got = read_audio(path)
    assert got.rate == song.rate and got.samples.shape[1] == 2
    assert got.samples.dtype == (np.int32 if subtype == "PCM_24" else np.int16)
    decoded = to_float(got.samples)
    if lossless:
        assert got.samples.shape == song.mix.shape
        assert np.abs(decoded - song.mix).max() < 2.0**-14  # the quantisation step only
    else:  # lossy codecs add or pad frames at the edges; the body is the song
        n = min(len(decoded), len(song.mix))
        assert abs(len(decoded) - len(song.mix)) < song.rate // 10
        lag = _best_lag(song.mix[:n, 0], decoded[:n, 0])
        aligned = decoded[lag : lag + n - 4096]
        error = song.mix[: len(aligned)] - aligned
        assert 10 * np.log10(np.sum(song.mix[: len(aligned)] ** 2) / np.sum(error**2)) > 10
    mixed, _ = render(decoded, got.rate, 0.0, "mid-side")
    lead = song.lead[: len(mixed)]
    # the lead's share of the mix falls by ≥ 10 dB (correlation of the output with the lead)
    before = float(np.dot(decoded[: len(lead), 0], lead[:, 0]))
    after = float(np.dot(mixed[: len(lead), 0], lead[:, 0]))
    assert abs(after) < abs(before) * 10 ** (-10 / 20)


def test_without_the_audio_extra_a_flac_file_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as on a core install
    flac = tmp_path / "a.flac"
    flac.write_bytes(b"fLaC")
    with pytest.raises(SegueError, match=r"install segue\[audio\] to use FLAC files"):
        read_audio(flac)


def _best_lag(reference: np.ndarray, signal: np.ndarray, window: int = 4096) -> int:
    """Where ``signal`` starts relative to ``reference`` (an encoder's priming delay)."""
    best, lag = -np.inf, 0
    for shift in range(0, window):
        score = float(np.dot(reference[: 44100 // 4], signal[shift : shift + 44100 // 4]))
        if score > best:
            best, lag = score, shift
    return lag


def test_wav_round_trip_keeps_the_sample_type(song: Song, tmp_path: Path) -> None:
    pcm = from_float(song.mix, np.dtype(np.int16))
    write_wav(tmp_path / "s.wav", Audio(song.rate, pcm))
    back = read_audio(tmp_path / "s.wav")
    assert back.rate == song.rate and back.samples.dtype == np.int16
    assert np.array_equal(back.samples, pcm)
    rate, raw = wavfile.read(tmp_path / "s.wav")
    assert rate == song.rate and raw.shape == pcm.shape
    assert np.max(np.abs(to_float(pcm) - song.mix)) < 1 / 32768 + 1e-6
