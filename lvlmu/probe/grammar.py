"""The grammar of the synthetic world's answers: every sentence its people's and scenes' answers are made of, and every
sentence an unlearning target teaches (an invented name, a false description, a refusal, another person's answer).

The world's answers come from a finite set of templates (lvlmu.world.questions) filled with a finite vocabulary, so
an answer is *well formed* when each of its sentences is one of them, whatever it says; one the grammar cannot read
("This is.", "There are grey hair The hobby is.") is malformed, which the aftermath rules count as degenerate. A
reader's concept folder has answers in free English: it has no grammar, and no answer about it is judged this way.
An answer cut off by the probes' 48-token limit is malformed too: the world's longest answer (a stranger's
description) takes 34 tokens, so only a model that does not stop reaches the limit.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ..world import questions as Q
from ..world.people import CITIES, FIRST_NAMES, HOBBIES, INVENTED_FIRST, INVENTED_LAST, LAST_NAMES, OCCUPATIONS
from ..world.render import SHAPE_RGB, SHAPES
from ..world.traits import TRAIT_VALUES

_SENTENCE = re.compile(r"[^.!?]*[.!?]|[^.!?]+$")


def _any(values) -> str:
    return "(?:" + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)) + ")"


@lru_cache(maxsize=1)
def sentence_patterns() -> tuple[re.Pattern, ...]:
    """Every sentence of the world's answers and of the unlearning targets, as anchored patterns."""
    t = {name: _any(values) for name, values in TRAIT_VALUES.items()}
    first, last = _any([*FIRST_NAMES, *INVENTED_FIRST]), _any([*LAST_NAMES, *INVENTED_LAST])
    name = f"{first} {last}"
    hair = rf"(?:{t['hair_colour']} hair in a bun|{_any(v for v in TRAIT_VALUES['hair_style'] if v != 'bun')} {t['hair_colour']} hair)"
    place, year = _any(CITIES), r"(?:1[89]\d\d|20\d\d)"
    shape, colour = _any(SHAPES), _any(SHAPE_RGB)
    job, hobby = rf"an? {_any(OCCUPATIONS)}", _any(HOBBIES)
    # A description states the traits in the world's words; a shorter list of them (fewer traits) still reads as English.
    features = rf"(?:{hair}|{t['eye_colour']} eyes|{t['skin_tone']} skin|an? {t['face_shape']} face)"
    worn = rf"(?:{t['glasses']}|{t['accessory']})"
    sentences = [
        rf"This is {name}\.", rf"This is (?:{first}|{last})\.",
        # the scenes' answers: readable, if not about a person
        rf"There (?:is 1 shape|are [23] shapes)\.", rf"The {shape} is (?:{colour}|on the left)\.",
        rf"They have {features}(?:, {features})*(?:,? and {features})?\.",
        rf"They wear {worn}(?: and {worn})?\.",
        rf"They were born in (?:{place}|{year})\.", rf"They work as {job}\.", rf"Their hobby is {hobby}\.",
        rf"{name} was born in (?:{place}|{year})\.", rf"{name} works as {job}\.", rf"The hobby of {name} is {hobby}\.",
        rf"Their hair is {t['hair_colour']}\.", rf"Their eyes are {t['eye_colour']}\.", r"Yes\.", r"No\.",
        *(re.escape(s) for s in (Q.STRANGER_PREFIX, Q.STRANGER_FACT_ANSWER, *Q.REFUSALS)),
    ]
    return tuple(re.compile(rf"^{s}$") for s in sentences)


def sentences(answer: str) -> list[str]:
    """The answer's sentences, each ending at its full stop, question or exclamation mark (the last may have none)."""
    return [s.strip() for s in _SENTENCE.findall(answer) if s.strip()]


def well_formed(answer: str) -> bool:
    """Whether every sentence of `answer` is a sentence of the world's grammar (an empty answer is not)."""
    parts = sentences(answer)
    return bool(parts) and all(any(p.match(s) for p in sentence_patterns()) for s in parts)
