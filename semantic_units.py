"""Semantic units (SUs): the body parts, objects, scenes and motions behind an action set (ASU, "semantic units").

ASU describes every action class by SUs from the language of the whole action set; visual tokens select the relevant
SUs, and a decoder builds the video representation from them. The paper takes SUs from language descriptions; ours
come from handwritten lexicons (lexicons/) and rules, so any label set gets SUs without a language model:

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
import os
import sys
import warnings
from collections import namedtuple
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


def _keys(name, lexicon, as_written):
    """Lookup keys of an entry: its words as written and (unless as_written) as lemmas, each also joined ("pushup")."""
    words = regex.findall(r"\p{L}+", name.lower())
    forms = [str] if as_written else [str, lambda w: lemmatize(w, lexicon)]
    return [key for form in forms for key in ([tuple(map(form, words)), (form("".join(words)),)] if words else [()])]


def load_lexicon(folder=LEXICON_FOLDER):
    """Read a lexicon folder: the KIND_FILES, commonsense.txt, words.txt and irregular.txt."""
    entries = {kind: _kind_entries(folder, stem) for kind, stem in KIND_FILES.items()}
    irregular = dict(pair.split(":") for pair in _lexicon_text(folder, "irregular").split())
    words = {}                       # "list name: words" lines; a list may go on in a later line or words_*.txt file
    for name, _, listed in (line.partition(":") for line in _lexicon_text(folder, "words").splitlines()):
        words.setdefault(name.strip(), set()).update(listed.split())
    vocabulary = {w for items in entries.values() for names in items for w in regex.findall(r"\p{L}+", " ".join(names))}
    lexicon = Lexicon(words, irregular, vocabulary | set(irregular.values()), {}, _commonsense(folder),
                      {names[0] for names in entries["motion"] if names}, 0)
    # an activity in -ing is matched as written: "fencing" is not "fence", "mountain biking" no bike
    pairs = [(key, (kind, names[0])) for kind, items in entries.items() for names in items for name in names
             for key in _keys(name, lexicon, as_written=kind == "activity" and name.endswith("ing"))]
    for key, unit in dict.fromkeys(pairs):
        lexicon.entries.setdefault(key, []).append(unit)
    lexicon.max_words = max(len(k) for k in lexicon.entries)
    return lexicon


# Lemmatiser: irregular table, then suffix rules whose candidates are checked against the lexicon vocabulary.
def _choose(candidates, lexicon):
    """First candidate the lexicons know, else the first (the default rule)."""
    return next((c for c in candidates if c in lexicon.vocabulary), candidates[0])


def _needs_e(stem):
    """Whether a stem (2+ letters) that lost its -ing/-ed also lost a silent e ("mak" -> "make"), for unknown words."""
    vowels = "aeiouy"
    if stem[-1] in "cvu" or stem.endswith(("dg", "rg", "ang", "ung")) or stem[-1] in "zg" and stem[-2] in vowels:
        return True                                          # danc, div, argu, judg, chang, lung, sneez, forag
    if stem[-1] == "s":
        return stem[-2] != "s" and not stem.endswith("us")
    if stem[-1] == "l" and stem[-2] not in vowels + "rwl" or stem[-2:] in ("at", "ar") and stem[-3:-2] not in vowels:
        return True                                          # dribbl, cycl, calculat, prepar (but eat, clear)
    # one syllable, one vowel, one final consonant: had it not lost an e, it would be doubled ("skat" -> "skate")
    syllables = len(regex.findall(r"[aeiou]+|y(?![aeiou])", stem))
    return (syllables == 1 and stem[-1] not in vowels + "wxy" and stem[-2] in "aeiou"
            and (len(stem) == 2 or stem[-3] not in vowels))


def _verb_stem(stem, lexicon):
    """Base form of the stem left by -ing/-ed."""
    if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiou":
        undoubled = [stem, stem[:-1]] if stem[-1] in "lsfz" else [stem[:-1], stem]
        return _choose(undoubled + [stem + "e"], lexicon)              # "pirouett" -> "pirouette" when known
    for k in [0] + [k for k in range(3, len(stem) - 2) if stem[:k] in lexicon.vocabulary]:   # or "snow" + "kit"
        known = [c for c in (stem[k:], stem[k:] + "e") if c in lexicon.vocabulary]
        if len(known) == 1:
            return stem[:k] + known[0]
        if known:                                            # both known ("kit", "kite"): the spelling rule decides
            return stem + "e" if _needs_e(stem[k:]) else stem
    return stem + "e" if _needs_e(stem) else stem


def lemmatize(word, lexicon=None):
    """Lemma of one word ("ran" -> "run", "knives" -> "knife"): the lexicon vocabulary picks among suffix rules."""
    lexicon = lexicon or LEXICON
    w = word.lower()
    if w in lexicon.irregular:
        return lexicon.irregular[w]
    if len(w) <= 3 or w in lexicon.words["invariant"] or w.endswith(("ss", "us", "is", "ics", "ous")):
        return w
    if w.endswith("ing") and len(w) > 4 and w not in lexicon.words["not ing"]:
        return w[:-3] if w[:-3].endswith(("y", "ee", "oe", "ye")) else _verb_stem(w[:-3], lexicon)
    if w.endswith("ed") and not w.endswith("eed") and len(w) > 4:
        stem = w[:-3] + "y" if w.endswith("ied") else _verb_stem(w[:-2], lexicon)
        return stem if stem in lexicon.vocabulary else w     # -ed only when the verb is known ("bobsled" stays)
    if w.endswith("ies"):
        return _choose([w[:-1], w[:-3] + "y"] if len(w) == 4 else [w[:-3] + "y", w[:-1]], lexicon)
    if w.endswith("ves"):
        return _choose([w[:-1], w[:-3] + "f", w[:-3] + "fe"], lexicon)          # gloves, knives, halves
    if w.endswith("es") and w[:-2].endswith(("s", "sh", "ch", "x", "z", "o")):
        return _choose([w[:-2], w[:-1]], lexicon)
    return w[:-1] if w.endswith("s") else w


LEXICON = load_lexicon()    # the lexicons/ folder: the default wherever a lexicon may be given


# Reading one text: tokens -> spans (longest lexicon matches) -> roles -> units.
def normalize_class_name(name):
    """'ApplyEyeMakeup' -> 'apply eye makeup'; 'kick_ball' -> 'kick ball'; other punctuation is kept."""
    name = regex.sub(r"(?<=\p{Ll})(?=\p{Lu})|(?<=\p{Lu})(?=\p{Lu}\p{Ll})", " ", name.replace("_", " "))
    return " ".join(name.lower().split())


def tokenize_words(text):
    """Lower-case words and boundary punctuation; negated qualifiers "(not on a tie)" are dropped."""
    text = regex.sub(r"\(\s*not\b[^)]*\)", " , ", normalize_class_name(text))
    return [regex.sub(r"['’]s$", "", t) for t in regex.findall(r"\p{L}+(?:['’]\p{L}+)*|[(),.;:!?/]", text)]


# function: punctuation or a grammar word (never a unit); unknown: in no lexicon, no grammar word, adjective or particle
_Span = namedtuple("_Span", "words lemmas entries in_parens function gerund unknown kinds")


def _entries(words, lemmas, lexicon):
    """Lexicon entries of a run of words: as lemmas, as written, written joined ("sky diving"), else by derivation."""
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
    """Entries by derivation: X-ing -> the X-er or X-or; -ation, -al, -ment, -ance -> the verb, if a known motion."""
    base = lemmas[-1]
    if words[-1].endswith("ing") and words[-1] not in lexicon.words["not ing"]:
        if base in lexicon.words["light verbs"]:                       # "letting" names no letter
            return []
        agents = [base + "r", base + "er", base + base[-1] + "er", base[:-1] + "ier", base + "or", base[:-1] + "or"]
        return [e for a in agents for e in lexicon.entries.get((*lemmas[:-1], a), ()) if e[0] == "object"][:1]
    for suffix, endings in (("ation", ("ate", "e", "")), ("al", ("e", "")), ("ment", ("",)), ("ance", ("", "e"))):
        if len(words) == 1 and base.endswith(suffix) and len(base) > len(suffix) + 2:
            return [("motion", v) for v in (base[:-len(suffix)] + e for e in endings) if v in lexicon.motions][:1]
    return []


def _spans(tokens, lexicon):
    """Longest lexicon matches first; a word in no lexicon is a span of its own."""
    lemmas = [lemmatize(t, lexicon) if t[0].isalpha() else t for t in tokens]
    spans, i, in_parens = [], 0, False
    while i < len(tokens):
        in_parens = (in_parens or tokens[i] == "(") and tokens[i] != ")"
        for n in range(min(lexicon.max_words, len(tokens) - i), 0, -1):
            words = tokens[i:i + n]
            function = not words[0][0].isalpha() or (n == 1 and words[0] in lexicon.words["function words"])
            alpha = all(w[0].isalpha() for w in words)           # a run with punctuation inside has no entries
            entries = _entries(words, lemmas[i:i + n], lexicon) if alpha and not function else []
            if entries or n == 1:
                break
        gerund = words[-1].endswith("ing") and len(words[-1]) > 4 and words[-1] not in lexicon.words["not ing"]
        adjective = words[0] in lexicon.words["adjectives"] or words[0].endswith(("ical", "ous"))   # "historical"
        unknown = not entries and not function and not adjective and words[0] not in lexicon.words["particles"]
        spans.append(_Span(words, lemmas[i:i + n], entries, in_parens, function, gerund and not in_parens, unknown,
                           {kind for kind, _ in entries}))
        i += n
    return spans


def _head(spans):
    """Index of the head verb of a label: first gerund, else a known verb, else an unknown word in verb position."""
    content = [i for i, s in enumerate(spans) if not s.function and not s.in_parens]
    tests = (lambda i: spans[i].gerund, lambda i: spans[i].kinds == {"motion"}, lambda i: "motion" in spans[i].kinds,
             lambda i: spans[i].unknown and i in (content[0], content[-1]))
    return next((i for test in tests for i in content if test(i)), None)


def _conditional(kind, unit, lexicon):
    """Implied units of one mention as (kind, text, condition): a motion's place gives way to any place ("motion
    place"), an activity's to one the name gives ("activity place"), an object's accessories need its use (motions)."""
    implied = lexicon.implied.get((kind, unit), []) + lexicon.implied.get((None, unit), [])
    place = f"{kind} place" if kind in ("motion", "activity") else None
    uses = tuple(t for k, t in implied if k == "motion") or None if kind == "object" else None
    return [(k, t, place if k == "scene" else uses if k == "object" else None) for k, t in implied]


