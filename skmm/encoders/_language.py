"""Is a column of texts mostly English? A tiny detector, to tell a user the default text model does not fit.

The offline default text model (all-MiniLM-L6-v2) was trained on English; on
French text it loses several points of accuracy against a multilingual model.
:func:`warn_if_not_english` looks at a sample of the texts: a text counts as
English or as another language when its common function words ("the", "of",
"le", "der", ...) say so unambiguously, and as not English when most of its
letters are of a non-Latin script. Texts too short to tell (a name, a label)
are not counted. No library and no model: a few hundred texts cost a few
milliseconds.
"""

import re
import unicodedata
import warnings
from collections import Counter

import numpy as np

from ..exceptions import LanguageWarning

__all__ = ["MULTILINGUAL_TEXT_MODEL", "text_languages", "warn_if_not_english"]

#: the model a warning suggests for text that is mostly not English
MULTILINGUAL_TEXT_MODEL = "intfloat/multilingual-e5-small"

#: frequent function words, each of them unambiguous enough in its language
_FUNCTION_WORDS = {
    "English": "the of and to is that for with are this from was were be by which an have has it its not or",
    "French": "le la les des est une du et pour dans sur pas avec ce qui au aux sont ou vous nous il elle",
    "German": "der die das und ist nicht ein eine zu den mit von sich auf für im dem des sind oder wird",
    "Spanish": "el los las del y en es por con para una se al lo su como pero más son o",
    "Italian": "il di che e è un una per non della gli sono con si nel alla anche più o",
    "Portuguese": "o os do da e em um uma para com não no na dos das são ao ou mais",
    "Dutch": "het een van en is dat op te niet voor met zijn ook aan er maar om of",
}
_LANGUAGE_OF = {}
for _language, _words in _FUNCTION_WORDS.items():
    for _word in _words.split():
        _LANGUAGE_OF.setdefault(_word, set()).add(_language)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

#: texts looked at, and how many must be told apart before anything is said
SAMPLE = 500
MIN_DECIDED = 20


def _script_is_latin(text):
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return True
    latin = sum("LATIN" in unicodedata.name(char, "") for char in letters)
    return latin >= len(letters) / 2


def _language(text):
    """``"English"``, another language's name, or None when the text does not tell."""
    if not _script_is_latin(text):
        return "a non-Latin script"
    votes = Counter()
    for word in _WORD.findall(text.lower()):
        for language in _LANGUAGE_OF.get(word, ()):
            votes[language] += 1
    if not votes:
        return None
    (best, count), *rest = votes.most_common(2) + [(None, 0)]
    if count < 2 or rest[0][1] == count:
        return None  # too few clues, or a tie
    return best


def text_languages(texts, sample=SAMPLE, random_state=0):
    """Count the languages of up to ``sample`` texts: ``Counter({language: texts})``.

    Texts that do not tell (too short, no function words, a tie) are not counted.

    Examples
    --------
    >>> from skmm.encoders._language import text_languages
    >>> text_languages(["the cat is on the mat", "le chat est sur le tapis", "cat"])
    Counter({'English': 1, 'French': 1})
    """
    texts = [text for text in texts if isinstance(text, str) and text.strip()]
    if len(texts) > sample:
        picked = np.random.RandomState(random_state).choice(len(texts), sample, replace=False)
        texts = [texts[index] for index in picked]
    return Counter(language for language in map(_language, texts) if language is not None)


def warn_if_not_english(texts, *, column=None):
    """Warn (:class:`~skmm.exceptions.LanguageWarning`) when most texts that tell are not English.

    Returns the most frequent other language, or None when nothing was said.
    """
    counts = text_languages(texts)
    decided = sum(counts.values())
    other = decided - counts.get("English", 0)
    if decided < MIN_DECIDED or other <= decided / 2:
        return None
    language = next(name for name, _ in counts.most_common() if name != "English")
    where = f"column {column!r}" if column is not None else "the texts"
    warnings.warn(
        f"{other} of the {decided} texts of {where} whose language could be told are not English "
        f"(mostly {language}), and TextEncoder's default model, all-MiniLM-L6-v2, was trained on "
        f"English: expect a few points of accuracy less than with a multilingual model. Pass one, e.g. "
        f"TextEncoder(model={MULTILINGUAL_TEXT_MODEL!r}) (skmm fit --model text={MULTILINGUAL_TEXT_MODEL}).",
        LanguageWarning,
        stacklevel=3,
    )
    return language
