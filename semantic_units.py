"""Semantic units (SUs): the body parts, objects, scenes and motions behind an action set (ASU, "semantic units").

ASU describes every action class by semantic units taken from the language of the whole action set; visual tokens
select the relevant SUs and a decoder builds the video representation from them. The paper takes SUs from language
descriptions; ours come from handwritten lexicons (plain-text files in lexicons/, read by load_lexicon) and rules,
so any label set, seen before or not, gets SUs without a language model:

  1. normalise the name (CamelCase, underscores; "(not ...)" qualifiers dropped), split words with `regex`,
     lemmatise (suffix rules + an irregular table, checked against the lexicon vocabulary: stems are words);
  2. match lexicon entries longest-first (multi-word, also when written joined: "push ups" = "pushups"); a word
     without an entry may reach one by derivation: "bulldozing" -> bulldozer, "proposal" -> propose;
  3. roles: the head verb (first gerund, else a known verb, else an unknown word in verb position) is a motion even
     when the lexicon lacks it; a direction or particle joins it ("walk left", "stand up"); "V-ing [a] X" and
     "playing X" make X an object, "with a X" an object, "in/at/on the X" a scene; a noun before the head gerund
     is its object ("balloon blowing", but not "base jumping": jump takes none); an "X-ing" whose X is an object
     names the object too ("kayaking"); a gerund with an object is a verb ("breaking glass" is not breakdance);
  4. a commonsense table adds implied units (kick -> leg, foot; golf -> golf club, golf course, swing); a place the
     name gives wins over a usual one, and an object's accessories come with its usual use only (horse -> saddle).
Descriptions (free text per class) go through the same rules, so richer text gives richer units.

In:  class names (C strings, any style) and optional descriptions {class: [text, ...]}.
Out: SemanticUnits: .units (S unique SemanticUnit(text, kind), sorted by kind, then text) and .by_class (C sorted
     lists of unit indices); su_text_embeddings(clip, units) -> (S, D) L2-normalised text embeddings.
CLI: python semantic_units.py LABELS.txt [--descriptions F] [--json OUT] [--lexicon FOLDER]
"""
import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import regex

KINDS = ("body part", "object", "scene", "motion")
LEXICON_FOLDER = Path(__file__).resolve().parent / "lexicons"
KIND_FILES = {"body part": "body_parts", "object": "objects", "scene": "scenes", "motion": "motions",
              "activity": "activities"}      # activities are no units: they bring units through commonsense.txt
PLACES = ("motion place", "activity place")  # conditions of implied places, see _conditional


@dataclass(frozen=True)
class SemanticUnit:
    text: str
    kind: str              # one of KINDS


@dataclass
class SemanticUnits:
    units: list            # list[SemanticUnit], unique, sorted by (kind, text)
    by_class: list         # list[list[int]], aligned with the class names

    def of_class(self, c):
        return [self.units[i] for i in self.by_class[c]]


@dataclass
class Lexicon:
    """A lexicon folder, read: the tables the rules look words up in."""
    words: dict            # word list name -> set of words (words.txt: function words, particles, ...)
    irregular: dict        # inflected form -> lemma ("ran" -> "run")
    vocabulary: set        # every word of every entry: the lemmatiser checks its guesses against it
    entries: dict          # key (tuple of lemmas, or of words as written) -> [(kind, unit text)]; kinds: KIND_FILES
    implied: dict          # (kind or None, unit text) -> [(kind, unit text)]: the commonsense rules
    motions: set           # unit texts of kind motion
    max_words: int         # the longest entry, in words


# Reading a lexicon folder. Every file opens with "#" lines that explain its format; X_*.txt files add to X.txt.