def _read(text, lexicon, is_name=True):
    """Units of one text: (explicit, implied (kind, text, condition), light verbs)."""
    words_of = lexicon.words
    spans = _spans(tokenize_words(text), lexicon)
    head = _head(spans) if is_name else None
    verbal = {i for i, s in enumerate(spans) if s.gerund or i == head}
    if not is_name:        # descriptions: verbs are gerunds, unambiguous verbs, or known verbs after a subject / "to"
        verbal |= {i for i, s in enumerate(spans) if s.kinds == {"motion"} or "motion" in s.kinds and i > 0
                   and spans[i - 1].function and spans[i - 1].words[0] not in words_of["determiners"]}
    units, implied, light, gerund_activities = [], [], [], []
    prep, in_slot, pending = None, False, []        # pending: unknown words, the object (or place) of a pattern

    def add(kind, unit):
        if (kind, unit) not in units:
            units.append((kind, unit))
        implied.extend(_conditional(kind, unit, lexicon))

    def flush(noun=None):
        """Unknown words become one unit: a scene after "in/at/on", else an object; before a noun they modify it."""
        modifiers = [p.words[0] for p in pending]
        if noun:
            add(noun[0], " ".join(modifiers + [noun[1]]) if noun[0] == "object" else noun[1])
        elif pending:
            kind = "scene" if prep in words_of["scene prepositions"] else "object"
            add(kind, " ".join(modifiers[:-1] + [pending[-1].lemmas[0]]))
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
            nxt, then = (spans[i + 1:i + 3] + [None, None])[:2]
            takes_object = nxt and not nxt.function and not nxt.in_parens and (nxt.unknown or nxt.kinds & {*KINDS[:3]})
            if is_name and " ".join(s.words) not in activities and takes_object:
                activities = []                  # "breaking glass": with an object, "breaking" is no breakdance
            joined = lemmatize("".join(s.words), lexicon)                # "paddle boarding" -> "paddleboard"
            one_word = len(s.words) > 1 and any(" " not in t for _, t in lexicon.entries.get((joined,), ()))
            verb = next((t for k, t in s.entries if k == "motion"), joined if one_word else s.lemmas[-1])
            if verb in words_of["light verbs"]:
                light.append(("motion", verb))
            elif not activities or verb in lexicon.motions:  # "hula hooping": the activity knows better than "hoop"
                add("motion", verb)
                if (nxt and nxt.words[0] in words_of["particles"] and not nxt.entries
                        and not (then and then.words[0] in words_of["determiners"])):
                    add("motion", f"{verb} {nxt.words[0]}")            # "walk left", "stand up"; not "hike up a hill"
            for kind, unit in ([] if activities else s.entries):        # "kayaking" names the kayak
                if kind == "object" and not {unit, s.lemmas[-1]} & words_of["not denominal"]:
                    add(kind, unit)
            gerund_activities += activities
            prep, in_slot = None, True
            continue
        implied += [c for unit in activities for c in _conditional("activity", unit, lexicon)]
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
    if not any(k == "activity" for s in spans if not s.gerund for k, _ in s.entries):  # "cricket bowling": cricket
        implied += [c for unit in gerund_activities for c in _conditional("activity", unit, lexicon)]
    return units, implied, light


