"""Audio files in and out: WAV through ``scipy.io.wavfile``, so the core needs nothing more;
FLAC, OGG (Vorbis, Opus) and MP3 through ``soundfile`` (libsndfile, bundled in its wheel), the
``audio`` extra.

Why samples keep their file's type: at vocal level 1 a render must equal its input exactly,
so a 16-bit file is rendered back to the same 16-bit samples rather than round-tripped through
floats. A compressed file is decoded to 16-bit samples when it was 16-bit or less (FLAC's
PCM_16, the lossy formats' usual depth), else to 32-bit ones, so its level-1 render is exactly
what the decoder gives. Processing itself is float32 in [-1, 1] (:func:`to_float`,
:func:`from_float`). Renders are written as WAV.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from segue.errors import SegueError
from segue.extras import install_hint

#: Extensions read without any extra.
READABLE = (".wav", ".wave")
#: Extensions read through soundfile (the ``audio`` extra).
DECODED = (".flac", ".ogg", ".oga", ".opus", ".mp3")
#: Extensions people have that segue does not decode at all: converted first.
NEEDS_DECODER = (".m4a", ".aac")
#: What a file is served as (the level-1 answer is the imported file itself); renders are WAV.
MEDIA_TYPES = {
    ".wav": "audio/wav",
    ".wave": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
}
#: libsndfile subtypes decoded to 16-bit samples; every other one to 32-bit.
_SIXTEEN_BITS = {"PCM_S8", "PCM_U8", "PCM_16", "VORBIS", "OPUS", "MPEG_LAYER_III"}


@dataclass(frozen=True)
class Audio:
    """Samples ``(frames, channels)`` in the file's own type, and the sample rate."""

    rate: int
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / self.rate


def read_audio(path: Path) -> Audio:
    """An audio file's samples as ``(frames, channels)``; a one-line error for anything else."""
    suffix = path.suffix.lower()
    if suffix in NEEDS_DECODER:
        raise SegueError(
            f"{path}: {suffix[1:].upper()} needs a decoder segue does not install; convert it "
            f"to WAV or FLAC (ffmpeg -i '{path.name}' '{path.stem}.flac') and import that"
        )
    if suffix in DECODED:
        return _decoded(path)
    if suffix not in READABLE:
        known = ", ".join(READABLE + DECODED)
        raise SegueError(f"{path}: not an audio file segue reads ({known})")
    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as exc:
        raise SegueError(f"{path}: not a readable WAV file ({exc})") from exc
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0:
        raise SegueError(f"{path}: the WAV file holds no samples")
    return Audio(int(rate), data)


def _decoded(path: Path) -> Audio:
    try:
        import soundfile
    except ModuleNotFoundError:
        what = f"{path.suffix[1:].upper()} files"
        raise SegueError(
            f"{path}: {install_hint('audio', what)}, or convert it to WAV "
            f"(ffmpeg -i '{path.name}' '{path.stem}.wav')"
        ) from None
    try:
        info = soundfile.info(str(path))
        dtype = "int16" if info.subtype in _SIXTEEN_BITS else "int32"
        data, rate = soundfile.read(str(path), dtype=dtype, always_2d=True)
    except (RuntimeError, OSError, ValueError, EOFError) as exc:  # LibsndfileError is one
        raise SegueError(f"{path}: not a readable {path.suffix[1:].upper()} file ({exc})") from exc
    if data.shape[0] == 0:
        raise SegueError(f"{path}: the file holds no samples")
    return Audio(int(rate), np.ascontiguousarray(data))


def to_float(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] from integer PCM (8-bit unsigned, 16/32-bit signed) or float."""
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)
    return samples.astype(np.float32, copy=False)


def from_float(samples: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to ``dtype``, rounded and clipped (a lowered vocal never clips, but be safe)."""
    if dtype == np.uint8:
        return np.clip(np.round(samples * 128.0 + 128.0), 0, 255).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        scaled = np.round(samples.astype(np.float64) * float(-info.min))
        return np.clip(scaled, info.min, info.max).astype(dtype)
    return samples.astype(dtype, copy=False)


def wav_bytes(audio: Audio) -> bytes:
    """The WAV file of ``audio`` in memory."""
    buffer = io.BytesIO()
    wavfile.write(buffer, audio.rate, _squeeze(audio.samples))
    return buffer.getvalue()


def write_wav(path: Path, audio: Audio) -> None:
    """Write atomically (a temporary file renamed into place): a reader of the render cache
    never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            wavfile.write(handle, audio.rate, _squeeze(audio.samples))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _squeeze(samples: np.ndarray) -> np.ndarray:
    return samples[:, 0] if samples.ndim == 2 and samples.shape[1] == 1 else samples
