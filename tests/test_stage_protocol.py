"""Stage protocol: every client message parses to one typed message or one ProtocolError."""

from __future__ import annotations

import base64
import contextlib
import json

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nsplayer.stage.protocol import (
    AudioFormat,
    Interrupt,
    ProtocolError,
    SessionUpdate,
    UtteranceAudio,
    UtteranceStart,
    parse,
)


def test_parses_each_message_type_with_defaults():
    assert parse('{"type": "session.update"}') == SessionUpdate(AudioFormat(24000, "pcm_s16le", 1))
    start = parse(
        '{"type": "utterance.start", "subject": "anna", "utterance_id": "u1",'
        ' "mode": "replace", "emotion": {"Happy": 0.4}}'
    )
    assert start == UtteranceStart("anna", "u1", "replace", {"happy": 0.4})
    audio = parse(
        json.dumps({"type": "utterance.audio", "utterance_id": "u1", "audio_b64": "AAA="})
    )
    assert audio == UtteranceAudio("u1", b"\0\0")
    assert parse('{"type": "interrupt", "subject": "bob", "fade_ms": 50}') == Interrupt(
        "bob", None, 50.0, True
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"type": "utterance.begin"}', "unknown_type"),
        ('{"utterance_id": "u"}', "unknown_type"),
        ('{"type": "utterance.start", "subject": "", "utterance_id": "u"}', "bad_field"),
        (
            '{"type": "utterance.start", "subject": "a", "utterance_id": "u", "mode": "x"}',
            "bad_field",
        ),
        ('{"type": "utterance.start", "subject": "a", "utterance_id": 3}', "bad_field"),
        (
            '{"type": "expression.set", "subject": "a", "emotion": {"joy": 1}}',
            "bad_field",
        ),
        ('{"type": "session.update", "sample_rate": 4000}', "bad_field"),
        ('{"type": "session.update", "sample_rate": true}', "bad_field"),
        ('{"type": "session.update", "encoding": "mp3"}', "bad_field"),
        ('{"type": "utterance.audio", "utterance_id": "u", "audio_b64": "@@"}', "bad_field"),
        ('{"type": "interrupt", "subject": "a", "fade_ms": -1}', "bad_field"),
        ('{"type": "interrupt", "subject": "a", "clear_queue": "yes"}', "bad_field"),
        ('{"type": "expression.set", "subject": "a", "emotion": [1]}', "bad_field"),
        ("[" * 100000, "bad_json"),
    ],
)
def test_bad_messages_say_what_is_wrong_in_one_line(text, code):
    with pytest.raises(ProtocolError) as info:
        parse(text)
    assert info.value.code == code
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_oversize_messages_are_refused_before_parsing():
    with pytest.raises(ProtocolError, match="at most") as info:
        parse('{"type": "x", "pad": "' + "a" * (1 << 20) + '"}')
    assert info.value.code == "too_large"


@given(st.text(max_size=200))
def test_any_text_is_a_message_or_a_protocol_error(text):
    try:
        parse(text)
    except ProtocolError as exc:
        assert exc.event()["type"] == "error"


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "subject",
                "utterance_id",
                "mode",
                "emotion",
                "fade_ms",
                "sample_rate",
                "encoding",
                "channels",
                "audio_b64",
                "clear_queue",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=70),
            st.sampled_from(
                [
                    "utterance.start",
                    "interrupt",
                    "session.update",
                    "utterance.audio",
                    "utterance.end",
                    "expression.set",
                    "enqueue",
                    "pcm_f32le",
                ]
            ),
            st.dictionaries(st.text(max_size=8), st.floats()),
        ),
    )
)
@example({"type": "session.update", "encoding": {}})  # once a TypeError (unhashable)
def test_any_json_object_is_a_message_or_a_protocol_error(obj):
    with contextlib.suppress(ProtocolError):
        parse(json.dumps(obj))


def test_decodes_s16_and_f32_and_downmixes():
    s16 = AudioFormat(8000, "pcm_s16le", 2)
    pcm = s16.decode(np.array([[16384, 0], [-32768, -32768]], "<i2").tobytes())
    assert pcm.tolist() == [0.25, -1.0]
    f32 = AudioFormat(8000, "pcm_f32le", 1)
    assert f32.decode(np.array([0.5, np.nan, 3.0], "<f4").tobytes()).tolist() == [0.5, 0.0, 1.0]


def test_chunks_must_hold_whole_frames_and_at_most_half_a_second():
    fmt = AudioFormat(8000, "pcm_s16le", 2)
    with pytest.raises(ProtocolError) as info:
        fmt.decode(b"\0" * 6)
    assert info.value.code == "bad_audio"
    with pytest.raises(ProtocolError) as info:
        fmt.decode(b"\0" * 4 * 4001)
    assert info.value.code == "too_large"
    assert len(fmt.decode(base64.b64decode(base64.b64encode(b"\0" * 4 * 4000)))) == 4000
