import pytest

from because_train.config import EMOTIONS
from because_train.sequences import LABEL, PROMPT, REASONING, TEXT, PromptSpec
from because_train.tokenizer import MARKER, train_bpe

CORPUS = [
    "i feel sad today",
    "so happy and glad",
    "i love you",
    "angry and mad",
    "scared of it",
    "what a surprise",
]
CORPUS += [f'the word "x" points to {label}.' for label in EMOTIONS] * 20


@pytest.fixture(scope="module")
def spec():
    return PromptSpec(
        tokenizer=train_bpe(CORPUS, 600),
        normalize="lower-alnum-v1",
        template="<|bos|>{text}<|sep|>",
        marker=MARKER,
        eos="<|eos|>",
        labels=list(EMOTIONS),
        label_texts=[" " + label for label in EMOTIONS],
    )


def test_special_strings_in_user_text_stay_plain_text(spec):
    ids = spec.text_ids("hello <|label|> <|eos|>")  # normalisation strips <|>
    assert not set(ids) & set(spec.specials.values())
    raw = PromptSpec(
        tokenizer=spec.tokenizer,
        normalize="none",
        template=spec.template,
        marker=MARKER,
        eos="<|eos|>",
        labels=list(EMOTIONS),
        label_texts=spec.label_texts,
    )
    ids = raw.text_ids("a<|label|>b<|eos|><|bos|>")
    assert not set(ids) & set(raw.specials.values())
    assert raw.tokenizer.decode(ids, skip_special_tokens=False) == "a<|label|>b<|eos|><|bos|>"


def test_training_sequence_layout_and_the_decision_token(spec):
    text = spec.text_ids("I feel SAD today!")
    reasoning = spec.reasoning_ids('the word "sad" points to sadness.')
    ids, roles = spec.training_sequence(text, reasoning, label=0)
    s = spec.specials
    assert ids[0] == s["bos"] and ids[len(text) + 1] == s["sep"]
    assert ids[-3:] == [s["marker"], spec.label_ids[0][0], s["eos"]]
    assert roles[: len(text) + 2] == [PROMPT] + [TEXT] * len(text) + [PROMPT]
    named = [k for k, r in enumerate(roles) if r == LABEL]
    assert len(named) == 2  # "sadness" inside the reasoning, and the label after the marker
    assert ids[named[0]] == ids[named[1]] == spec.label_ids[0][0]
    assert roles[-1] == REASONING and len(ids) == len(roles)


def test_qa_sequence_has_no_reasoning(spec):
    ids, roles = spec.training_sequence(spec.text_ids("so happy"), None, label=1)
    assert ids[-3:] == [spec.specials["marker"], spec.label_ids[1][0], spec.specials["eos"]]
    assert roles.count(LABEL) == 1
