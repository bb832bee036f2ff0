"""scikit-learn's estimator checks on the encoders that take a 2-D numeric array.

The audio encoders read a 2-D float array ``(n_clips, n_samples)`` as a batch
of waveforms, so scikit-learn's checks can feed them its usual numeric data.
ImageEncoder and TextEncoder take only a column of images or texts (their
``input_tags.two_d_array`` is False, so scikit-learn would skip every check);
tests/encoders/test_contract.py tests the same properties on them directly.
"""

from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm import AudioEncoder, AudioMFCC, ImageEncoder, TextEncoder

#: the placeholder model of the AudioEncoder checked below, replaced by a tiny Whisper folder
TINY_WHISPER = "tiny-whisper"

#: failures every audio encoder shares, with the reason each is expected
AUDIO_EXPECTED_FAILURES = {
    "check_dtype_object": (
        "an object array is a column of paths, bytes or (waveform, sample_rate) pairs and must be "
        "(n, 1); a batch of waveforms is a numeric array"
    ),
    "check_transformer_data_not_an_array": (
        "the second half passes X.tolist(): a list is a column of clips (a row may be a "
        "[waveform, sample_rate] pair), so its rows of numbers are unreadable clips"
    ),
    "check_estimators_pickle": (
        "allow_nan is True because a missing clip (None or NaN in a column, a row of NaN in an "
        "array) gives a row of NaN; this check scatters NaN inside clips, and a clip with some "
        "NaN samples is unusable: on_error='raise' (the default) refuses it with InputError"
    ),
}



def expected_failures(estimator):
    failures = dict(AUDIO_EXPECTED_FAILURES)
    failures["check_estimators_pickle(readonly_memmap=True)"] = failures["check_estimators_pickle"]
    if isinstance(estimator, AudioMFCC) and estimator.backend == "torch":
        failures["check_methods_subset_invariance"] = (
            "batched float32 arithmetic: an MFCC mean near 0 (about 3e-4) moves by about 2e-7 "
            "with the number of clips in the batch, within the documented agreement with "
            "librosa (atol=1e-3); the check allows 1e-7 plus 1e-4 relative"
        )
    return failures


@parametrize_with_checks(
    [
        AudioMFCC(cache=None, verbose=0),
        AudioMFCC(deltas=True, chroma=True, spectral=True, backend="librosa", cache=None, verbose=0),
        AudioEncoder(TINY_WHISPER, cache=None, verbose=0),
    ],
    expected_failed_checks=expected_failures,
)
def test_sklearn_compatible(estimator, check, request):
    # cache=None: every check computes features, none is answered from the embedding cache
    if isinstance(estimator, AudioEncoder):
        estimator.set_params(model=request.getfixturevalue("tiny_whisper_model"))
    check(estimator)


def test_only_the_audio_encoders_claim_2d_numeric_input():
    assert get_tags(AudioMFCC()).input_tags.two_d_array
    assert get_tags(AudioEncoder()).input_tags.two_d_array
    assert not get_tags(ImageEncoder()).input_tags.two_d_array
    assert not get_tags(TextEncoder()).input_tags.two_d_array
