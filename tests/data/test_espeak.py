"""The eSpeak NG ctypes driver."""
import numpy as np
import pytest

from emorank.data.espeak import Espeak, SpeechParams, SpeechParamsError


@pytest.fixture(scope="module")
def tts():
    return Espeak()


def test_espeak_isolated_synthesis_is_a_pure_function(tts):
    params = SpeechParams(voice="en-us+f3", rate=160, pitch=60)
    first = tts.synthesize("The bus stops at the corner.", params)
    tts.synthesize("Something else in between.", SpeechParams(voice="en+m2"))
    again = tts.synthesize("The bus stops at the corner.", params)
    assert first.dtype == np.int16 and first.size > 0.5 * tts.sample_rate
    np.testing.assert_array_equal(first, again)
    batch = tts.synthesize_many([("The bus stops at the corner.", params), ("And then more.", params)])
    np.testing.assert_array_equal(batch[0], first)


def test_espeak_parameters_change_the_speech(tts):
    text = "The keys are in the drawer under the phone."
    slow, fast = (tts.synthesize(text, SpeechParams(rate=r)) for r in (120, 260))
    assert slow.size > 1.5 * fast.size
    low, high = (tts.synthesize(text, SpeechParams(pitch=p)) for p in (20, 80))
    assert not np.array_equal(low, high)


@pytest.mark.parametrize("params, message", [(SpeechParams(voice="en-us+nosuch"), "unknown eSpeak voice variant"),
                                             (SpeechParams(voice="xx-nowhere"), "does not know the voice"),
                                             (SpeechParams(rate=20), "rate=20"),
                                             (SpeechParams(pitch=101), "pitch=101")])
def test_espeak_bad_parameters_raise_clear_errors(tts, params, message):
    with pytest.raises(SpeechParamsError, match=message):
        tts.synthesize("Hello there.", params)


def test_espeak_rejects_empty_text(tts):
    with pytest.raises(SpeechParamsError, match="non-empty"):
        tts.synthesize("   ")
