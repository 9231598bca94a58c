"""Synthetic NER training corpus for the offline demo model.

Why synthetic: the demo model must be buildable without network access, so no CoNLL download. Instead,
hand-written sentence templates are filled from hand-written name lists (plus invented names, so the model
learns from context rather than memorising the lists). Every sentence is built by concatenation, so the
character span of each entity is known exactly; tokens and IOB2 tags are derived from those spans, never
re-discovered from text.

The label scheme matches dslim/bert-base-NER, so a checkpoint built here is interchangeable with it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LABELS: tuple[str, ...] = ("O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {label: index for index, label in ID2LABEL.items()}
ENTITY_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC", "MISC")
# CrossEntropyLoss skips this target: used for continuation word pieces and special tokens.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Span:
    """An entity as a half-open character range of its sentence."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class Token:
    """A word of a sentence with its half-open character range."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    """One training sentence: its text, words with spans, one IOB2 tag per word, and the gold entities."""

    text: str
    tokens: tuple[Token, ...]
    tags: tuple[str, ...]
    entities: tuple[Span, ...]


# Words split like BERT's pre-tokenizer (runs of word characters, every punctuation mark on its own), so that a
# word here starts exactly where the tokenizer starts a word and "first word piece" means the same on both sides.
_WORD_RE = re.compile(r"\w+|[^\w\s]")


def tokenize_with_spans(text: str) -> tuple[Token, ...]:
    """Split text into words with character spans (BERT-style: punctuation marks are words of their own)."""
    return tuple(Token(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text))


def iob2_tags(tokens: Sequence[Token], entities: Sequence[Span]) -> tuple[str, ...]:
    """IOB2 tag per token from character-level entity spans.

    Raises ValueError when an entity boundary falls inside a word, because such a span cannot be expressed
    as word tags and would silently train the model on a wrong boundary.
    """
    tags = ["O"] * len(tokens)
    starts = {token.start: index for index, token in enumerate(tokens)}
    ends = {token.end: index for index, token in enumerate(tokens)}
    for span in sorted(entities, key=lambda s: s.start):
        if span.label not in ENTITY_TYPES:
            raise ValueError(f"unknown entity label {span.label!r}")
        if span.start not in starts or span.end not in ends:
            raise ValueError(f"entity {span} does not start and end on word boundaries")
        first, last = starts[span.start], ends[span.end]
        if any(tag != "O" for tag in tags[first : last + 1]):
            raise ValueError(f"entity {span} overlaps another entity")
        tags[first] = f"B-{span.label}"
        for index in range(first + 1, last + 1):
            tags[index] = f"I-{span.label}"
    return tuple(tags)


def align_labels(
    offsets: Sequence[tuple[int, int]],
    tokens: Sequence[Token],
    tags: Sequence[str],
    label2id: dict[str, int] = LABEL2ID,
) -> list[int]:
    """Label ids per word piece: the word's tag on its first piece, IGNORE_INDEX elsewhere.

    offsets is the fast tokenizer's offset_mapping for one sequence; special tokens have empty (s, s) spans.
    Only first pieces carry a label because the serving side aggregates with the "first" strategy: training
    the other pieces would spend capacity on predictions that are never read.
    """
    token_at_start = {token.start: index for index, token in enumerate(tokens)}
    labelled: set[int] = set()
    labels: list[int] = []
    for start, end in offsets:
        index = token_at_start.get(start)
        if start == end or index is None or index in labelled:
            labels.append(IGNORE_INDEX)
            continue
        labelled.add(index)
        labels.append(label2id[tags[index]])
    return labels


# ----------------------------------------------------------------------------------------------------------
# Name lists, written for this project. Some real names, many ordinary ones; deliberately NOT containing the
# people and most of the companies of the evaluation set, so the metric measures generalisation.
# ----------------------------------------------------------------------------------------------------------

FIRST_NAMES: tuple[str, ...] = (
    # English
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Margaret", "Anthony", "Sandra", "Donald", "Ashley",
    "Steven", "Kimberly", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Laura",
    "Kevin", "Rebecca", "Brian", "Rachel", "George", "Helen", "Edward", "Olivia", "Ryan", "Emma", "Jacob",
    "Hannah", "Nathan", "Chloe", "Oliver", "Grace", "Harry", "Amelia", "Jack", "Sophie", "Liam", "Ella",
    "Noah", "Megan", "Ethan", "Lucy", "Samuel", "Zoe", "Benjamin", "Claire", "Victoria", "Peter", "Simon",
    "Alice", "Frank", "Ruth", "Henry", "Diana", "Walter", "Jane",
    # German / Dutch
    "Jürgen", "Klaus", "Wolfgang", "Stefan", "Uwe", "Sabine", "Ursula", "Katrin", "Jörg", "Dieter", "Heike",
    "Birgit", "Lukas", "Felix", "Annika", "Matthias", "Tobias", "Anja", "Sven", "Maximilian", "Joost",
    "Annelies", "Pieter", "Femke",
    # French
    "François", "Hélène", "Amélie", "Jérôme", "Sébastien", "Élodie", "Benoît", "Chloé", "Théo", "Margaux",
    "Aurélien", "Léa", "Étienne", "Camille", "Antoine", "Juliette", "Pierre", "Isabelle",
    # Spanish / Portuguese
    "José", "María", "Javier", "Lucía", "Alejandro", "Sofía", "Diego", "Carmen", "Andrés", "Inés", "João",
    "Gonçalo", "Mariana", "Thiago", "Beatriz", "Raúl", "Ana", "Carlos", "Valentina", "Miguel", "Rocío",
    # Italian
    "Giuseppe", "Francesca", "Luca", "Giulia", "Matteo", "Chiara", "Alessandro", "Paola", "Marco", "Elena",
    # Nordic / Slavic / Baltic
    "Søren", "Ingrid", "Björn", "Åsa", "Lars", "Sigrid", "Mikael", "Freya", "Łukasz", "Agnieszka",
    "Wojciech", "Małgorzata", "Tomáš", "Zuzana", "Dmitri", "Olga", "Sergei", "Natalia", "Ivana", "Dragan",
    "Jānis", "Katarzyna", "Mikhail", "Tatiana",
    # South Asian
    "Arjun", "Priyanka", "Rahul", "Ananya", "Vikram", "Deepika", "Sanjay", "Kavya", "Rohan", "Meera",
    "Aditya", "Lakshmi", "Imran", "Ayesha", "Farhan",
    # East and South-East Asian
    "Wei", "Jun", "Mei", "Hao", "Xiaoming", "Haruto", "Yui", "Kenji", "Aiko", "Takeshi", "Sakura",
    "Min-jun", "Ji-woo", "Seo-yeon", "Hyun", "Linh", "Minh", "Siti", "Budi",
    # Middle East / Turkey / Iran
    "Omar", "Fatima", "Youssef", "Layla", "Khalid", "Amira", "Mehmet", "Ayşe", "Emre", "Zeynep", "Reza",
    "Shirin", "Tariq", "Nadia", "Hassan", "Leila",
    # African
    "Chidi", "Ngozi", "Kwame", "Ama", "Tendai", "Thandiwe", "Oluwaseun", "Amara", "Abebe", "Wanjiru", "Sipho",
    "Chiamaka", "Kwabena", "Nia",
)

SURNAMES: tuple[str, ...] = (
    # English
    "Smith", "Johnson", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Thomas", "Moore",
    "Jackson", "White", "Martin", "Thompson", "Clarke", "Walker", "Robinson", "Lewis", "Wright", "Hughes",
    "Green", "Hall", "Wood", "Turner", "Baker", "Edwards", "Collins", "Stewart", "Morris", "Murphy", "Reed",
    "Bailey", "Bennett", "Gray", "Fisher", "Hayes", "Palmer", "Price", "Sullivan", "Foster", "Russell",
    "Griffin", "Hamilton", "O'Brien", "O'Connor", "McDonald", "Fitzgerald", "Campbell", "Ellis", "Porter",
    # German / Dutch
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schäfer",
    "Koch", "Richter", "Krüger", "Wolf", "Schröder", "Neumann", "Zimmermann", "Braun", "Hartmann", "Lange",
    "Köhler", "Dietrich", "Vogel", "de Vries", "van Dijk", "Jansen", "Bakker", "Visser", "van der Berg",
    # French
    "Dubois", "Lefèvre", "Moreau", "Laurent", "Girard", "Bonnet", "Mercier", "Rousseau", "Fontaine",
    "Chevalier", "Bérenger", "Lambert", "Faure", "Gauthier", "Périer", "Duval", "Leclerc",
    # Spanish / Portuguese
    "Fernández", "López", "Martínez", "Rodríguez", "González", "Pérez", "Gómez", "Díaz", "Herrera",
    "Navarro", "Ortega", "Silva", "Santos", "Oliveira", "Pereira", "Costa", "Ribeiro", "Carvalho", "Araújo",
    "Castillo", "Ramírez", "Vargas",
    # Italian
    "Rossi", "Russo", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno",
    "Conti", "De Luca", "Mancini", "Lombardi",
    # Nordic / Slavic / Baltic / Balkan
    "Johansson", "Lindqvist", "Nielsen", "Hansen", "Jensen", "Andersen", "Eriksson", "Kowalczyk", "Nowak",
    "Wiśniewski", "Zieliński", "Dvořák", "Novák", "Horváth", "Petrov", "Ivanova", "Volkov", "Sokolov",
    "Kovačević", "Popescu", "Ozoliņš", "Kuznetsov", "Lindström", "Virtanen",
    # South Asian
    "Patel", "Gupta", "Singh", "Kumar", "Reddy", "Iyer", "Nair", "Mehta", "Chatterjee", "Banerjee", "Rao",
    "Desai", "Joshi", "Kapoor", "Chaudhry", "Qureshi",
    # East and South-East Asian
    "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Nakamura", "Suzuki", "Takahashi",
    "Watanabe", "Yamamoto", "Kobayashi", "Kim", "Park", "Lee", "Choi", "Jung", "Nguyen", "Tran", "Pham",
    "Santoso", "Wijaya",
    # Middle East / Turkey / Iran
    "Haddad", "Khoury", "Mansour", "Aziz", "Rahman", "Yilmaz", "Demir", "Şahin", "Öztürk", "Karimi",
    "Hosseini", "Al-Farsi", "El-Sayed",
    # African
    "Okafor", "Adeyemi", "Mensah", "Boateng", "Mwangi", "Otieno", "Nkosi", "Dlamini", "Diallo", "Traoré",
    "Kamara", "Okonkwo", "Tesfaye", "Banda",
)

REAL_COMPANIES: tuple[str, ...] = (
    "Siemens", "Toyota", "Nestlé", "Philips", "Heineken", "Renault", "Peugeot", "Fiat", "Ericsson",
    "Vodafone", "Santander", "Barclays", "HSBC", "Shell", "BP", "TotalEnergies", "Adidas", "Puma", "BMW",
    "Daimler", "Bayer", "BASF", "SAP", "Allianz", "Novartis", "Roche", "Intel", "Oracle", "Cisco", "Adobe",
    "Pfizer", "Moderna", "Walmart", "Starbucks", "McDonald's", "Nike", "Disney", "Uber", "Airbnb", "Alibaba",
    "Tencent", "Baidu", "Infosys", "Tata Motors", "Reliance Industries", "Hyundai", "LG", "Panasonic",
    "Hitachi", "Nintendo", "Xiaomi", "Lenovo", "Canon", "Rolls-Royce", "UniCredit", "Carrefour", "L'Oréal",
    "Danone", "Inditex", "H&M", "Maersk", "Equinor", "Lego", "Ryanair", "Emirates", "KLM", "Air France",
    "Qantas", "Goldman Sachs", "JPMorgan Chase", "Morgan Stanley", "Deloitte", "PwC", "KPMG", "McKinsey",
    "Accenture", "Ford", "General Motors", "Chevron", "ExxonMobil", "Procter & Gamble", "Johnson & Johnson",
    "PepsiCo", "Visa", "Mastercard", "PayPal", "eBay", "Dell", "HP", "Qualcomm", "AMD", "Salesforce",
    "Zoom", "Dropbox", "Volvo", "Scania", "Ikea Group", "Petrobras", "Vale", "Gazprom", "Aramco", "Etihad",
    "Standard Chartered", "Credit Suisse", "UBS", "ABB", "Nordea", "Telefónica", "Enel", "Iberdrola",
)

INSTITUTIONS: tuple[str, ...] = (
    "NATO", "UNESCO", "UNICEF", "World Bank", "International Monetary Fund", "Red Cross", "Greenpeace",
    "Amnesty International", "FIFA", "UEFA", "Interpol", "Bundesbank", "Federal Reserve",
    "European Central Bank", "World Trade Organization", "African Union", "OPEC", "Bank of England",
    "Supreme Court", "Congress", "Parliament", "European Commission", "Associated Press", "BBC", "CNN",
    "Al Jazeera", "Le Monde", "Financial Times", "Wall Street Journal", "Bloomberg", "Der Spiegel",
    "MIT", "Yale University", "Princeton University", "Sorbonne", "ETH Zurich", "Karolinska Institute",
    "Max Planck Society", "NASA", "European Space Agency", "Labour Party", "Green Party", "Democratic Party",
    "Real Madrid", "Manchester United", "Bayern Munich", "Juventus", "Ajax", "Boston Celtics", "Los Angeles Lakers",
    "Médecins Sans Frontières", "Oxfam", "Save the Children", "Human Rights Watch", "House of Commons",
    "House of Representatives", "Bundestag", "National Assembly", "Arab League", "Council of Europe",
    "World Food Programme", "Agence France-Presse", "AFP", "Xinhua", "Kyodo News", "Sky News", "NPR",
    "New York Times", "Washington Post", "Guardian", "Ministry of Health", "Foreign Office", "Pentagon",
    "Kremlin", "Nobel Committee", "International Olympic Committee", "Scotland Yard", "FBI",
)

# Parts of invented company names: "Northwind Logistics", "Cobaltgate AG", "Meyer & Santos".
_COMPANY_HEADS: tuple[str, ...] = (
    "North", "Blue", "Silver", "Red", "Iron", "Bright", "Clear", "Green", "Stone", "Oak", "Summit", "Harbor",
    "Falcon", "Orion", "Atlas", "Nova", "Vertex", "Crescent", "Pioneer", "Meridian", "Kestrel", "Cobalt",
    "Zenith", "Polar", "Lumen", "Aster", "Granite", "Cedar", "Helix", "Quantum", "Sun", "River", "Eagle",
)
_COMPANY_TAILS: tuple[str, ...] = (
    "wind", "field", "bridge", "stone", "wave", "point", "gate", "line", "peak", "rock", "light", "works",
    "star", "path", "core", "", "", "",
)
_COMPANY_SUFFIXES: tuple[str, ...] = (
    "Logistics", "Systems", "Technologies", "Group", "Holdings", "Bank", "Energy", "Pharmaceuticals", "Motors",
    "Airlines", "Foods", "Capital", "Insurance", "Media", "Labs", "Partners", "Inc.", "Ltd.", "AG", "GmbH",
    "S.A.", "Corp.", "Solutions", "Analytics", "Robotics", "Telecom", "Software", "Steel", "Chemicals",
    "Retail", "Ventures", "Biotech", "Mining", "Shipping", "Consulting", "Brewery", "Studios", "Securities",
)

CITIES: tuple[str, ...] = (
    "Paris", "London", "Rome", "Berlin", "Madrid", "Barcelona", "Lisbon", "Milan", "Naples", "Hamburg",
    "Cologne", "Stuttgart", "Lyon", "Marseille", "Brussels", "Antwerp", "Rotterdam", "Copenhagen", "Oslo",
    "Bergen", "Gothenburg", "Kraków", "Budapest", "Bucharest", "Sofia", "Athens", "Istanbul", "Ankara",
    "Tehran", "Baghdad", "Dubai", "Doha", "Riyadh", "Jerusalem", "Beirut", "Casablanca", "Tunis", "Lagos",
    "Accra", "Nairobi", "Addis Ababa", "Johannesburg", "Cape Town", "Kinshasa", "Dakar", "New Delhi",
    "Bangalore", "Chennai", "Kolkata", "Karachi", "Lahore", "Dhaka", "Colombo", "Kathmandu", "Bangkok",
    "Hanoi", "Ho Chi Minh City", "Jakarta", "Manila", "Singapore", "Kuala Lumpur", "Hong Kong", "Taipei",
    "Shenzhen", "Guangzhou", "Kyoto", "Yokohama", "Busan", "Sydney", "Brisbane", "Perth", "Auckland",
    "Wellington", "Vancouver", "Montreal", "Ottawa", "Calgary", "Boston", "Philadelphia", "Atlanta", "Miami",
    "Dallas", "Houston", "Denver", "Phoenix", "San Francisco", "San Diego", "Portland", "Detroit",
    "Minneapolis", "New Orleans", "Nashville", "Havana", "Bogotá", "Lima", "Santiago", "Buenos Aires",
    "São Paulo", "Rio de Janeiro", "Caracas", "Quito", "Montevideo", "Edinburgh", "Glasgow", "Manchester",
    "Liverpool", "Birmingham", "Cardiff", "Belfast", "Zagreb", "Belgrade", "Ljubljana", "Tallinn", "Riga",
    "Vilnius", "Minsk", "Gdańsk", "Łódź", "Malmö", "Reykjavik", "Porto", "Seville", "Valencia", "Bilbao",
    "Turin", "Florence", "Venice", "Bologna", "Basel", "Bern", "Salzburg", "Graz", "Düsseldorf", "Leipzig",
    "Nuremberg", "Bordeaux", "Nice", "Lille", "Strasbourg", "Nantes", "Marrakesh", "Abuja", "Kampala",
    "Lusaka", "Harare", "Durban", "Islamabad", "Hyderabad", "Pune", "Chengdu", "Wuhan", "Sapporo", "Nagoya",
    "Incheon", "Adelaide", "Christchurch", "Winnipeg", "Halifax", "Pittsburgh", "Baltimore", "Cleveland",
    "Sacramento", "Guadalajara", "Monterrey", "Medellín", "Córdoba", "Valparaíso", "Tbilisi", "Yerevan",
    "Baku", "Almaty", "Tashkent", "Muscat", "Amman", "Tel Aviv",
)

COUNTRIES: tuple[str, ...] = (
    "Germany", "France", "Italy", "Portugal", "Netherlands", "Belgium", "Austria", "Switzerland", "Poland",
    "Czech Republic", "Hungary", "Romania", "Greece", "Turkey", "Russia", "Denmark", "Ireland", "Scotland",
    "Wales", "England", "Britain", "United Kingdom", "United States", "America", "Brazil", "Argentina",
    "Colombia", "Venezuela", "Ecuador", "Bolivia", "Uruguay", "Cuba", "Jamaica", "Egypt", "Morocco",
    "Algeria", "Tunisia", "Ghana", "Ethiopia", "Tanzania", "Uganda", "South Korea", "North Korea", "Japan",
    "China", "Taiwan", "Vietnam", "Thailand", "Indonesia", "Malaysia", "Philippines", "Australia",
    "Pakistan", "Bangladesh", "Sri Lanka", "Nepal", "Iran", "Iraq", "Israel", "Jordan", "Lebanon", "Syria",
    "Qatar", "Kazakhstan", "Mongolia", "Senegal", "Cameroon", "Zimbabwe", "Zambia", "Angola", "Mozambique",
    "Iceland", "Estonia", "Latvia", "Lithuania", "Serbia", "Croatia", "Slovenia", "Bulgaria", "Georgia",
    "Armenia", "Oman", "Kuwait", "Rwanda", "Namibia", "Botswana", "Paraguay", "Costa Rica", "Panama",
    "Guatemala", "Honduras", "Luxembourg", "Malta", "Cyprus", "Slovakia", "Belarus", "Moldova",
)

REGIONS: tuple[str, ...] = (
    "Europe", "Asia", "Africa", "Latin America", "Middle East", "Scandinavia", "Bavaria", "Catalonia",
    "California", "Texas", "Florida", "Ontario", "Quebec", "Siberia", "Patagonia", "Alps", "Sahara",
    "Himalayas", "Pacific", "Mediterranean", "Baltic Sea", "Danube", "Rhine", "Balkans", "Caribbean",
    "North Sea", "Andes", "Tuscany", "Sicily", "Crete", "Bali", "Hokkaido", "Yorkshire", "Normandy",
    "Provence", "Kashmir", "Punjab", "Queensland", "Alaska", "Arizona", "Oregon", "Michigan", "Ohio",
    "Gulf of Mexico", "Indian Ocean", "Lake Geneva", "Black Forest", "Silicon Valley", "Central Asia",
    "New Jersey", "New Mexico", "New South Wales", "New England", "New Caledonia", "Papua New Guinea",
    "Newfoundland", "South America", "North Africa", "West Bank", "East Timor", "Hong Kong Island",
)

NATIONALITIES: tuple[str, ...] = (
    "German", "French", "Spanish", "Italian", "Portuguese", "Belgian", "Austrian", "Swiss", "Polish", "Czech",
    "Hungarian", "Romanian", "Greek", "Turkish", "Russian", "Ukrainian", "Danish", "Swedish", "Norwegian",
    "Finnish", "Irish", "Scottish", "British", "English", "American", "Mexican", "Argentine", "Chilean",
    "Peruvian", "Cuban", "Egyptian", "Moroccan", "Nigerian", "Kenyan", "Ghanaian", "Ethiopian",
    "South African", "Pakistani", "Vietnamese", "Thai", "Indonesian", "Filipino", "Australian", "Iranian",
    "Iraqi", "Israeli", "Saudi", "Lebanese", "Syrian", "European", "African", "Asian", "Latin American",
    "Arab", "Scandinavian", "Catalan", "Bavarian", "Texan", "Canadian", "Icelandic", "Serbian", "Croatian",
    "Bulgarian", "Taiwanese", "Malaysian", "Bangladeshi", "Nepalese", "Sri Lankan", "Venezuelan",
    "Uruguayan", "Algerian", "Tunisian", "Senegalese", "Zimbabwean", "Estonian", "Lithuanian",
)

LANGUAGES: tuple[str, ...] = (
    "English", "German", "French", "Spanish", "Portuguese", "Italian", "Arabic", "Hindi", "Mandarin",
    "Cantonese", "Japanese", "Korean", "Russian", "Polish", "Swahili", "Turkish", "Dutch", "Greek", "Hebrew",
    "Urdu", "Bengali", "Tamil", "Vietnamese", "Finnish", "Swedish", "Norwegian", "Danish", "Czech", "Latin",
    "Yoruba", "Persian", "Thai", "Hungarian", "Catalan", "Basque", "Welsh", "Irish", "Zulu", "Amharic",
)

EVENTS: tuple[str, ...] = (
    "World Cup", "Olympics", "Winter Olympics", "Paralympics", "Wimbledon", "Australian Open",
    "Champions League", "Europa League", "Eurovision Song Contest", "Venice Film Festival",
    "Berlin Film Festival", "Toronto Film Festival", "Oscars", "Academy Awards", "Golden Globes",
    "Grammy Awards", "Nobel Prize", "Nobel Peace Prize", "Pulitzer Prize", "Booker Prize", "Giro d'Italia",
    "Vuelta a España", "Boston Marathon", "London Marathon", "Ryder Cup", "Davis Cup", "Rugby World Cup",
    "Africa Cup of Nations", "Copa America", "Asian Games", "Commonwealth Games", "Monaco Grand Prix",
    "Dakar Rally", "Oktoberfest", "Second World War", "Cold War", "Edinburgh Fringe", "Glastonbury Festival",
    "Paris Air Show", "Mobile World Congress", "Women's World Cup", "Stanley Cup", "NBA Finals",
    "Tour de Suisse", "Tour of Flanders", "Paris-Roubaix", "24 Hours of Le Mans", "Critérium du Dauphiné",
    "Six Nations", "Masters Tournament", "Chelsea Flower Show", "Frankfurt Book Fair", "Carnival of Venice",
)

# MISC beyond nationalities, languages and events: products, religions, works — as in CoNLL-2003.
OTHER_MISC: tuple[str, ...] = (
    "iPhone", "Windows", "PlayStation", "Android", "Boeing 747", "Christian", "Muslim", "Buddhist",
    "Catholic", "Hindu", "Jewish", "Protestant", "Harry Potter", "Star Wars", "Kindle", "Linux",
)

TITLES: tuple[str, ...] = (
    "Dr.", "Mr.", "Mrs.", "Ms.", "Prof.", "President", "Senator", "Minister", "Judge", "Coach", "Captain",
    "General", "Sir", "Professor", "Doctor", "Chancellor", "Governor", "Mayor", "Inspector", "Sister",
)

ROLES: tuple[str, ...] = (
    "chief executive", "spokesperson", "finance minister", "foreign minister", "head coach", "chairman",
    "founder", "chief economist", "prime minister", "president", "director", "managing director",
    "head of research", "press officer", "ambassador", "lead engineer", "vice president", "treasurer",
    "general counsel", "chief scientist", "team captain", "editor", "analyst", "mayor", "governor",
)

JOBS: tuple[str, ...] = (
    "engineer", "teacher", "nurse", "doctor", "lawyer", "journalist", "farmer", "student", "artist", "writer",
    "scientist", "architect", "pilot", "chef", "photographer", "economist", "diplomat", "banker", "actor",
    "singer", "footballer", "tennis player", "cyclist", "novelist", "programmer", "historian",
)

THINGS: tuple[str, ...] = (
    "the budget", "the report", "the new policy", "the contract", "the merger", "the election",
    "the proposal", "the deal", "the plan", "the project", "the decision", "the agreement", "the results",
    "the investigation", "the trial", "the strike", "the vaccine", "the new model", "the bridge",
)

# Common nouns and adjectives put where entities usually stand ("spent years in prison", "a small bakery",
# "its tea business"), so that the slot alone does not make a word an entity.
PLACE_NOUNS: tuple[str, ...] = (
    "prison", "hospital", "school", "the office", "the park", "town", "the suburbs", "the countryside",
    "a village", "the mountains", "the kitchen", "a hotel", "the shelter", "the garden", "the market",
    "the city centre", "college", "church", "the airport", "the station", "the factory", "the lab", "court",
    "the capital", "exile", "the north", "the south", "the desert", "the forest", "the harbour", "hiding",
    "the old town", "the border", "the coast", "a refugee camp", "the barracks", "a monastery",
)
ADJECTIVES: tuple[str, ...] = (
    "small", "large", "local", "private", "public", "new", "old", "big", "young", "famous", "popular",
    "national", "regional", "global", "foreign", "leading", "family-owned", "state-owned", "independent",
)
BUSINESSES: tuple[str, ...] = (
    "bakery", "restaurant", "shop", "bank", "company", "firm", "factory", "farm", "hotel", "clinic",
    "startup", "newspaper", "bookshop", "brewery", "airline", "law firm", "hedge fund", "charity",
    "football club", "equity firm", "investment fund", "supermarket chain", "car dealer",
)
PRODUCTS: tuple[str, ...] = (
    "tea", "coffee", "steel", "chip", "software", "insurance", "furniture", "toy", "beer", "wine", "oil",
    "gas", "car", "battery", "phone", "cement", "sugar", "cotton", "timber", "solar panel", "vaccine",
)
SPORTS: tuple[str, ...] = (
    "cricket", "football", "rugby", "tennis", "hockey", "basketball", "cycling", "athletics", "swimming",
    "volleyball", "chess", "ski",
)
HAPPENINGS: tuple[str, ...] = (
    "pandemic", "war", "recession", "crisis", "election", "strike", "flood", "drought", "summit",
    "festival", "tournament", "final", "conference", "heatwave", "lockdown", "scandal", "trial",
)

DAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)

# Syllables for invented names, so that a share of the entities are words the model cannot have memorised.
_SYLLABLES: tuple[str, ...] = (
    "ka", "ren", "to", "mi", "la", "vor", "den", "sa", "el", "an", "dra", "ri", "ko", "ne", "bel", "tan",
    "mar", "lo", "zi", "sha", "ver", "nu", "gor", "ha", "li", "dro", "fe", "ga", "jo", "qui", "wen", "os",
    "tri", "bo", "ul", "ce", "mo", "rak", "sen", "ti", "vy", "ash", "il", "pe", "dun", "mer", "ya", "zo",
)
_PLACE_SUFFIXES: tuple[str, ...] = (
    "burg", "ville", "ford", "stadt", "pur", "abad", "grad", "ton", "holm", "dorf", "mouth", "field", "haven",
)

# ----------------------------------------------------------------------------------------------------------
# Templates. {SLOT}s are filled by _FILLERS; entity slots become spans. Shapes are varied on purpose:
# entities first and last, several entities, same-type lists, possessives, titles, quotes, questions, and
# sentences with no entity at all (they teach the model that capitalised or common words are O).
# ----------------------------------------------------------------------------------------------------------

TEMPLATES: tuple[str, ...] = (
    # people and places
    "{PER} met {PER} in {CITY}.",
    "{PER} will meet {TITLE} {SUR} in {CITY} next week.",
    "{PER} was born in {CITY} and grew up in {COUNTRY}.",
    "{PER} grew up in {CITY} before moving to {CITY}.",
    "{PER} lives in {CITY} with her two children.",
    "{PER} lives in {CITY} with his wife.",
    "{PER} flew to {CITY} on {DAY} to sign the deal.",
    "{PER}, who was born in {COUNTRY}, has lived in {CITY} since {YEAR}.",
    "{FIRST} and {FIRST} spent their holiday in {LOC}.",
    "{FIRST} told me she had never been to {LOC}.",
    "{FIRST} is moving to {CITY} in {MONTH}.",
    "My friend {FIRST} works as a {JOB} in {CITY}.",
    "{PER}, a {JOB} from {CITY}, won the competition.",
    "{PER}, a {NAT} {JOB}, died on {DAY} at the age of {NUM}.",
    "The {NAT} {JOB} {PER} has been living in {CITY} for years.",
    "{PER} and {PER} were seen together in {CITY}.",
    "{PERS} attended the ceremony in {CITY}.",
    "Police in {CITY} said {PER} had been arrested.",
    "{TITLE} {PER} will speak at the conference in {CITY}.",
    "{TITLE} {SUR} arrived in {CITY} late on {DAY}.",
    "{TITLE} {PER} of {INST} led the study.",
    "The study was led by {TITLE} {PER} of {INST}.",
    "{PER}'s new book is set in {LOC}.",
    "{PER}'s family comes from {CITY}.",
    "{SUR}'s goal gave {ORG} the lead.",
    "We had dinner with {FIRST} {SUR} in {CITY}.",
    "Have you heard from {FIRST} since she moved to {CITY}?",
    "Did {FIRST} really move to {COUNTRY}?",
    "{FIRST}, can you call me when you land in {CITY}?",
    "{FIRST} says hello from {CITY}!",
    "Ask {FIRST} about the trip to {LOC}.",
    "I met {PER} at a conference in {CITY} last year.",
    "Thanks to {PER} for the tour of {CITY}.",
    "{PER} painted the portrait in {CITY} in {YEAR}.",
    "{PER} is the first woman to lead {ORG}.",
    "It was {PER} who found the letter.",
    # people and organisations
    "{PER} said {ORG} would cut {NUM} jobs.",
    "{PER} joined {ORG} in {YEAR}.",
    "{PER} left {ORG} to join {ORG}.",
    "{PER}, the {ROLE} of {ORG}, resigned on {DAY}.",
    "{ORG} appointed {PER} as its new {ROLE}.",
    "{ORG} named {PER} {ROLE} on {DAY}.",
    "{ORG} {ROLE} {PER} said the results were disappointing.",
    "{ORG}'s {ROLE} {PER} declined to comment.",
    "\"We are very pleased with {THING},\" said {PER}, {ROLE} of {ORG}.",
    "\"This is a great day for {CITY},\" {PER} told reporters.",
    "\"I am proud of the team,\" {SUR} said after the match.",
    "{PER} has worked for {ORG} for {NUM} years.",
    "{PER} works at {ORG} in {CITY}.",
    "{PER} founded {CO} in {CITY} in {YEAR}.",
    "{PER} started {CO} with {PER} in {YEAR}.",
    "{PER} sold {CO} to {CO} last year.",
    "{PER} studied law at {INST} before joining {CO}.",
    "{PER} is a professor of history at {INST}.",
    "According to {PER}, {ORG} will open an office in {CITY}.",
    "{PER} told {INST} that the talks had failed.",
    "{PER} sued {CO} over {THING}.",
    "{PER} is expected to replace {PER} as head of {ORG}.",
    "{ORG} hired {PER} from {ORG}.",
    "{PER} and {PER} of {ORG} wrote the report.",
    "Former {ORG} executive {PER} was fined in {COUNTRY}.",
    "{SUR} signed a two-year contract with {ORG}.",
    # organisations and places
    "{CO} opened a new factory in {CITY}.",
    "{CO} is headquartered in {CITY}.",
    "{CO} will move its headquarters from {CITY} to {CITY}.",
    "{CO} has offices in {LOCS}.",
    "{CO} plans to expand into {LOCS}.",
    "{CO} sells its products in {LOCS}.",
    "{CO} reported a loss for {YEAR}.",
    "{CO} shares fell {NUM} percent on {DAY}.",
    "Shares in {CO} rose after the announcement.",
    "{CO} agreed to buy {CO} for ${NUM} million.",
    "{CO} and {CO} announced a merger on {DAY}.",
    "{CO} and {CO} will build a plant near {CITY}.",
    "{CO}, based in {CITY}, makes parts for {CO}.",
    "The {CITY}-based company {CO} is hiring.",
    "{CO} recalled {NUM} cars in {COUNTRY}.",
    "{CO} cut prices across {LOC}.",
    "{CO} was fined by {INST}.",
    "{INST} opened an investigation into {CO}.",
    "{INST} approved the takeover of {CO} by {CO}.",
    "{INST} warned that growth in {LOC} would slow.",
    "{INST} sent aid to {LOCS}.",
    "{INST} has members in {LOCS}.",
    "{INST} will hold its annual meeting in {CITY}.",
    "The {NAT} company {CO} opened a branch in {CITY}.",
    "The {NAT} bank {CO} reported higher profits.",
    "The {NAT} carmaker {CO} recalled {NUM} vehicles.",
    "A {NAT} court ordered {CO} to pay damages.",
    "Workers at {CO} in {CITY} went on strike.",
    "{CO} employs {NUM} people in {COUNTRY}.",
    "The deal between {ORG} and {ORG} collapsed.",
    "{ORG}, {ORG} and {ORG} signed the agreement.",
    "{ORGS} are competing for the contract.",
    "Analysts at {CO} expect growth in {LOC}.",
    "{CO}'s new store in {CITY} opens on {DAY}.",
    "{CO}'s profits doubled in {YEAR}.",
    "A spokesperson for {CO} said the site in {CITY} would close.",
    "{CO} said demand in {LOC} remained weak.",
    "{CO} flies from {CITY} to {CITY} twice a day.",
    "{CO} suspended flights to {CITY}.",
    "{ORG} beat {ORG} 2-1 in {CITY}.",
    "{ORG} won the {EVENT} for the first time.",
    "{PER} visited the {CO} office in {CITY}.",
    "{PER} toured the {CO} factory near {CITY}.",
    "The {CO} store in {CITY} was closed for a week.",
    "{CO} is building a {PRODUCT} plant in {CITY}.",
    "{CO} sold its {PRODUCT} business to a {ADJ} {BUSINESS}.",
    "{CO} bought a {ADJ} {PRODUCT} maker in {COUNTRY}.",
    "{PER} manages a {ADJ} {BUSINESS} on the edge of {CITY}.",
    "{PER} testified before the {INST} on {DAY}.",
    "{PER} served as {ROLE} of the {INST} for {NUM} years.",
    "According to {INST}, the talks in {CITY} ended without agreement.",
    "According to the {INST}, {NUM} people were killed.",
    "Members of the {INST} voted against {THING}.",
    "The {INST} warned about the risk of a {HAPPENING}.",
    "{INST} reported that {PER} had resigned.",
    "The {INST} and the {INST} disagreed over {THING}.",
    "{PER} led {COUNTRY} through the {HAPPENING}.",
    "{PER} spent {NUM} years in {PLACE} before moving to {CITY}.",
    "{PER} grew up in {PLACE} near {CITY}.",
    # places only
    "{COUNTRY} was hit hard by the {HAPPENING}.",
    "The {HAPPENING} changed life in {CITY}.",
    "The {HAPPENING} in {LOC} lasted {NUM} days.",
    "The flight from {CITY} to {CITY} was cancelled.",
    "The road between {CITY} and {CITY} is closed.",
    "Heavy rain caused floods in {LOC}.",
    "Temperatures in {LOC} reached {NUM} degrees.",
    "An earthquake struck {LOC} on {DAY}.",
    "{CITY} is the capital of {COUNTRY}.",
    "{CITY} is the largest city in {COUNTRY}.",
    "{CITY} lies on the border between {COUNTRY} and {COUNTRY}.",
    "We drove from {CITY} to {CITY} in one day.",
    "We visited {LOCS} last summer.",
    "They travelled through {LOCS}.",
    "Prices in {LOC} have risen sharply.",
    "Tourists are returning to {LOC}.",
    "{COUNTRY} and {COUNTRY} signed a trade agreement.",
    "{COUNTRY} will host the summit in {CITY}.",
    "Talks between {COUNTRY} and {COUNTRY} resumed in {CITY}.",
    "{COUNTRY} beat {COUNTRY} in the final.",
    "Exports from {COUNTRY} to {COUNTRY} grew last year.",
    "The border between {COUNTRY} and {COUNTRY} was reopened.",
    "Is it cheaper to live in {CITY} or {CITY}?",
    "The train to {CITY} leaves at {NUM} o'clock.",
    "She took the night bus from {CITY} to {CITY}.",
    "Snow fell across {LOC} overnight.",
    "Most of the wine comes from {LOC}.",
    "The river flows from {LOC} into the {LOC}.",
    "The museum in {CITY} reopened after {NUM} years.",
    "The mayor of {CITY} announced new bike lanes.",
    "I grew up near {CITY}, in the north of {COUNTRY}.",
    "Greetings from {CITY}!",
    # misc: nationalities, languages, events, products
    "The {NAT} government rejected the plan.",
    "The {NAT} prime minister visited {CITY} on {DAY}.",
    "The {NAT} president {PER} met {NAT} leaders in {CITY}.",
    "{NAT} and {NAT} officials met in {CITY}.",
    "Several {NAT} tourists were injured in {CITY}.",
    "{NAT} voters go to the polls on {DAY}.",
    "{NAT} troops left {LOC} in {YEAR}.",
    "The film was made by a {NAT} director.",
    "He is a {NAT} citizen living in {COUNTRY}.",
    "She speaks {LANGS}.",
    "He learned {LANG} while living in {CITY}.",
    "The book has been translated into {LANGS}.",
    "The sign was written in {LANG} and {LANG}.",
    "Classes are taught in {LANG}.",
    "{PER} speaks fluent {LANG}.",
    "{PER} won gold at the {EVENT} in {CITY}.",
    "{PER} won the {EVENT} in {YEAR}.",
    "{PER} is the favourite to win the {EVENT}.",
    "{COUNTRY} will host the {EVENT} in {YEAR}.",
    "The {EVENT} will take place in {CITY}.",
    "Tickets for the {EVENT} sold out in minutes.",
    "{PER} withdrew from the {EVENT} with an injury.",
    "{ORG} reached the final of the {EVENT}.",
    "The {YEAR} {EVENT} was held in {COUNTRY}.",
    "Millions watched the {EVENT} on television.",
    "{PER} was awarded the {EVENT} for his work on climate.",
    "{CO} launched a new {MISC} app.",
    "The {NAT} {SPORT} team arrived in {CITY} on {DAY}.",
    "The {NAT} {SPORT} team lost to {COUNTRY} in the final.",
    "{PER} plays for the {NAT} {SPORT} team.",
    "The {NAT} {BUSINESS} {CO} cut {NUM} jobs.",
    "The {MISC} community in {CITY} celebrated the new year.",
    "I bought a new {MISC} phone in {CITY}.",
    # multiple entities of the same type side by side
    "{LOCS} are among the most expensive cities in the world.",
    "Flights to {LOCS} were delayed.",
    "{PERS_LIST} attended the meeting.",
    "The prize was shared by {PERS_LIST}.",
    "Leaders from {LOCS} met in {CITY}.",
    "The band will tour {LOCS} next year.",
    "Investors include {ORGS}.",
    "{NATS} fans celebrated in the streets.",
    # no entities: capitalised words at the start, days, months, titles, numbers
    "The meeting has been moved to {DAY}.",
    "The weather was terrible on {DAY}.",
    "Prices rose by {NUM} percent in {MONTH}.",
    "The report will be published in {MONTH}.",
    "We should leave before the traffic gets worse.",
    "Can you send me the slides before lunch?",
    "The committee rejected {THING} by {NUM} votes to {NUM}.",
    "The company said profits would fall this year.",
    "Our team finished the project two weeks early.",
    "The new model is faster and uses less memory.",
    "Nobody knows when the work will be finished.",
    "The children played in the park until dark.",
    "The bank raised interest rates again on {DAY}.",
    "The government announced {THING} on {DAY}.",
    "The president will address the nation tonight.",
    "The doctor said the patient was recovering well.",
    "The minister resigned after a week of criticism.",
    "I think the second option is better.",
    "The storm knocked out power to {NUM} homes.",
    "Thanks for your help with {THING}!",
    "Please call me back when you have a minute.",
    "The shop closes at six on weekdays.",
    "Sales fell sharply in the first quarter.",
    "The city council will vote on {THING} in {MONTH}.",
    "The museum is free on the first {DAY} of every month.",
    "The professor asked the students to read two chapters.",
    "The coach praised the players after the match.",
    "Happy birthday, and see you on {DAY}!",
    "Why did the train stop in the middle of nowhere?",
    "{NUM} people were injured in the accident.",
    "The judge delayed {THING} until {MONTH}.",
    "Demand for electric cars keeps growing.",
    "She finally passed her driving test.",
    "The river burst its banks after days of rain.",
    "The captain said the crew was safe.",
    "He spent {NUM} years in {PLACE}.",
    "We adopted a dog from {PLACE}.",
    "She runs a {ADJ} {BUSINESS} near {PLACE}.",
    "The {PRODUCT} business was sold to a {ADJ} {BUSINESS}.",
    "The {ADJ} {BUSINESS} is building a {PRODUCT} plant near {PLACE}.",
    "Prices of {PRODUCT} rose during the {HAPPENING}.",
    "The {SPORT} team arrived late on {DAY}.",
    "The {HAPPENING} hit {ADJ} businesses hardest.",
    "They met at a {SPORT} match in {PLACE}.",
    "Life in {PLACE} changed after the {HAPPENING}.",
    "A {ADJ} {BUSINESS} bought the old {PRODUCT} factory.",
    "Her brother works for a {ADJ} {BUSINESS} in {PLACE}.",
)

# Prefixes and suffixes wrapped around some sentences so entities are not always at the same position.
_PREFIXES: tuple[str, ...] = (
    "On {DAY}, ", "In {YEAR}, ", "Last {MONTH}, ", "Meanwhile, ", "However, ", "Earlier this week, ",
    "According to reports, ", "In a statement, ", "Yesterday ", "Separately, ", "As expected, ",
    "Officials said ", "It is reported that ", "Last year, ", "In {MONTH} {YEAR}, ",
)
_SUFFIXES: tuple[str, ...] = (
    " on {DAY}", ", officials said", ", sources said", " last year", " in {MONTH}", ", reports say",
    " earlier this month", ", the agency reported", " in {YEAR}",
)

_SLOT_RE = re.compile(r"\{([A-Z_]+)\}")

# A rendered slot: pieces of text, each with its entity label or None for plain text.
Segments = list[tuple[str, str | None]]


def _invented_word(rng: random.Random, syllables: tuple[int, int] = (2, 3)) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(*syllables)))
    return word.capitalize()


def _first_name(rng: random.Random) -> str:
    return _invented_word(rng) if rng.random() < 0.15 else rng.choice(FIRST_NAMES)


def _surname(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return _invented_word(rng)
    if roll < 0.19:
        return f"{rng.choice(SURNAMES)}-{rng.choice(SURNAMES)}"
    return rng.choice(SURNAMES)


def _person(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.07:
        return f"{_first_name(rng)} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {_surname(rng)}"
    if roll < 0.13:
        return f"{_first_name(rng)} {_first_name(rng)} {_surname(rng)}"
    if roll < 0.18:
        return f"{_first_name(rng)} {_surname(rng)} {_surname(rng)}"
    return f"{_first_name(rng)} {_surname(rng)}"


def _company(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.40:
        return rng.choice(REAL_COMPANIES)
    if roll < 0.60:
        name = rng.choice(_COMPANY_HEADS) + rng.choice(_COMPANY_TAILS)
        return name if rng.random() < 0.3 else f"{name} {rng.choice(_COMPANY_SUFFIXES)}"
    if roll < 0.75:
        name = _invented_word(rng)
        return name if rng.random() < 0.5 else f"{name} {rng.choice(_COMPANY_SUFFIXES)}"
    if roll < 0.85:
        return f"{_surname(rng)} & {_surname(rng)}"
    if roll < 0.92:
        return f"{_surname(rng)} {rng.choice(_COMPANY_SUFFIXES)}"
    return f"{rng.choice(CITIES)} {rng.choice(('Bank', 'Airport', 'Energy', 'Telecom', 'Steel', 'Group'))}"


def _institution(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.65:
        return rng.choice(INSTITUTIONS)
    if roll < 0.80:
        return f"University of {rng.choice(CITIES)}"
    if roll < 0.90:
        return f"{rng.choice(CITIES)} University"
    return f"{rng.choice(CITIES)} {rng.choice(('City Council', 'Institute of Technology', 'Symphony Orchestra'))}"


def _city(rng: random.Random) -> str:
    if rng.random() < 0.10:
        return _invented_word(rng, (1, 2)) + rng.choice(_PLACE_SUFFIXES)
    return rng.choice(CITIES)


def _location(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return _city(rng)
    if roll < 0.80:
        return rng.choice(COUNTRIES)
    return rng.choice(REGIONS)


def _entity(label: str, pick: Callable[[random.Random], str]) -> Callable[[random.Random], Segments]:
    return lambda rng: [(pick(rng), label)]


def _listing(label: str, pick: Callable[[random.Random], str]) -> Callable[[random.Random], Segments]:
    """Two to four distinct entities joined like "Paris, London and Rome" (adjacent entities of one type)."""

    def render(rng: random.Random) -> Segments:
        count = rng.choice((2, 2, 3, 3, 4))
        names: list[str] = []
        while len(names) < count:
            name = pick(rng)
            if name not in names:
                names.append(name)
        conjunction = rng.choice((" and ", " and ", " or ", ", and " if count > 2 else " and "))
        segments: Segments = []
        for index, name in enumerate(names):
            if index == count - 1:
                segments.append((conjunction, None))
            elif index > 0:
                segments.append((", ", None))
            segments.append((name, label))
        return segments

    return render


def _plain(pick: Callable[[random.Random], str]) -> Callable[[random.Random], Segments]:
    return lambda rng: [(pick(rng), None)]


_FILLERS: dict[str, Callable[[random.Random], Segments]] = {
    "PER": _entity("PER", _person),
    "FIRST": _entity("PER", _first_name),
    "SUR": _entity("PER", _surname),
    "PERS": _entity("PER", lambda rng: rng.choice((_person, _surname))(rng)),
    "PERS_LIST": _listing("PER", _person),
    "ORG": _entity("ORG", lambda rng: (_company if rng.random() < 0.7 else _institution)(rng)),
    "ORGS": _listing("ORG", lambda rng: (_company if rng.random() < 0.7 else _institution)(rng)),
    "CO": _entity("ORG", _company),
    "INST": _entity("ORG", _institution),
    "CITY": _entity("LOC", _city),
    "COUNTRY": _entity("LOC", lambda rng: rng.choice(COUNTRIES)),
    "LOC": _entity("LOC", _location),
    "LOCS": _listing("LOC", _location),
    "NAT": _entity("MISC", lambda rng: rng.choice(NATIONALITIES)),
    "NATS": _listing("MISC", lambda rng: rng.choice(NATIONALITIES)),
    "LANG": _entity("MISC", lambda rng: rng.choice(LANGUAGES)),
    "LANGS": _listing("MISC", lambda rng: rng.choice(LANGUAGES)),
    "EVENT": _entity("MISC", lambda rng: rng.choice(EVENTS)),
    "MISC": _entity("MISC", lambda rng: rng.choice(OTHER_MISC)),
    "TITLE": _plain(lambda rng: rng.choice(TITLES)),
    "ROLE": _plain(lambda rng: rng.choice(ROLES)),
    "JOB": _plain(lambda rng: rng.choice(JOBS)),
    "THING": _plain(lambda rng: rng.choice(THINGS)),
    "PLACE": _plain(lambda rng: rng.choice(PLACE_NOUNS)),
    "ADJ": _plain(lambda rng: rng.choice(ADJECTIVES)),
    "BUSINESS": _plain(lambda rng: rng.choice(BUSINESSES)),
    "PRODUCT": _plain(lambda rng: rng.choice(PRODUCTS)),
    "SPORT": _plain(lambda rng: rng.choice(SPORTS)),
    "HAPPENING": _plain(lambda rng: rng.choice(HAPPENINGS)),
    "DAY": _plain(lambda rng: rng.choice(DAYS)),
    "MONTH": _plain(lambda rng: rng.choice(MONTHS)),
    "YEAR": _plain(lambda rng: str(rng.randint(1950, 2030))),
    "NUM": _plain(lambda rng: str(rng.choice((rng.randint(2, 99), rng.randint(100, 9999))))),
}


def _render(template: str, rng: random.Random) -> tuple[str, tuple[Span, ...]]:
    text = ""
    spans: list[Span] = []
    position = 0
    for match in _SLOT_RE.finditer(template):
        text += template[position : match.start()]
        for piece, label in _FILLERS[match.group(1)](rng):
            if label is not None:
                spans.append(Span(label, len(text), len(text) + len(piece)))
            text += piece
        position = match.end()
    text += template[position:]
    return text, tuple(spans)


def _decorate(template: str, rng: random.Random) -> str:
    """Wrap a template in a random prefix and/or suffix, so entity positions vary beyond the templates."""
    if rng.random() < 0.15 and template.endswith(".") and not template.endswith('."'):
        template = template[:-1] + rng.choice(_SUFFIXES) + "."
    if rng.random() < 0.25 and not template.startswith("\""):
        if not template.startswith("{"):
            template = template[0].lower() + template[1:]
        template = rng.choice(_PREFIXES) + template
    if rng.random() < 0.05 and template.endswith("."):
        template = template[:-1]  # chat-style text often has no final full stop
    return template


def make_example(text: str, entities: Sequence[Span]) -> Example:
    """Build an Example (words, IOB2 tags) from a text and its character-level entity spans."""
    tokens = tokenize_with_spans(text)
    return Example(text, tokens, iob2_tags(tokens, entities), tuple(entities))


def generate_corpus(num_sentences: int, seed: int) -> list[Example]:
    """num_sentences synthetic sentences; the same seed always gives the same corpus.

    Uses its own random.Random, so it neither depends on nor disturbs the global random state.
    """
    rng = random.Random(seed)
    examples = []
    for _ in range(num_sentences):
        text, spans = _render(_decorate(rng.choice(TEMPLATES), rng), rng)
        examples.append(make_example(text, spans))
    return examples
