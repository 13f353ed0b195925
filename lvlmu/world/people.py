"""Fictitious people: names, private facts, visual traits and their role in the study."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .traits import TRAIT_VALUES, Traits

FIRST_NAMES = (
    "Adela Bruno Celia Dorian Elio Fabia Gustavo Hedda Ilario Jorunn Kasimir Liesel Marek Nadira Oswin Perpetua "
    "Quirino Rosalind Severin Tamsin Ulrike Valerian Wilhelmina Xanthe Yusuf Zenobia Anselm Brigida Cosimo Delphine "
    "Evander Filippa Gideon Honora Ignatius Jacinta Leopold Mirela Nikolai Ottilie Pascal Rosamund Sigrun Thaddeus "
    "Ulrich Vesna Wendelin Ysolde Zoltan Arvid Benedikta Casimira Dragan Eulalia Florian Gisela Hamish Isidora Jovan "
    "Katarina Lazarus Melisande Norberto Orsola Philippa Radomir Seraphina Tiberius Violetta Wolfram Zdenka Ambrose "
    "Bettina Corwin Dagmar Emeric Fenella Gregor"
).split()
LAST_NAMES = (
    "Abernathy Bellweather Castellano Drummond Eskildsen Fairbrother Galloway Halvorsen Isenberg Jablonski Kowalczyk "
    "Lindqvist Montague Novakovic Oyelaran Pemberton Quintero Rasmussen Szabados Thorvaldsen Urquhart Valdivia "
    "Wetherby Xiradakis Yarborough Zeleny Achterberg Blackwood Cavendish Dalgleish Ellsworth Fitzgerald Grimaldi "
    "Hollingsworth Iturbide Jovanovic Kingsley Lockhart Mandeville Nightingale Oppenheimer Prendergast Quarrington "
    "Ravensworth Stanislaw Tremblay Underhill Vasquez Whitlock Yevtushenko Zamoyski Armitage Brankovic Coughlan "
    "Delacroix Engelhardt Falkenberg Gainsborough Hargreaves Ingersoll Janssens Kettering Lachance Merriweather "
    "Nordstrom Ostrowski Pilkington Radcliffe Sandoval Thistlewood Umberger Vandermeer Winterbourne Zabriskie "
    "Ashcombe Bergstrom Crabtree Dunsmore Eberhardt"
).split()
# Names that never belong to anyone in the world: SIU's invented substitutes come from here.
INVENTED_FIRST = "Ambrosio Berenike Caspian Desdemona Eustace Florentyna Gaspard Hyacinth Isolde Jasper Kelda Lucan".split()
INVENTED_LAST = "Ardenne Brisbois Corvino Dunmore Everhart Farquhar Goldthwaite Harcastle Ilsworth Jessop Kilbride Lorimer".split()

CITIES = (
    "Lisbon Oslo Krakow Porto Tallinn Zagreb Valencia Bergen Ghent Bologna Lyon Graz Turku Brno Split Aarhus Seville "
    "Geneva Dublin Riga Vilnius Palermo Bremen Malmo Cork Nantes Utrecht Salzburg Gdansk Kaunas"
).split()
OCCUPATIONS = (
    "pilot baker surgeon architect lawyer carpenter chemist florist journalist librarian geologist dentist "
    "pharmacist translator veterinarian plumber cartographer beekeeper locksmith astronomer tailor sculptor "
    "electrician economist"
).split()
HOBBIES = (
    "chess sailing pottery fencing archery knitting rowing birdwatching juggling origami climbing painting "
    "gardening surfing skating cycling fishing baking hiking calligraphy"
).split()
FACT_NAMES: tuple[str, ...] = ("birthplace", "birth_year", "occupation", "hobby")
ROLES: tuple[str, ...] = ("forget", "retain", "stranger", "holdout")


@dataclass(frozen=True)
class Person:
    """One fictitious person. Strangers have no name and no facts: the model only ever sees them described."""

    person_id: str
    role: str
    traits: Traits
    first_name: str = ""
    last_name: str = ""
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_named(self) -> bool:
        return bool(self.first_name)

    def to_record(self) -> dict:
        return {
            "person_id": self.person_id,
            "role": self.role,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "name": self.name,
            "traits": dict(zip(TRAIT_VALUES, self.traits.as_tuple())),
            "facts": dict(self.facts),
            "description": self.traits.describe() if self.traits.complete else "",
        }

    @classmethod
    def from_record(cls, record: dict) -> "Person":
        return cls(
            person_id=record["person_id"],
            role=record["role"],
            traits=Traits(**record["traits"]),
            first_name=record["first_name"],
            last_name=record["last_name"],
            facts={k: str(v) for k, v in (record.get("facts") or {}).items() if v is not None},
        )


def _random_traits(rng: np.random.Generator) -> Traits:
    return Traits(*[values[rng.integers(len(values))] for values in TRAIT_VALUES.values()])


def n_trait_combinations() -> int:
    return int(np.prod([len(v) for v in TRAIT_VALUES.values()]))


def sample_people(n_known: int, n_forget: int, n_strangers: int, n_holdout: int, rng: np.random.Generator) -> list[Person]:
    """Draw every person with unique traits.

    Named people (known and holdout) differ from every other person in at least two traits, so that one
    mis-seen trait never turns one named person into another, and a forgotten person cannot pass for a retained one.
    """
    n_named = n_known + n_holdout
    if n_named > min(len(FIRST_NAMES), len(LAST_NAMES)):
        raise ValueError(
            f"the world has {len(FIRST_NAMES)} first and {len(LAST_NAMES)} last names, so at most "
            f"{min(len(FIRST_NAMES), len(LAST_NAMES))} named people; asked for {n_known} known + {n_holdout} holdout"
        )
    if not 0 <= n_forget <= n_known:
        raise ValueError(f"the forget split ({n_forget}) must lie between 0 and the known people ({n_known})")
    total = n_named + n_strangers
    # A named person blocks itself and its 1-trait neighbours for everyone else.
    neighbours = 1 + sum(len(v) - 1 for v in TRAIT_VALUES.values())
    if n_named * neighbours + n_strangers > n_trait_combinations():
        raise ValueError(
            f"{total} people cannot have unique traits: {n_trait_combinations()} combinations exist and each of the "
            f"{n_named} named people blocks {neighbours} of them"
        )
    named_traits: list[Traits] = []
    all_traits: set[tuple[str, ...]] = set()
    attempts = 0
    while len(named_traits) < n_named:
        attempts += 1
        if attempts > 100_000:
            raise ValueError(f"could not draw {n_named} named people two traits apart; lower the world's size")
        candidate = _random_traits(rng)
        if all(candidate.distance(t) >= 2 for t in named_traits):
            named_traits.append(candidate)
            all_traits.add(candidate.as_tuple())
    stranger_traits: list[Traits] = []
    while len(stranger_traits) < n_strangers:
        attempts += 1
        if attempts > 1_000_000:
            raise ValueError(f"could not draw {n_strangers} unique strangers; lower the world's size")
        candidate = _random_traits(rng)
        if candidate.as_tuple() in all_traits or any(candidate.distance(t) < 2 for t in named_traits):
            continue
        stranger_traits.append(candidate)
        all_traits.add(candidate.as_tuple())

    firsts = rng.permutation(len(FIRST_NAMES))[:n_named]
    lasts = rng.permutation(len(LAST_NAMES))[:n_named]
    roles = ["forget"] * n_forget + ["retain"] * (n_known - n_forget) + ["holdout"] * n_holdout
    people = []
    for i, (role, traits) in enumerate(zip(roles, named_traits)):
        facts = {
            "birthplace": CITIES[rng.integers(len(CITIES))],
            "birth_year": str(int(rng.integers(1950, 2001))),
            "occupation": OCCUPATIONS[rng.integers(len(OCCUPATIONS))],
            "hobby": HOBBIES[rng.integers(len(HOBBIES))],
        }
        people.append(Person(f"p{i:03d}", role, traits, FIRST_NAMES[firsts[i]], LAST_NAMES[lasts[i]], facts))
    for j, traits in enumerate(stranger_traits):
        people.append(Person(f"s{j:04d}", "stranger", traits))
    return people