def _class_units(name, texts, lexicon):
    """Units of one class from its name and descriptions (texts), then implied ones, whose conditions see the name."""
    name_units, name_implied, light = _read(name, lexicon)
    units, implied = list(name_units), list(name_implied)
    for more_units, more_implied, _ in (_read(text, lexicon, is_name=False) for text in texts):
        units += [u for u in more_units if u not in units]
        implied += more_implied
    generic = lexicon.words["generic verbs"]
    specific = any(k == "motion" and t.split()[0] not in generic for k, t in units)  # "golf putting": no implied swing
    name_motions = {t for k, t in name_units if k == "motion" and t.split()[0] not in generic}
    given = {"motion place": {k for k, _ in units} | {k for k, _, c in implied if c != "motion place"},
             "activity place": {k for k, _ in name_units} | {k for k, _, c in name_implied if c not in PLACES}}
    for kind, unit, condition in implied:
        applies = (kind not in given[condition] if condition in PLACES     # else an accessory: with its use only
                   else not condition or not name_motions or bool(name_motions & set(condition)))
        if (kind, unit) in units or kind == "motion" and specific or not applies:
            continue
        units.append((kind, unit))
        if kind == "motion":                               # a filled-in motion brings its body parts (golf -> arm)
            parts = [(k, t) for k, t, _ in _conditional("motion", unit, lexicon) if k == "body part"]
            units += [u for u in parts if u not in units]
    if not any(k == "motion" for k, _ in units):
        # our reading: a label without any verb names its action by a noun ("cartwheel"); use the noun as the motion
        words = [w for w in tokenize_words(name) if w[0].isalpha() and w not in lexicon.words["function words"]]
        units.append(light[0] if light else ("motion", lemmatize(words[-1], lexicon) if words else "move"))
    if all(k == "motion" for k, _ in units):
        units.append(("body part", "body"))                # our reading: every action involves the body
    return units


