"""Name and place inventories of the training corpus: Faker's locales and pycountry, plus the hand lists of data/.

Why libraries: a few hundred hand-written names teach the model those names; thousands from many languages teach it
what a name looks like. Faker (pinned in requirements.txt) gives given names, surnames and company names in dozens
of locales and real towns of many countries; pycountry gives every country, its ISO codes, the subdivisions
(states, provinces, regions) and the languages. Hand lists (data/names/, data/words/) stay where no library has the
data: famous cities, real companies, clubs, institutions, media, events, products, works, nationalities.

Everything is read offline and drawn with fixed seeds, so the inventories are the same on every machine for the
pinned library versions (build.build_key hashes those versions). Only names in Latin script are kept: the demo
model reads English text.

No label noise: a surface keeps one type. Given names and surnames that are also places, nationalities, months,
days, holidays or common words of the corpus are dropped (the place or word keeps the surface), and so are towns
that are also a person's name or a common word.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

# Locales whose people's names appear in English news; each draws the same number of names, so no one dominates.
NAME_LOCALES: tuple[str, ...] = (
    "en_US", "en_GB", "en_IE", "en_AU", "en_CA", "en_IN", "en_NG", "de_DE", "de_AT", "fr_FR", "es_ES", "es_MX",
    "es_AR", "it_IT", "pt_BR", "pt_PT", "nl_NL", "pl_PL", "cs_CZ", "sk_SK", "sv_SE", "no_NO", "da_DK", "fi_FI",
    "tr_TR", "hu_HU", "ro_RO", "hr_HR", "sl_SI", "lt_LT", "lv_LV", "et_EE", "id_ID", "fil_PH", "yo_NG", "ha_NG",
    "ig_NG", "zu_ZA", "sw", "ja_JP", "zh_CN",
)  # fmt: skip
# Locales whose Faker company names read as companies in English text ("Schmidt GmbH", "Rossi s.p.a.").
COMPANY_LOCALES: tuple[str, ...] = (
    "en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "sv_SE", "pl_PL", "pt_BR", "tr_TR", "en_IN", "sw",
)  # fmt: skip
# Locales with lists of real towns (Faker's address providers); a sample of each keeps big lists from dominating.
TOWN_LOCALES: tuple[str, ...] = (
    "de_DE", "de_AT", "de_CH", "en_IN", "fi_FI", "cs_CZ", "da_DK", "pl_PL", "pt_PT", "ro_RO", "hr_HR", "id_ID",
    "nl_NL", "nl_BE", "it_IT", "sv_SE", "sl_SI", "es_CO",
)  # fmt: skip
TOWN_ATTRIBUTES = ("cities", "municipalities")
# Countries whose subdivisions (states, provinces, regions) appear in English news, and the subdivision types kept.
SUBDIVISION_COUNTRIES = ("US", "CA", "AU", "IN", "DE", "ES", "IT", "GB", "BR", "MX", "NG", "CN", "JP", "ZA", "PK", "AT")
SUBDIVISION_TYPES = frozenset(
    {"State", "Province", "Region", "Land", "Autonomous community", "Prefecture", "Country", "Territory", "Nation"}
)
NAMES_PER_LOCALE = 400
COMPANIES_PER_LOCALE = 150
TOWNS_PER_LOCALE = 120
INVENTORY_SEED = 2003  # the inventories do not depend on the corpus seed: the same names for every build


@dataclass(frozen=True)
class Inventories:
    """Every list of surfaces the corpus draws from, deduplicated, each in a fixed order."""

    first_names: tuple[str, ...]
    surnames: tuple[str, ...]
    companies: tuple[str, ...]  # Faker's, per locale; real ones are in data/names/real_companies.txt
    cities: tuple[str, ...]  # famous cities (hand list)
    towns: tuple[str, ...]  # real towns from Faker's locales and Faker's world places
    countries: tuple[str, ...]
    country_codes: tuple[str, ...]  # ISO alpha-3 and the sports codes that differ
    subdivisions: tuple[str, ...]
    regions: tuple[str, ...]  # continents, seas, macro-regions (hand list)
    languages: tuple[str, ...]
    nationalities: tuple[str, ...]


_LATIN_RE = re.compile(r"^[^\W\d_]+(?:[ '\-.’][^\W\d_]+)*\.?$")


def is_latin_name(text: str) -> bool:
    """Letters of the Latin script in words joined by single spaces, hyphens or apostrophes (no digits, no commas)."""
    if not _LATIN_RE.match(text):
        return False
    return all(not char.isalpha() or unicodedata.name(char, "").startswith("LATIN") for char in text)


def read_list(path: Path) -> tuple[str, ...]:
    """The entries of a data file: one a line, "#" comments and blank lines skipped (corpus.read_entries checks)."""
    from demo_model.corpus import read_entries  # corpus imports this module lazily; no import cycle at load time

    return read_entries(path)


def _unique(items: Iterable[str], exclude: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Items in first-seen order, each once (case ignored), without those whose casefold is in exclude."""
    seen: set[str] = set()
    kept: list[str] = []
    for item in items:
        key = item.casefold()
        if key in seen or key in exclude:
            continue
        seen.add(key)
        kept.append(item)
    return tuple(kept)


def _faker(locale: str, offset: int) -> object:
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(INVENTORY_SEED + offset)
    return fake


def _draw(fake: object, method: str, fallback: str, count: int) -> list[str]:
    pick = getattr(fake, method, None) or getattr(fake, fallback)
    return [pick() for _ in range(count)]


