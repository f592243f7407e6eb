"""Plausible names for artists, releases, shows and books, drawn deterministically.

Names only have to read like a music catalog; nothing depends on them being unique (real
catalogs repeat names too, the id is the key). Each function takes the random generator of its
caller, so the same seed gives the same names.
"""

from __future__ import annotations

import numpy as np

_ONSETS = (
    "b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kr", "l", "m", "n",
    "p", "r", "s", "sh", "st", "t", "tr", "v", "z", "",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y", "io")
_CODAS = ("", "", "", "n", "r", "l", "s", "x", "m", "nd", "th", "k")
ADJECTIVES = (
    "Golden", "Silent", "Electric", "Midnight", "Broken", "Wild", "Velvet", "Neon", "Hollow",
    "Crimson", "Quiet", "Endless", "Paper", "Silver", "Frozen", "Burning", "Gentle", "Lonely",
    "Bright", "Distant", "Hidden", "Restless", "Sacred", "Lucky", "Sleepy", "Savage", "Tender",
    "Blue", "Black", "Young", "Last", "First", "Lost", "Secret", "Summer", "Winter", "Static",
    "Cosmic", "Little", "Big", "Dizzy", "Honey", "Faded", "Open", "Northern", "Southern",
    "Crystal", "Liquid", "Heavy", "Soft", "Sweet", "Bitter", "Strange", "Perfect", "Wasted",
    "Radiant", "Ancient", "Modern", "Early", "Late", "Loud", "Slow", "Fast", "Red", "Green",
)  # fmt: skip
NOUNS = (
    "Heart", "River", "City", "Dream", "Fire", "Light", "Shadow", "Ocean", "Road", "Sky",
    "Garden", "Mirror", "Echo", "Storm", "Moon", "Sun", "Star", "Wave", "Ghost", "Machine",
    "Signal", "Window", "Island", "Mountain", "Forest", "Desert", "Harbor", "Engine", "Horizon",
    "Letter", "Promise", "Memory", "Season", "Morning", "Evening", "Highway", "Paradise",
    "Thunder", "Rain", "Snow", "Cloud", "Diamond", "Feather", "Lantern", "Compass", "Satellite",
    "Orchid", "Tiger", "Wolf", "Raven", "Bridge", "Tower", "Station", "Hotel", "Parade",
    "Carousel", "Velocity", "Gravity", "Silence", "Rhythm", "Pulse", "Voltage", "Riddle",
    "Kingdom", "Frontier", "Atlas", "Avenue", "Circuit", "Blossom", "Ember", "Tide", "Canyon",
)  # fmt: skip
VERBS = (
    "Chasing", "Falling", "Dancing", "Running", "Waiting", "Burning", "Dreaming", "Calling",
    "Breaking", "Holding", "Drifting", "Finding", "Losing", "Counting", "Following", "Leaving",
)  # fmt: skip
_BAND_NOUNS = (
    "Wolves", "Lanterns", "Machines", "Ravens", "Tigers", "Satellites", "Ghosts", "Rivers",
    "Echoes", "Strangers", "Kids", "Sparks", "Engines", "Hearts", "Comets", "Pilots",
)  # fmt: skip
_SHOW_SUFFIXES = ("Podcast", "Show", "Hour", "Talk", "Weekly", "Daily", "Radio", "Sessions")


def syllable_word(rng: np.random.Generator, low: int = 2, high: int = 3) -> str:
    """A pronounceable made-up word of ``low``..``high`` syllables, capitalised."""
    n = int(rng.integers(low, high + 1))
    parts = []
    for i in range(n):
        onset = _ONSETS[int(rng.integers(len(_ONSETS)))]
        vowel = _VOWELS[int(rng.integers(len(_VOWELS)))]
        coda = _CODAS[int(rng.integers(len(_CODAS)))] if i == n - 1 else ""
        parts.append(onset + vowel + coda)
    return "".join(parts).capitalize()


def person_name(rng: np.random.Generator) -> str:
    return f"{syllable_word(rng, 2, 2)} {syllable_word(rng, 2, 3)}"


def artist_name(rng: np.random.Generator, genre: str) -> str:
    """Pattern depends a little on the genre: DJs in dance music, "Lil" in hip hop, bands."""
    roll = rng.random()
    if genre in ("electronic", "techno", "house", "drum and bass", "synthwave") and roll < 0.3:
        return f"DJ {syllable_word(rng, 1, 2)}"
    if genre in ("hip hop", "trap") and roll < 0.25:
        return f"Lil {syllable_word(rng, 1, 2)}"
    if genre in ("rock", "indie rock", "alternative", "punk", "metal", "death metal") and (
        roll < 0.45
    ):
        return f"The {_pick(rng, ADJECTIVES)} {_pick(rng, _BAND_NOUNS)}"
    if roll < 0.55:
        return person_name(rng)
    if roll < 0.8:
        return syllable_word(rng, 2, 3)
    return f"{_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)}"


def track_title(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.5:
        return f"{_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)}"
    if roll < 0.7:
        return f"{_pick(rng, VERBS)} {_pick(rng, NOUNS)}"
    if roll < 0.85:
        return f"{_pick(rng, NOUNS)} of {_pick(rng, NOUNS)}"
    return _pick(rng, NOUNS)


def album_title(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.6:
        return f"{_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)}"
    if roll < 0.85:
        return _pick(rng, NOUNS)
    return f"{_pick(rng, NOUNS)} & {_pick(rng, NOUNS)}"


def show_title(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.4:
        return f"The {_pick(rng, NOUNS)} {_pick(rng, _SHOW_SUFFIXES)}"
    if roll < 0.75:
        return f"{_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)} {_pick(rng, _SHOW_SUFFIXES)}"
    return f"{syllable_word(rng, 2, 2)} & {syllable_word(rng, 2, 2)}"


def book_title(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.5:
        return f"The {_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)}"
    if roll < 0.8:
        return f"The {_pick(rng, NOUNS)} of {_pick(rng, NOUNS)}"
    return f"{_pick(rng, VERBS)} the {_pick(rng, NOUNS)}"


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]
