"""Is a request in English? A light check, so that other languages get a plain answer.

The tagger was trained on English only: given "pon la canción de queen" or "播放周杰伦的歌"
it still returns some intent, with the whole sentence as a slot, and the parser would then
ask "shall I go ahead?" about nonsense. This check runs first and answers
:data:`NOT_ENGLISH` instead.

The heuristic, and its limits (documented in docs/serving.md):

* **Script**: a request with letters of another script (Chinese, Japanese, Korean,
  Cyrillic, Arabic, Greek, Hebrew, Devanagari ...) and no English verb ("play", "put",
  "skip" ...) is not English, however long the Latin name inside it ("播放Queen的歌"); one
  with an English verb is taken ("play 周杰伦"), and so is, wrongly, "play" followed by a
  whole sentence in another script. Fewer than half Latin letters is refused regardless.
* **Function words**: among Latin-script words, words typical of Spanish, French, German,
  Italian, Portuguese and Dutch requests ("pon", "canción", "joue", "bitte", "metti",
  "toca", "por favor") are counted against English function and command words ("play",
  "the", "by", "some"). Two or more foreign words and more of them than English ones make a
  request not English. Song titles in other languages inside an English sentence ("play la
  vie en rose by edith piaf") pass, because the English words around them count. A request
  in another Latin-script language that uses none of the listed words (Polish, Turkish,
  Swedish ...) is not caught and goes to the tagger as before.
"""

from __future__ import annotations

import unicodedata

#: The answer to a request in another language.
NOT_ENGLISH = "I understand requests in English: try, e.g., 'play some jazz'."

#: English command and function words that music requests are made of.
ENGLISH_WORDS = frozenset(
    """play put on the a an some by me my to for of and i want hear listen like something
    similar song songs track tracks album albums artist podcast episode audiobook playlist
    music please can you could start radio station skip next pause resume stop add this
    that recommend find search look up show give what should is it more from with in
    turn off focus mode let s d m t don back previous like love hate go again""".split()  # noqa: SIM905 (a word list reads better)
)
#: Function and command words of other Latin-script languages, as requests use them.
FOREIGN_WORDS = frozenset(
    """pon pone ponme reproduce reproducir toca tocar quiero escuchar canción cancion
    canciones por favor una uno unos unas del los las el música musica algo como también
    siguiente pausa poner favor dame mi mis es está joue jouer mets mettez chanson
    chansons musique quelque chose comme je veux écouter ecouter les des une du s'il plait
    plaît est et avec spiel spiele spielen bitte das lied lieder musik ich möchte moechte
    hören horen etwas wie von der die und ein eine mir metti suona suonare canzone
    canzoni voglio ascoltare qualcosa il della delle di per favore coloca tocar toque
    música quero ouvir alguma coisa speel afspelen liedje muziek wil luisteren iets een
    het van alsjeblieft""".split()  # noqa: SIM905
)
#: A request whose letters are less than this share Latin is not English.
MIN_LATIN_SHARE = 0.5


def latin_share(text: str) -> float:
    """The share of letters in ``text`` that are Latin script (1.0 when it has no letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 1.0
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
    return latin / len(letters)


#: English verbs a request in English starts from; without one, other scripts decide
ENGLISH_VERBS = frozenset(
    {
        "play", "put", "listen", "hear", "skip", "pause", "resume", "stop", "add", "like",
        "love", "recommend", "find", "search", "show", "start", "turn", "give", "want",
        "queue", "suggest",
    }
)  # fmt: skip


def not_english(text: str, words: list[str]) -> bool:
    """True when ``text`` (its normalised ``words``) is clearly not an English request."""
    other_script = sum(1 for ch in text if ch.isalpha() and "LATIN" not in unicodedata.name(ch, ""))
    if other_script >= 2 and not ENGLISH_VERBS.intersection(words):
        return True  # "播放Jaipiograis的歌": a Latin name inside another language
    foreign = sum(1 for w in words if w in FOREIGN_WORDS and w not in ENGLISH_WORDS)
    english = sum(1 for w in words if w in ENGLISH_WORDS)
    return foreign >= 2 and foreign > english