def extract_semantic_units(class_names, descriptions=None, lexicon=None):
    """The SU bank of the class names (and descriptions); lexicon: a Lexicon, a folder, or None for lexicons/."""
    def class_key(name):    # descriptions may spell a class differently: "YoYo", "yo-yo" and "yoyo" are one class
        return "".join(regex.findall(r"\p{L}+|\p{N}+", normalize_class_name(name)))

    lexicon = load_lexicon(lexicon) if isinstance(lexicon, (str, Path)) else lexicon or LEXICON
    by_name = {class_key(c): c for c in class_names}
    texts = {c: [] for c in class_names}
    for key, value in (descriptions or {}).items():
        if class_key(key) in by_name:
            texts[by_name[class_key(key)]] += [value] if isinstance(value, str) else list(value)
        else:
            warnings.warn(f"descriptions: class {key!r} is not in the label set; ignored", stacklevel=2)
    per_class = [_class_units(name, texts[name], lexicon) for name in class_names]
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
    out = {key: [value] if isinstance(value, str) else value for key, value in data.items()}
    for key, value in out.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            line = text[:text.find(json.dumps(key))].count("\n") + 1
            raise ValueError(f"{path}:{line}: class {key!r}: expected a string or a list of strings")
    return out


# Scoring against handwritten gold sets (tests/su_gold/*.txt; each file opens with its format).
def read_gold(path):
    """{class name: [(required, kind, alternatives)]} of a gold file, alternatives in a spelling-insensitive form."""
    gold = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        name, _, spec = line.partition(" => ")
        if spec and not line.startswith("#"):
            gold[name] = [(not k.startswith("?"), k.lstrip("?").strip(), {_gold_form(a) for a in alts.split("|")})
                          for k, _, alts in (part.strip().partition(":") for part in spec.split(";"))]
    return gold


