"""The warning that TextEncoder's default (English) model meets text that is mostly not English."""

import warnings

import pandas as pd
import pytest

from skmm import TextEncoder
from skmm.encoders._language import MULTILINGUAL_TEXT_MODEL, text_languages, warn_if_not_english
from skmm.exceptions import LanguageWarning

FRENCH = [
    "Un lecteur de musique pour écouter les fichiers du disque",
    "Le jeu de cartes le plus simple pour les enfants et les parents",
    "Un éditeur de texte avec la coloration de la syntaxe",
    "Gestionnaire des fichiers et des dossiers pour le bureau",
] * 8
ENGLISH = [
    "A music player for the files on the disk",
    "The simplest card game for children and their parents",
    "A text editor with syntax highlighting for the desktop",
    "Manager of the files and folders of this computer",
] * 8


def test_languages_are_told_by_their_function_words_and_short_labels_do_not_count():
    assert text_languages(FRENCH[:4] + ENGLISH[:4]) == {"French": 4, "English": 4}
    assert text_languages(["grinning face", "cat", "flag: Germany", "", None]) == {}
    assert text_languages(["東京の天気は晴れです", "Погода в Москве хорошая"]) == {"a non-Latin script": 2}


def test_mostly_french_text_with_the_default_model_warns_once_naming_a_multilingual_model(tiny_text_model):
    column = pd.Series(FRENCH + ENGLISH[:8], name="summary")
    with pytest.warns(LanguageWarning) as record:
        TextEncoder(verbose=0).fit(column)
    assert len(record) == 1
    message = str(record[0].message)
    assert "column 'summary'" in message and "French" in message
    assert f"TextEncoder(model={MULTILINGUAL_TEXT_MODEL!r})" in message
    assert f"skmm fit --model text={MULTILINGUAL_TEXT_MODEL}" in message


@pytest.mark.parametrize("texts", [ENGLISH, FRENCH[:8] + ENGLISH, ["grinning face", "cat"] * 20],
                         ids=["english", "mostly-english", "labels"])
def test_english_or_undecided_text_gives_no_warning(texts):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LanguageWarning)
        assert warn_if_not_english(texts) is None


def test_a_model_of_the_user_s_choice_is_not_second_guessed(tiny_text_model):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LanguageWarning)
        TextEncoder(tiny_text_model, verbose=0).fit(FRENCH)