def _is_name(text: str) -> bool:
    """A Latin-script name that starts with a capital (a few locales give lower-case parts: "ribič")."""
    return is_latin_name(text) and text[0].isupper()


def _people() -> tuple[list[str], list[str]]:
    first: list[str] = []
    last: list[str] = []
    for offset, locale in enumerate(NAME_LOCALES):
        fake = _faker(locale, offset)
        # ja_JP and zh_CN have romanised names besides the native script; vi_VN's given names are English.
        first += [n for n in _draw(fake, "first_romanized_name", "first_name", NAMES_PER_LOCALE) if _is_name(n)]
        last += [n for n in _draw(fake, "last_romanized_name", "last_name", NAMES_PER_LOCALE) if _is_name(n)]
    return first, last


def _companies() -> list[str]:
    companies: list[str] = []
    for offset, locale in enumerate(COMPANY_LOCALES):
        fake = _faker(locale, 100 + offset)
        for name in _draw(fake, "company", "company", COMPANIES_PER_LOCALE):
            # "Smith, Jones and Lee" would read as three names in a list; such law-firm names are left out.
            if "," not in name and is_latin_name(name.replace("&", "and")):
                companies.append(name)
    return companies


def _towns() -> list[str]:
    import importlib

    from faker.providers.geo import Provider as GeoProvider

    towns: list[str] = []
    rng = random.Random(INVENTORY_SEED)
    for locale in TOWN_LOCALES:
        provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        for attribute in TOWN_ATTRIBUTES:
            # Sorted: some providers build their tuple from a set (it_IT), whose order follows the hash seed.
            names = sorted(n for n in getattr(provider, attribute, ()) if isinstance(n, str) and is_latin_name(n))
            towns += rng.sample(names, min(TOWNS_PER_LOCALE, len(names)))
    towns += [place[2] for place in GeoProvider.land_coords if is_latin_name(place[2]) and place[2][0].isupper()]
    return towns


def _strip_qualifier(name: str) -> str:
    """pycountry's "Malay (macrolanguage)" -> "Malay", "Wales [Cymru GB-CYM]" -> "Wales"."""
    return re.sub(r"\s*[(\[].*?[)\]]", "", name).strip()


def _countries() -> tuple[list[str], list[str]]:
    import pycountry

    names: list[str] = []
    codes: list[str] = []
    for country in pycountry.countries:
        name = getattr(country, "common_name", None) or country.name
        if "," not in name and "(" not in name:
            names.append(name)
        codes.append(country.alpha_3)
    return names, codes


def _subdivisions() -> list[str]:
    import pycountry

    names: list[str] = []
    for code in SUBDIVISION_COUNTRIES:
        # pycountry answers a set: sorted by code, so the order does not depend on the hash seed.
        for subdivision in sorted(pycountry.subdivisions.get(country_code=code) or (), key=lambda s: s.code):
            name = _strip_qualifier(subdivision.name)
            if subdivision.type in SUBDIVISION_TYPES and is_latin_name(name):
                names.append(name)
    return names


def _languages() -> list[str]:
    import pycountry

    names = [_strip_qualifier(language.name) for language in pycountry.languages if hasattr(language, "alpha_2")]
    return [name for name in names if is_latin_name(name)]


def plain_words() -> frozenset[str]:
    """Casefolded words the corpus uses as plain text (never entities): names that equal one are dropped."""
    words: set[str] = set()
    for name in ("nouns", "verbs", "people", "days", "months", "holidays", "jobs", "roles", "titles", "adjectives"):
        for entry in read_list(DATA_DIR / "words" / f"{name}.txt"):
            for form in entry.split("|"):
                words.add(form.casefold())
    return frozenset(words)


@functools.cache
def inventories() -> Inventories:
    """The inventories, built on first use (a second or two) and cached for the process."""
    names = DATA_DIR / "names"
    words = plain_words()
    countries, codes = _countries()
    countries_all = _unique([*countries, *read_list(names / "country_aliases.txt")])
    nationalities = _unique(read_list(names / "nationalities.txt"))
    languages = _unique([*_languages(), *read_list(names / "languages.txt")])
    cities = _unique(read_list(names / "cities.txt"))
    regions = _unique(read_list(names / "regions.txt"))
    subdivisions = _unique(_subdivisions(), exclude=frozenset(x.casefold() for x in (*countries_all, *regions)))
    places = frozenset(x.casefold() for x in (*countries_all, *cities, *regions, *subdivisions))
    misc = frozenset(x.casefold() for x in (*nationalities, *languages))

    first, last = _people()
    hand_first, hand_last = read_list(names / "first_names.txt"), read_list(names / "surnames.txt")
    taken = places | misc | words
    first_names = _unique([*hand_first, *first], exclude=taken)
    surnames = _unique([*hand_last, *last], exclude=taken)
    people = frozenset(x.casefold() for x in (*first_names, *surnames))
    towns = _unique(_towns(), exclude=people | words | misc | places)
    return Inventories(
        first_names=first_names,
        surnames=surnames,
        # A company that is one word ("Chauvin") reads as a surname: only names of two or more words are kept.
        companies=_unique((c for c in _companies() if re.search(r"[ &-]", c)), exclude=places | misc | words | people),
        cities=cities,
        towns=towns,
        countries=countries_all,
        country_codes=_unique([*codes, *read_list(names / "ioc_codes.txt")]),
        subdivisions=subdivisions,
        regions=regions,
        languages=languages,
        nationalities=nationalities,
    )


def library_versions() -> str:
    """The versions of the libraries the inventories come from, for the build key."""
    from importlib.metadata import version

    return f"faker {version('faker')}; pycountry {version('pycountry')}"