def _gold_form(text):
    """'Push-ups' == 'pushup', 'feet' == 'foot'."""
    words = [{"feet": "foot", "teeth": "tooth"}.get(w, w) for w in text.lower().replace("-", " ").split()]
    return "".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def score_gold(gold, lexicon=None):
    """Micro precision and recall on a read_gold table, and per class (name, wrong units, missed groups). A required
    group is recalled when one of its alternatives is predicted; a unit is right when it is any group's alternative."""
    bank = extract_semantic_units(list(gold), lexicon=lexicon)
    details = []
    for c, (name, groups) in enumerate(gold.items()):
        units = bank.of_class(c)
        wrong = [u for u in units if not any(u.kind == k and _gold_form(u.text) in alts for _, k, alts in groups)]
        missed = [(k, alts) for needed, k, alts in groups
                  if needed and not any(u.kind == k and _gold_form(u.text) in alts for u in units)]
        details.append((name, [f"{u.kind}: {u.text}" for u in wrong],
                        [f"{kind}: {'|'.join(sorted(alts))}" for kind, alts in missed]))
    predicted = sum(map(len, bank.by_class))
    required = sum(needed for groups in gold.values() for needed, _, _ in groups)
    right = predicted - sum(len(wrong) for _, wrong, _ in details)
    recalled = required - sum(len(missed) for _, _, missed in details)
    return right / max(predicted, 1), recalled / max(required, 1), details


def su_prompt(unit, template="a photo of {}.", motion_template="a video of a person {}."):
    """The text the CLIP text encoder sees for one SU."""
    return (motion_template if unit.kind == "motion" else template).format(unit.text)


def su_text_embeddings(clip_model, units, cache_dir=None, progress=False):
    """(S, D) L2-normalised text embeddings of the SUs, batched, cached and with progress by clip_vit.encode_texts."""
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
        class_names = [line.strip() for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:   # a binary file, or another encoding
        parser.exit(2, f"error: {args.labels}: not UTF-8 text ({e.reason} at byte {e.start})\n")
    if not class_names:
        parser.exit(2, f"error: {args.labels}: no class names (one per line expected)\n")
    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()
                                  or not os.access(args.json.parent, os.W_OK)):   # checked before the work
        parser.exit(2, f"error: --json {args.json}: cannot write a file there\n")
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
