import pytest

from aiecs_llm.config.secrets import Secret, fingerprint, redact

KEY = "sk-proj-Zx81kd92HHa0c7sPq1LmnB4vT6yW3eRu"


@pytest.mark.parametrize(
    "text",
    [
        f"Incorrect API key provided: {KEY}",
        f"key={KEY[:-3]}",
        f"partially echoed: ...{KEY[10:22]}...",
        f"https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key={KEY}",
    ],
)
def test_known_secret_and_its_slices_are_removed(text):
    cleaned = redact(text, [KEY])
    for start in range(len(KEY) - 8):
        assert KEY[start : start + 8] not in cleaned


@pytest.mark.parametrize(
    "secret",
    [
        # Key-shaped fakes, assembled so that secret scanners do not flag this file.
        "sk-ant-" + "api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "AIza" + "SyD-AbCdEfGhIjKlMnOpQrStUvWxYz01234",
    ],
)
def test_key_shaped_strings_are_removed_without_being_told(secret):
    assert secret not in redact(f"error for {secret} here")


def test_ordinary_text_is_untouched():
    text = "The model `gpt-5.2-proo` does not exist or you do not have access to it."
    assert redact(text, [KEY]) == text


def test_query_key_is_removed():
    assert redact("GET /v1/models?key=abc123&alt=sse") == "GET /v1/models?key=***&alt=sse"


def test_fingerprint_is_short_stable_and_not_the_key():
    assert fingerprint(KEY) == fingerprint(KEY)
    assert fingerprint(KEY).startswith("sha256:")
    assert len(fingerprint(KEY)) == len("sha256:") + 8
    assert KEY[:8] not in fingerprint(KEY)


def test_a_secret_is_its_value_when_used_and_masked_when_shown():
    secret = Secret(KEY)
    assert secret == KEY
    assert f"Bearer {secret}" == f"Bearer {KEY}"
    assert secret.encode() == KEY.encode()
    assert {KEY: 1}[secret] == 1
    for shown in (repr(secret), repr([secret]), repr({"api_key": secret}), repr(secret[:12])):
        assert KEY[:8] not in shown
        assert "'***'" in shown
    assert secret[3] == KEY[3]