def _lexicon_text(folder, stem):
    """stem.txt and any stem_*.txt of the folder, comment lines dropped, indented lines joined to the line above."""
    paths = [Path(folder) / f"{stem}.txt"] + sorted(Path(folder).glob(f"{stem}_*.txt"))
    if not paths[0].is_file():
        raise FileNotFoundError(f"lexicon folder {folder} has no {stem}.txt")
    lines = [line for p in paths for line in p.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return regex.sub(r"\n[ \t]+", " ", "\n".join(lines))


def _keys(name, lexicon, surface):
    """Lookup keys of an entry: its lemmas (or its words as written), and the words joined ("push up" = "pushup")."""
    words = regex.findall(r"\p{L}+", name.lower())
    keys = [tuple(words if surface else [lemmatize(w, lexicon) for w in words])]
    if len(words) > 1:
        keys.append(("".join(words) if surface else lemmatize("".join(words), lexicon),))
    return keys


def _word_lists(folder):
    """words.txt: {list name: set of words}."""
    lists = {}
    for line in _lexicon_text(folder, "words").splitlines():
        name, _, words = line.partition(":")
        lists.setdefault(name.strip(), set()).update(words.split())
    return lists


def _kind_entries(folder, stem):
    """A kind's file: one list of spellings per entry, the unit text first ("shoe|sneaker" -> ["shoe", "sneaker"])."""
    items = regex.split(r"[,\n]", _lexicon_text(folder, stem))
    return [[" ".join(name.split()) for name in item.split("|") if name.strip()] for item in items if item.strip()]


def _commonsense(folder):
    """commonsense.txt: {(kind or None, key): [(kind, unit text)]}; a key "fish (motion)" applies to the verb only."""
    implied = {}
    for line in _lexicon_text(folder, "commonsense").splitlines():
        keys, _, text = line.partition("=>")
        parts = [part.partition(":") for part in text.split(";")]
        units = [(kind.strip(), name.strip()) for kind, _, names in parts for name in names.split(",") if name.strip()]
        for key in keys.split(","):
            name, _, qualifier = key.strip().rstrip(")").partition(" (")
            implied.setdefault((qualifier or None, name), []).extend(units)
    return implied


def load_lexicon(folder=LEXICON_FOLDER):
    """Read a lexicon folder: body_parts.txt, objects.txt, scenes.txt, motions.txt, activities.txt, commonsense.txt,
    words.txt and irregular.txt (each file opens with its format)."""
    entries = {kind: _kind_entries(folder, stem) for kind, stem in KIND_FILES.items()}
    irregular = dict(pair.split(":") for pair in _lexicon_text(folder, "irregular").split())
    vocabulary = {w for items in entries.values() for names in items for w in regex.findall(r"\p{L}+", " ".join(names))}
    lexicon = Lexicon(_word_lists(folder), irregular, vocabulary | set(irregular.values()), {}, _commonsense(folder),
                      set(), 0)
    for kind, items in entries.items():
        for names in items:
            for name in names:
                # an activity in -ing is matched as written: "fencing" is not "fence", "mountain biking" no bike
                surface = [True] if kind == "activity" and name.endswith("ing") else [True, False]
                for key in dict.fromkeys(k for s in surface for k in _keys(name, lexicon, s)):
                    if (kind, names[0]) not in lexicon.entries.setdefault(key, []):
                        lexicon.entries[key].append((kind, names[0]))
    lexicon.motions = {t for found in lexicon.entries.values() for k, t in found if k == "motion"}
    lexicon.max_words = max(len(k) for k in lexicon.entries)
    return lexicon


# Lemmatiser: irregular table, then suffix rules whose candidates are checked against the lexicon vocabulary.

def _choose(candidates, lexicon):
    """First candidate the lexicons know, else the first (the default rule)."""
    return next((c for c in candidates if c in lexicon.vocabulary), candidates[0])


def _needs_e(stem):
    """Whether a stem that lost its -ing/-ed also lost a silent e ("mak" -> "make"), for words we do not know."""
    vowels = "aeiouy"
    if len(stem) < 2:
        return False
    if stem[-1] in "cvu" or stem.endswith(("dg", "rg", "ang", "ung")) or stem[-1] in "zg" and stem[-2] in vowels:
        return True                                          # danc, div, argu, judg, chang, lung, sneez, forag
    if stem[-1] == "s":
        return stem[-2] != "s" and not stem.endswith("us")
    if stem[-1] == "l" and stem[-2] not in vowels + "rwl" or stem[-2:] in ("at", "ar") and stem[-3:-2] not in vowels:
        return True                                          # dribbl, cycl, calculat, prepar (but eat, clear)
    # a single vowel before a single final consonant in a one-syllable stem: the consonant would have been doubled
    # unless an e was dropped ("skat" -> "skate", but "skipp" -> "skip" is handled by undoubling)
    syllables = len(regex.findall(r"[aeiou]+|y(?![aeiou])", stem))
    return (syllables == 1 and stem[-1] not in vowels + "wxy" and stem[-2] in "aeiou"
            and (len(stem) == 2 or stem[-3] not in vowels))


def _verb_stem(stem, lexicon):
    """Base form of the stem left by -ing/-ed."""
    if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiou":
        undoubled = [stem, stem[:-1]] if stem[-1] in "lsfz" else [stem[:-1], stem]
        return _choose(undoubled + [stem + "e"], lexicon)              # "pirouett" -> "pirouette" when known
    for k in [0] + list(range(3, len(stem) - 2)):        # the whole stem, then the tail of a compound ("snowkit")
        tail = stem[k:]
        known = [c for c in (tail, tail + "e") if c in lexicon.vocabulary]
        if k and stem[:k] not in lexicon.vocabulary:         # a compound joins words: "sepa" + "rat" is none
            continue
        if len(known) == 1:
            return stem[:k] + known[0]
        if known:                                            # both known ("kit", "kite"): the spelling rule decides
            return stem + "e" if _needs_e(tail) else stem
    return stem + "e" if _needs_e(stem) else stem


def lemmatize(word, lexicon=None):
    """Lemma of one lower-case word: "ran" -> "run", "swimming" -> "swim", "dribbling" -> "dribble", "knives" ->
    "knife". Suffix rules propose candidates; the lexicon vocabulary picks among them; unknown words get the rule."""
    lexicon = lexicon or LEXICON
    w = word.lower()
    if w in lexicon.irregular:
        return lexicon.irregular[w]
    if len(w) <= 3 or w in lexicon.words["invariant"] or w.endswith(("ss", "us", "is", "ics", "ous")):
        return w
    if w.endswith("ing") and len(w) > 4 and w not in lexicon.words["not ing"]:
        stem = w[:-3]
        return stem if stem.endswith(("y", "ee", "oe", "ye")) else _verb_stem(stem, lexicon)
    if w.endswith("ed") and not w.endswith("eed") and len(w) > 4:
        stem = w[:-3] + "y" if w.endswith("ied") else _verb_stem(w[:-2], lexicon)
        return stem if stem in lexicon.vocabulary else w     # -ed only when the verb is known ("bobsled" stays)
    if w.endswith("s"):
        if w.endswith("ies"):
            return _choose([w[:-1], w[:-3] + "y"] if len(w) <= 4 else [w[:-3] + "y", w[:-1]], lexicon)
        if w.endswith("ves"):
            return _choose([w[:-1], w[:-3] + "f", w[:-3] + "fe"], lexicon)      # gloves, knives, halves
        if w.endswith("es") and w[:-2].endswith(("s", "sh", "ch", "x", "z", "o")):
            return _choose([w[:-2], w[:-1]], lexicon)
        return w[:-1]
    return w


LEXICON = load_lexicon()    # the lexicons/ folder: the default wherever a lexicon may be given


# Reading one text: tokens -> spans (longest lexicon matches) -> roles -> units.

def normalize_class_name(name):
    """'ApplyEyeMakeup' -> 'apply eye makeup'; 'kick_ball' -> 'kick ball'; other punctuation is kept."""
    name = regex.sub(r"(?<=\p{Ll})(?=\p{Lu})|(?<=\p{Lu})(?=\p{Lu}\p{Ll})", " ", name.replace("_", " "))
    return " ".join(name.lower().split())


def tokenize_words(text):
    """Lower-case words and boundary punctuation; negated qualifiers "(not on a tie)" are dropped."""
    text = regex.sub(r"\(\s*not\b[^)]*\)", " , ", normalize_class_name(text))
    tokens = regex.findall(r"\p{L}+(?:['’]\p{L}+)*|[(),.;:!?/]", text)
    return [regex.sub(r"['’]s$", "", t) for t in tokens]


@dataclass
class _Span:
    words: list
    lemmas: list
    entries: list          # [(kind, text)]
    in_parens: bool
    function: bool         # punctuation or a grammar word: never a unit
    gerund: bool
    unknown: bool          # in no lexicon, and no grammar word, adjective or particle
    kinds: set             # the kinds of the entries


def _entries(words, lemmas, lexicon):
    """Lexicon entries of a run of words: as lemmas, as written, written joined ("sky diving" = "skydiving", but a
    verb and its object are not joined: "kick ball" is no "kickball"), else by derivation."""
    entries = [e for key in (tuple(lemmas), tuple(words)) for e in lexicon.entries.get(key, ())]
    if len(words) > 1 and not entries and not _verb_and_noun(words, lemmas, lexicon):
        joined = "".join(words)
        entries = [e for key in ((joined,), (lemmatize(joined, lexicon),)) for e in lexicon.entries.get(key, ())]
    return list(dict.fromkeys(entries)) or _derived_entries(words, lemmas, lexicon)


def _verb_and_noun(words, lemmas, lexicon):
    """Whether two words read as a verb phrase ("kick ball"), which must not be joined into one word ("kickball")."""
    first, second = (lexicon.entries.get((lemma,), []) for lemma in lemmas[-2:])
    return (len(words) == 2 and words[0] == lemmas[0] and ("motion", lemmas[0]) in first and words[1] == lemmas[1]
            and any(k in KINDS[:3] for k, _ in second) and not any(k == "motion" for k, _ in second))


def _derived_entries(words, lemmas, lexicon):
    """Entries by derivation: an X-ing names the X-er or X-or that does it ("bulldozing" -> bulldozer, "metal
    detecting" -> metal detector); a noun in -ation, -al, -ment or -ance names its verb when that is a known motion
    ("proposal" -> propose, "excavation" -> excavate)."""
    verb = noun = lemmas[-1]
    if words[-1].endswith("ing") and words[-1] not in lexicon.words["not ing"]:
        if verb in lexicon.words["light verbs"]:                       # "letting" names no letter
            return []
        agents = [verb + "r", verb + "er", verb + verb[-1] + "er", verb[:-1] + "ier", verb + "or", verb[:-1] + "or"]
        return [e for a in agents for e in lexicon.entries.get((*lemmas[:-1], a), ()) if e[0] == "object"][:1]
    for suffix, endings in (("ation", ("ate", "e", "")), ("al", ("e", "")), ("ment", ("",)), ("ance", ("", "e"))):
        if len(words) == 1 and noun.endswith(suffix) and len(noun) > len(suffix) + 2:
            return [("motion", v) for v in (noun[:-len(suffix)] + e for e in endings) if v in lexicon.motions][:1]
    return []


def _spans(tokens, lexicon):
    """Longest lexicon matches first; a word in no lexicon is a span of its own."""
    words_of = lexicon.words
    lemmas = [lemmatize(t, lexicon) if t[0].isalpha() else t for t in tokens]
    spans, i, in_parens = [], 0, False
    while i < len(tokens):
        in_parens = (in_parens or tokens[i] == "(") and tokens[i] != ")"
        for n in range(min(lexicon.max_words, len(tokens) - i), 0, -1):
            words = tokens[i:i + n]
            if n > 1 and not all(w[0].isalpha() for w in words):
                continue
            function = not words[0][0].isalpha() or (n == 1 and words[0] in words_of["function words"])
            entries = [] if function else _entries(words, lemmas[i:i + n], lexicon)
            if entries or n == 1:
                break
        gerund = words[-1].endswith("ing") and len(words[-1]) > 4 and words[-1] not in words_of["not ing"]
        adjective = words[0] in words_of["adjectives"] or words[0].endswith(("ical", "ous"))   # "historical"
        unknown = not entries and not function and not adjective and words[0] not in words_of["particles"]
        spans.append(_Span(words, lemmas[i:i + n], entries, in_parens, function, gerund and not in_parens, unknown,
                           {kind for kind, _ in entries}))
        i += n
    return spans


def _head(spans):
    """Index of the head verb of a label: first gerund, else a known verb, else an unknown word in verb position."""
    content = [i for i, s in enumerate(spans) if not s.function and not s.in_parens]
    for test in (lambda s: s.gerund, lambda s: s.kinds == {"motion"}, lambda s: "motion" in s.kinds):
        found = [i for i in content if test(spans[i])]
        if found:
            return found[0]
    ends = [i for i in content[:1] + content[-1:] if spans[i].unknown]
    return ends[0] if ends else None


def _takes_object(spans, i):
    """Whether a noun follows span i, so that a gerund there is a verb with its object ("breaking glass")."""
    after = spans[i + 1] if i + 1 < len(spans) else None
    return bool(after and not after.function and not after.in_parens and (after.unknown or after.kinds & {*KINDS[:3]}))


def _implied(kind, unit, lexicon):
    return lexicon.implied.get((kind, unit), []) + lexicon.implied.get((None, unit), [])


def _conditional(kind, unit, lexicon):
    """Implied units of one mention as (kind, text, condition). A motion's usual place gives way to any other place
    ("motion place": swim -> swimming pool, but not in "swimming in a lake"), an activity's to a place the name
    gives ("activity place": rowing -> river, but not in "rowing on a lake"); an object's accessories come with its
    usual use only (condition: the object's motions; horse -> saddle when riding, not when petting); the rest always
    (condition None)."""
    implied = _implied(kind, unit, lexicon)
    motions = tuple(t for k, t in implied if k == "motion")

    def condition(implied_kind):
        if implied_kind == "scene" and kind in ("motion", "activity"):
            return f"{kind} place"
        return motions if implied_kind == "object" and kind == "object" and motions else None

    return [(k, t, condition(k)) for k, t in implied]


def _read(text, lexicon, is_name=True):
    """Units of one text: (explicit, implied, light verbs); implied units are (kind, text, condition), see
    _conditional."""
    words_of = lexicon.words
    spans = _spans(tokenize_words(text), lexicon)
    units, implied, light, gerund_activities = [], [], [], []

    def add(kind, unit):
        if (kind, unit) not in units:
            units.append((kind, unit))
        implied.extend(_conditional(kind, unit, lexicon))

    head = _head(spans) if is_name else None
    verbal = {i for i, s in enumerate(spans) if s.gerund or i == head}
    if not is_name:        # descriptions: verbs are gerunds, unambiguous verbs, or known verbs after a subject / "to"
        verbal |= {i for i, s in enumerate(spans) if s.kinds == {"motion"} or (
            "motion" in s.kinds and i > 0 and spans[i - 1].function
            and spans[i - 1].words[0] not in words_of["determiners"])}
    prep, in_slot, pending = None, False, []        # pending: unknown words, the object (or place) of a pattern

    def flush(noun=None):
        """Unknown words become one unit: a scene after "in/at/on", else an object; before a noun they modify it."""
        if noun:
            words = [p.words[0] for p in pending]
            add(noun[0], " ".join(words + [noun[1]]) if noun[0] == "object" else noun[1])
        elif pending:
            add("scene" if prep in words_of["scene prepositions"] else "object",
                " ".join([p.words[0] for p in pending[:-1]] + [pending[-1].lemmas[0]]))
        pending.clear()

    for i, s in enumerate(spans):
        word = s.words[0]
        if s.function or (word in words_of["particles"] and not s.entries):
            flush()
            if word in words_of["scene prepositions"] or word in ("with", "for", "of", "to", "from", "by"):
                prep, in_slot = word, False
            elif not word[0].isalpha() or word in ("and", "or"):
                prep, in_slot = None, False
            continue
        activities = [t for k, t in s.entries if k == "activity"]
        if i in verbal:
            flush()
            if is_name and " ".join(s.words) not in activities and _takes_object(spans, i):
                activities = []                  # "breaking glass": with an object, "breaking" is no breakdance
            joined = lemmatize("".join(s.words), lexicon)                # "paddle boarding" -> "paddleboard"
            verb = next((t for k, t in s.entries if k == "motion"),
                        joined if len(s.words) > 1 and any(" " not in t for _, t in lexicon.entries.get((joined,), ()))
                        else s.lemmas[-1])
            if verb in words_of["light verbs"]:
                light.append(("motion", verb))
            elif not activities or verb in lexicon.motions:  # "hula hooping": the activity knows better than "hoop"
                add("motion", verb)
                after = spans[i + 1:i + 3] + [None, None]
                if (after[0] and after[0].words[0] in words_of["particles"] and not after[0].entries
                        and not (after[1] and after[1].words[0] in words_of["determiners"])):
                    add("motion", f"{verb} {after[0].words[0]}")        # "walk left", "stand up"; not "hike up a hill"
            for kind, unit in ([] if activities else s.entries):        # "kayaking" names the kayak
                if kind == "object" and not {unit, s.lemmas[-1]} & words_of["not denominal"]:
                    add(kind, unit)
            gerund_activities += activities
            prep, in_slot = None, True
            continue
        for unit in activities:
            implied.extend(_conditional("activity", unit, lexicon))
        if s.in_parens and s.words[-1].endswith("ing"):                 # "(boxing)" qualifies: the activity only
            continue
        nouns = [(k, t) for k, t in s.entries if k in KINDS[:3]]
        if nouns:
            order = (("scene", "object", "body part") if prep in words_of["scene prepositions"]
                     else ("object", "body part", "scene"))
            flush(min(nouns, key=lambda e: order.index(e[0])))
        elif s.kinds == {"motion"}:
            flush()
            add("motion", s.entries[0][1])
        elif s.unknown:
            before_head = (head is not None and i < head and spans[head].gerund    # "base jumping": jump takes no
                           and spans[head].lemmas[-1] not in words_of["intransitive verbs"])  # object
            if in_slot or prep in words_of["scene prepositions"] or prep == "with" or before_head:
                pending.append(s)
    flush()
    if not any(k == "activity" for s in spans if not s.gerund for k, _ in s.entries):
        for unit in gerund_activities:                                   # "cricket bowling" is cricket, not bowling
            implied.extend(_conditional("activity", unit, lexicon))
    return units, implied, light


def _complete(name, units, implied, light, lexicon, name_units, name_implied):
    """Add implied units. Implied motions fill in only when the text names no specific motion ("playing golf" ->
    swing, but "golf putting" stays putt); light verbs ("doing", "getting") count only when nothing else does. The
    conditions of _conditional look at the name alone (name_units, name_implied): descriptions never take units away."""
    generic = lexicon.words["generic verbs"]
    specific = {t for k, t in units if k == "motion" and t.split()[0] not in generic}
    name_motions = {t for k, t in name_units if k == "motion" and t.split()[0] not in generic}
    given = {k for k, _ in units} | {k for k, _, c in implied if c != "motion place"}
    given_by_name = {k for k, _ in name_units} | {k for k, _, c in name_implied if c not in PLACES}

    def applies(kind, condition):
        if condition == "motion place":
            return kind not in given
        if condition == "activity place":
            return kind not in given_by_name
        return not condition or not name_motions or bool(name_motions & set(condition))   # an accessory: its use

    for kind, unit, condition in implied:
        if (kind, unit) in units or kind == "motion" and specific or not applies(kind, condition):
            continue
        units.append((kind, unit))
        if kind == "motion":                               # a filled-in motion brings its body parts (golf -> arm)
            units += [u for u in _implied("motion", unit, lexicon) if u[0] == "body part" and u not in units]
    if not any(k == "motion" for k, _ in units):
        # our reading: a label without any verb names its action by a noun ("cartwheel"); use the noun as the motion
        words = [w for w in tokenize_words(name) if w[0].isalpha() and w not in lexicon.words["function words"]]
        units.append(light[0] if light else ("motion", lemmatize(words[-1], lexicon) if words else "move"))
    if all(k == "motion" for k, _ in units):
        units.append(("body part", "body"))                # our reading: every action involves the body
    return units


def _class_key(name):
    """Descriptions may spell a class differently: "YoYo", "yo-yo" and "yoyo" are the same class."""
    return "".join(regex.findall(r"\p{L}+|\p{N}+", normalize_class_name(name)))


def extract_semantic_units(class_names, descriptions=None, lexicon=None):
    """The SU bank of an action set: every class gets its units from its name (and descriptions, when given).
    lexicon: a Lexicon or a lexicon folder; None = lexicons/ next to this file."""
    lexicon = load_lexicon(lexicon) if isinstance(lexicon, (str, Path)) else lexicon or LEXICON
    by_name = {_class_key(c): c for c in class_names}
    texts = {c: [] for c in class_names}
    for key, value in (descriptions or {}).items():
        name = by_name.get(_class_key(key))
        if name is None:
            warnings.warn(f"descriptions: class {key!r} is not in the label set; ignored", stacklevel=2)
            continue
        texts[name] += [value] if isinstance(value, str) else list(value)
    per_class = []
    for name in class_names:
        name_units, name_implied, light = _read(name, lexicon)
        units, implied = list(name_units), list(name_implied)
        for text in texts[name]:
            more = _read(text, lexicon, is_name=False)
            units += [u for u in more[0] if u not in units]
            implied += more[1]
        per_class.append(_complete(name, units, implied, light, lexicon, name_units, name_implied))
    bank = sorted({u for units in per_class for u in units}, key=lambda u: (KINDS.index(u[0]), u[1]))
    index = {u: i for i, u in enumerate(bank)}
    return SemanticUnits(units=[SemanticUnit(text=t, kind=k) for k, t in bank],
                         by_class=[sorted(index[u] for u in units) for units in per_class])


def load_descriptions(path):
    """{class: [text, ...]} from a JSON file {"class": "text" | ["text", ...]}; errors name the file and line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}:1: expected a JSON object {{\"class\": \"text\" | [\"text\", ...]}}")
    out = {}
    for key, value in data.items():
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            line = text[:text.find(json.dumps(key))].count("\n") + 1
            raise ValueError(f"{path}:{line}: class {key!r}: expected a string or a list of strings")
        out[key] = value
    return out


# Scoring against handwritten gold sets (tests/su_gold/*.txt; each file opens with its format).

def read_gold(path):
    """{class name: [(required, kind, alternatives)]} of a gold file, alternatives in a spelling-insensitive form."""
    gold = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        name, _, spec = line.partition(" => ")
        if spec and not line.startswith("#"):
            groups = [part.strip().partition(":") for part in spec.split(";")]
            gold[name] = [(not k.startswith("?"), k.lstrip("?").strip(), {_gold_form(a) for a in alts.split("|")})
                          for k, _, alts in groups]
    return gold


def _gold_form(text):
    """'Push-ups' == 'pushup', 'feet' == 'foot'."""
    words = [{"feet": "foot", "teeth": "tooth"}.get(w, w) for w in text.lower().replace("-", " ").split()]
    return "".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def score_gold(gold, lexicon=None):
    """Micro precision and recall on a read_gold table, and per class (name, wrong units, missed groups). A required
    group is recalled when one of its alternatives is predicted; a unit is right when it is any group's alternative."""
    bank = extract_semantic_units(list(gold), lexicon=lexicon)
    right = predicted = recalled = required = 0
    details = []
    for c, (name, groups) in enumerate(gold.items()):
        units = bank.of_class(c)
        wrong = [u for u in units if not any(u.kind == k and _gold_form(u.text) in alts for _, k, alts in groups)]
        missed = [(k, alts) for needed, k, alts in groups
                  if needed and not any(u.kind == k and _gold_form(u.text) in alts for u in units)]
        right, predicted = right + len(units) - len(wrong), predicted + len(units)
        required += sum(needed for needed, _, _ in groups)
        recalled += sum(needed for needed, _, _ in groups) - len(missed)
        details.append((name, [f"{u.kind}: {u.text}" for u in wrong],
                        [f"{kind}: {'|'.join(sorted(alts))}" for kind, alts in missed]))
    return right / max(predicted, 1), recalled / max(required, 1), details


def su_prompt(unit, template="a photo of {}.", motion_template="a video of a person {}."):
    """The text the CLIP text encoder sees for one SU."""
    return (motion_template if unit.kind == "motion" else template).format(unit.text)


def su_text_embeddings(clip_model, units, cache_dir=None, progress=False):
    """(S, D) L2-normalised text embeddings of the SUs, batched and cached on disk by clip_vit.encode_texts
    (progress: its tqdm bar for a large bank)."""
    import clip_vit  # imported here so that SU extraction needs no model code
    units = units.units if isinstance(units, SemanticUnits) else units
    return clip_vit.encode_texts(clip_model, [su_prompt(u) for u in units], cache_dir=cache_dir, progress=progress)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the semantic units of an action set.")
    parser.add_argument("labels", type=Path, help="text file with one class name per line")
    parser.add_argument("--descriptions", type=Path, default=None, help="JSON {class: text | [text, ...]}")
    parser.add_argument("--json", type=Path, default=None, help="write the SU bank and the class table here")
    parser.add_argument("--lexicon", type=Path, default=LEXICON_FOLDER, help="lexicon folder (default: lexicons/)")
    args = parser.parse_args(argv)
    if not args.labels.is_file():
        parser.exit(2, f"error: labels file not found: {args.labels}\n")
    try:
        text = args.labels.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:   # a binary file, or another encoding
        parser.exit(2, f"error: {args.labels}: not UTF-8 text ({e.reason} at byte {e.start})\n")
    class_names = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        descriptions = load_descriptions(args.descriptions) if args.descriptions else None
        bank = extract_semantic_units(class_names, descriptions, lexicon=args.lexicon)
    except (OSError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"{len(class_names)} classes, {len(bank.units)} semantic units")
    for kind in KINDS:
        print(f"  {kind:9s} {sum(u.kind == kind for u in bank.units):5d}")
    for c, name in enumerate(class_names):
        print(f"{name:40s} | " + ", ".join(f"{u.kind}: {u.text}" for u in bank.of_class(c)))
    if args.json:
        args.json.write_text(json.dumps({
            "units": [{"text": u.text, "kind": u.kind} for u in bank.units],
            "classes": [{"name": n, "units": idx} for n, idx in zip(class_names, bank.by_class)]}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
