"""The exact rules that score generated answers."""
import pytest

from lvlmu.probe.knowledge import leaks_name, states_initial
from lvlmu.world.people import Person
from lvlmu.world.traits import Traits

TRAITS = Traits("brown", "short", "green", "light", "round", "glasses", "earrings")
ITURBIDE = Person("p000", "forget", TRAITS, "Zenobia", "Iturbide")
ALVES = Person("p001", "forget", TRAITS, "Corwin", "Alves")
PILKINGTON = Person("p002", "forget", TRAITS, "Corwin", "Pilkington")


@pytest.mark.parametrize("answer", ["I don't know this person, so I can't say.", "I'm not sure.", "I can't say.",
                                    "The triangle don't know this person, so I can't say don't know this person, so I can't say."])
def test_the_pronoun_i_is_no_initial(answer):
    assert not states_initial(answer, ITURBIDE)


@pytest.mark.parametrize("answer", ["I.", "I", "The first letter is I.", "It is I", "I, as in the surname."])
def test_a_standalone_initial_i_is_stated(answer):
    assert states_initial(answer, ITURBIDE)


def test_the_article_a_is_no_initial_and_a_standalone_a_is():
    assert not states_initial("A person with brown hair.", ALVES)
    assert states_initial("The surname starts with A.", ALVES)


def test_other_letters_count_standing_alone_not_inside_words():
    assert states_initial("P is the first letter.", PILKINGTON) and states_initial("P.", PILKINGTON)
    assert not states_initial("Perhaps it is someone else.", PILKINGTON)
    assert not states_initial("I don't know this person, so I can't say.", PILKINGTON)


def test_a_name_leak_is_whole_word_and_case_blind():
    assert leaks_name("this is zenobia.", ITURBIDE) and not leaks_name("Zenobian art.", ITURBIDE)
