"""Tests of semantic_units.py: SU extraction by rules and lexicons (ASU "semantic units")."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import semantic_units as su  # noqa: E402

LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "labels"

# Handwritten gold set. The classes were drawn at random (random.Random(2023).sample of 22 Kinetics-400, 12 UCF-101
# and 10 HMDB-51 names) and their units written down by hand, as a person would name them, BEFORE the rules were
# written. Format: groups separated by ";", each "kind: alternative|alternative". A required group counts for
# recall when any alternative is predicted; groups starting with "?" are plausible extras a person would accept
# (they count for precision only). A predicted unit is correct when its kind and text match an alternative.
GOLD = {
    # Kinetics-400
    "celebrating": "motion: celebrate|cheer; body part: arm|hand; ?motion: jump|clap|dance; "
                   "?scene: party|stadium|crowd",
    "cleaning shoes": "motion: clean|wipe|scrub|polish; object: shoe; object: brush|cloth|rag|sponge; ?body part: hand",
    "digging": "motion: dig; object: shovel|spade; scene: ground|soil|dirt|sand|garden; ?body part: arm|hand",
    "dining": "motion: dine|eat; object: table; object: plate|food|fork|knife|cutlery|spoon; "
              "scene: restaurant|dining room; ?body part: mouth|hand",
    "exercising arm": "motion: exercise|lift|curl; body part: arm; object: dumbbell|weight; ?scene: gym; "
                      "?body part: bicep|muscle|shoulder",
    "hockey stop": "motion: stop|brake; motion: skate; object: ice skate|skate; scene: ice rink|ice|rink; "
                   "?object: hockey stick|puck; ?body part: leg|foot",
    "holding snake": "motion: hold; object: snake; body part: hand|arm",
    "ice fishing": "motion: fish; object: fishing rod|rod|fishing line; scene: ice|frozen lake|lake; "
                   "?object: fish|hole; ?scene: snow",
    "jumping into pool": "motion: jump|dive; scene: swimming pool|pool; scene: water; ?body part: leg|body",
    "massaging person's head": "motion: massage|rub; body part: head; body part: hand|finger; ?body part: hair|scalp",
    "motorcycling": "motion: ride|drive|motorcycle; object: motorcycle|motorbike; scene: road|street|track|highway; "
                    "?object: helmet",
    "playing cymbals": "motion: play|hit|strike|crash; object: cymbal; object: drumstick|stick|drum|drum kit; "
                       "body part: hand|arm",
    "riding mechanical bull": "motion: ride; object: mechanical bull|bull; body part: hand|arm|leg; "
                              "?scene: bar|arena|rodeo",
    "riding mule": "motion: ride; object: mule; object: saddle|rein; ?scene: trail|path|mountain|farm|field; "
                   "?body part: leg",
    "shaving head": "motion: shave; body part: head|scalp; object: razor|shaver|electric shaver; ?body part: hair; "
                    "?object: shaving cream|cream; ?body part: hand",
    "skydiving": "motion: skydive|fall|jump|freefall|fly; object: parachute; scene: sky|air; "
                 "?object: airplane|plane|helmet|goggles; ?body part: arm|leg",
    "snowmobiling": "motion: ride|drive|snowmobile; object: snowmobile; scene: snow|snowfield|mountain|forest; "
                    "?object: helmet",
    "spinning poi": "motion: spin|swing|twirl; object: poi; body part: hand|arm; ?object: fire|rope|chain|ball",
    "stretching arm": "motion: stretch; body part: arm; ?body part: shoulder|hand|muscle",
    "throwing axe": "motion: throw; object: axe; object: target|board; body part: arm|hand",
    "tickling": "motion: tickle; body part: finger|hand; body part: belly|stomach|foot|armpit|rib; "
                "?motion: laugh|giggle; ?object: baby|child",
    "triple jump": "motion: jump; motion: hop|run|step|skip|sprint; scene: sand pit|sand|track|runway|stadium; "
                   "body part: leg|foot",
    # UCF-101
    "Archery": "motion: shoot|aim|draw; object: bow; object: arrow; object: target; body part: arm|hand|finger; "
               "?scene: field|range|archery range",
    "BalanceBeam": "motion: balance; motion: walk|flip|jump|leap|turn; object: balance beam|beam; "
                   "scene: gym|gymnasium|arena; body part: foot|leg; ?body part: arm; ?object: mat",
    "BasketballDunk": "motion: dunk; motion: jump; object: basketball|ball; object: hoop|basket|rim; "
                      "scene: basketball court|court; body part: arm|hand",
    "BoxingPunchingBag": "motion: punch|box|hit; object: punching bag|bag; object: boxing glove|glove; scene: gym; "
                         "body part: fist|arm|hand; ?scene: boxing ring",
    "BrushingTeeth": "motion: brush; body part: teeth; object: toothbrush; object: toothpaste; body part: mouth; "
                     "scene: bathroom; ?object: sink|mirror|water; ?body part: hand",
    "Diving": "motion: dive; motion: jump|flip|somersault; object: diving board|springboard|platform; "
              "scene: swimming pool|pool; scene: water; ?body part: arm|body",
    "Drumming": "motion: drum|hit|beat|strike|play; object: drum|drum kit; object: drumstick|stick; "
                "body part: hand|arm",
    "JumpingJack": "motion: jump|jumping jack; body part: arm|hand; body part: leg|foot; ?motion: clap",
    "PlayingFlute": "motion: play|blow; object: flute; body part: mouth|lip; body part: finger|hand",
    "SkateBoarding": "motion: skate|skateboard|ride; object: skateboard; "
                     "scene: skatepark|skate park|street|road|ramp|sidewalk; body part: foot|leg; "
                     "?motion: jump|push|flip",
    "TaiChi": "motion: move|stretch|balance|tai chi|exercise; body part: arm|hand; body part: leg; scene: park|garden; "
              "?motion: breathe|step|turn",
    "YoYo": "motion: spin|throw|flick|play; object: yo-yo; object: string; body part: hand|finger|wrist",
    # HMDB-51
    "cartwheel": "motion: cartwheel|flip|turn; body part: hand|arm; body part: leg|foot; "
                 "?scene: grass|gym|field|floor|beach",
    "clap": "motion: clap; body part: hand",
    "kick_ball": "motion: kick; object: ball|soccer ball|football; body part: foot|leg; "
                 "?scene: field|soccer field|park|pitch|grass",
    "push": "motion: push; body part: hand|arm; ?object: car|cart|door|box|wall|wheelchair",
    "pushup": "motion: push-up|pushup|push; body part: arm|hand|chest; ?scene: floor|ground|gym; ?body part: leg",
    "ride_horse": "motion: ride; object: horse; object: saddle|rein; ?object: bridle|helmet; ?body part: leg|hand; "
                  "?scene: field|farm|trail|track|ranch|arena|beach",
    "run": "motion: run; body part: leg|foot; ?scene: track|road|street|park|field",
    "shoot_ball": "motion: shoot|throw; object: ball|basketball; object: hoop|basket; body part: arm|hand; "
                  "?scene: court|basketball court",
    "talk": "motion: talk|speak; body part: mouth|lip|face; ?object: phone|microphone",
    "walk": "motion: walk; body part: leg|foot; ?scene: street|sidewalk|road|path|park",
}

# Held-out gold: action names from outside the three datasets, written by hand (same format) before the rules were
# ever run on them. GOLD above also guided a few commonsense entries, so HELD_OUT is the fairer estimate.
HELD_OUT = {
    "washing the car": "motion: wash|scrub|clean; object: car; object: sponge|hose|bucket|soap|cloth; "
                       "?scene: water|driveway|car wash|street; ?body part: hand",
    "vacuuming the carpet": "motion: vacuum|clean; object: vacuum cleaner|vacuum; object: carpet|rug; "
                            "?scene: floor|living room|room; ?body part: hand",
    "peeling a banana": "motion: peel; object: banana; body part: hand|finger; ?body part: mouth; ?motion: eat",
    "chopping onions in a kitchen": "motion: chop|cut|slice; object: onion; object: knife; "
                                    "object: cutting board|board; scene: kitchen; ?body part: hand",
    "hanging laundry": "motion: hang; object: laundry|clothes; object: clothesline|line|peg|clothespin; "
                       "?scene: garden|yard|backyard|balcony; ?body part: hand|arm",
    "tying shoelaces": "motion: tie; object: shoelace|lace; object: shoe; body part: finger|hand",
    "pouring coffee into a mug": "motion: pour; object: coffee; object: mug|cup; object: coffee pot|pot|kettle|jug; "
                                 "?body part: hand; ?scene: kitchen|cafe",
    "rowing a boat on a lake": "motion: row|paddle; object: boat|rowboat; object: oar|paddle; scene: lake|water; "
                               "?body part: arm|hand",
    "skipping stones on a river": "motion: skip|throw|toss; object: stone|rock|pebble; scene: river|water; "
                                  "body part: arm|hand|wrist; ?scene: riverbank|shore",
    "shooting an arrow at a target": "motion: shoot|aim|draw; object: arrow; object: target; object: bow; "
                                     "body part: arm|hand|finger; ?scene: range|field",
    "playing lacrosse": "motion: play|throw|catch|run; object: lacrosse stick|stick; object: ball; scene: field; "
                        "?object: helmet|net|goal",
    "PaddleBoarding": "motion: paddle|paddleboard|stand|balance; object: paddleboard|board; object: paddle; "
                      "scene: water|lake|sea; ?body part: arm|leg",
    "throw_frisbee": "motion: throw; object: frisbee|disc; body part: arm|hand; ?scene: park|field|beach; "
                     "?motion: catch",
    "kneading dough": "motion: knead|press; object: dough; body part: hand; ?object: flour|table|counter; "
                      "?scene: kitchen",
    "milking a goat": "motion: milk|squeeze; object: goat; object: bucket|pail; body part: hand; ?object: milk; "
                      "?scene: farm|barn",
    "playing the banjo": "motion: play|pluck|strum; object: banjo; body part: finger|hand",
    "ironing a shirt": "motion: iron|press; object: iron; object: shirt; object: ironing board; ?body part: hand",
    "hiking up a mountain": "motion: hike|walk|climb; scene: mountain|trail|hill; "
                            "object: backpack|hiking boots|boot|stick|pole; body part: leg|foot",
    "blowing bubbles": "motion: blow; object: bubble; body part: mouth|lip; ?object: wand|bubble wand|soap",
    "changing a diaper": "motion: change; object: diaper; object: baby; body part: hand; "
                         "?object: changing table|wipe|table",
}


def _norm(text):
    """Spelling-insensitive form for scoring: 'Push-ups' == 'pushup', 'feet' == 'foot'."""
    words = text.lower().replace("-", " ").split()
    words = [{"feet": "foot", "teeth": "tooth"}.get(w, w) for w in words]
    words = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]
    return "".join(words)


def parse_gold(spec):
    """'motion: kick; ?scene: park|field' -> [(required, kind, {alternatives}), ...]"""
    groups = []
    for part in spec.split(";"):
        kind, _, names = part.strip().partition(":")
        required = not kind.startswith("?")
        groups.append((required, kind.lstrip("?").strip(), {_norm(n) for n in names.split("|")}))
    return groups


def score_gold(gold=GOLD):
    """Micro precision and recall of extract_semantic_units on the gold classes, plus per-class details."""
    names = list(gold)
    bank = su.extract_semantic_units(names)
    correct = predicted = recalled = required = 0
    details = []
    for c, name in enumerate(names):
        groups = parse_gold(gold[name])
        units = bank.of_class(c)
        hits = [any(u.kind == kind and _norm(u.text) in alts for _, kind, alts in groups) for u in units]
        found = [any(u.kind == kind and _norm(u.text) in alts for u in units) for req, kind, alts in groups if req]
        correct, predicted = correct + sum(hits), predicted + len(units)
        recalled, required = recalled + sum(found), required + len(found)
        wrong = [f"{u.kind}: {u.text}" for u, h in zip(units, hits) if not h]
        missed = [f"{kind}: {'|'.join(sorted(alts))}" for (req, kind, alts), f in
                  zip([g for g in groups if g[0]], found) if not f]
        details.append((name, wrong, missed))
    return correct / max(predicted, 1), recalled / max(required, 1), details


# Action names from other sources (written for this suite: everyday activities, other sports, the project's synthetic
# set, and the three label styles): (name, expected motion, expected non-motion unit or None when the name has none).
OTHER_SOURCES = [
    ("walking left", "walk left", None), ("walking right", "walk right", None), ("sitting down", "sit down", None),
    ("standing up", "stand up", None), ("waving arms", "wave", "arm"), ("jumping", "jump", None),
    ("kicking a ball in a park", "kick", "park"), ("throwing a ball on a beach", "throw", "beach"),
    ("running in a field", "run", "field"), ("walking up the stairs", "walk", "stairs"),
    ("washing the car", "wash", "car"), ("vacuuming the carpet", "vacuum", "carpet"),
    ("feeding a baby", "feed", "baby"), ("tying shoelaces", "tie", "shoelace"), ("peeling a banana", "peel", "banana"),
    ("chopping onions in a kitchen", "chop", "kitchen"), ("hanging laundry", "hang", "laundry"),
    ("taking out the trash", "take out", "trash"), ("opening a door", "open", "door"),
    ("putting on a jacket", "put on", "jacket"), ("combing hair", "comb", "hair"), ("stirring soup", "stir", "soup"),
    ("answering the phone", "answer", "phone"), ("sawing wood", "saw", "wood"), ("painting a wall", "paint", "wall"),
    ("planting flowers in a garden", "plant", "garden"), ("PlayingBanjo", "play", "banjo"),
    ("throw_frisbee", "throw", "frisbee"), ("SnowShoeing", "snowshoe", "snowshoe"), ("PaddleBoarding", "paddleboard",
    "paddleboard"), ("playing lacrosse", "play", None), ("bouldering", "boulder", None),
    ("rowing a boat on a lake", "row", "lake"), ("doing a backflip", "backflip", None),
    ("skipping stones on a river", "skip", "river"), ("juggling pins", "juggle", "pin"),
    ("dribbling a football", "dribble", "football"), ("swimming in a lake", "swim", "lake"),
    ("carving a turkey", "carve", "turkey"), ("shooting an arrow at a target", "shoot", "target"),
    ("serving a volleyball", "serve", "volleyball"), ("pitching a baseball", "pitch", "baseball"),
    ("making coffee", "make", "coffee"), ("typing on a laptop", "type", "laptop"), ("fold_towel", "fold", "towel"),
    ("brushing a horse", "brush", "horse"), ("ScrubbingFloor", "scrub", "floor"), ("sewing a button", "sew", "button"),
    ("BatonTwirling", "twirl", "baton"), ("wakeboarding", "wakeboard", "wakeboard"),
    ("kneading dough", "knead", "dough"), ("changing a diaper", "change", "diaper"), ("BMXRiding", "ride", "bmx"),
    ("milking a goat", "milk", "goat"), ("hiking up a mountain", "hike", "mountain"),
    ("walking left in the park", "walk left", "park"), ("standing up from a chair in the room", "stand up", "chair"),
    ("bouncing a ball in the room", "bounce", "room"), ("jumping with both legs in the street", "jump", "leg"),
]


def _units(name, descriptions=None):
    bank = su.extract_semantic_units([name], descriptions)
    return {(u.kind, u.text) for u in bank.of_class(0)}


def _texts(name, kind=None):
    return {text for k, text in _units(name) if kind is None or k == kind}


@pytest.mark.parametrize("name, expected", [
    ("ApplyEyeMakeup", "apply eye makeup"), ("YoYo", "yo yo"), ("PlayingDaf", "playing daf"),
    ("kick_ball", "kick ball"), ("ride_horse", "ride horse"),
    ("tying knot (not on a tie)", "tying knot (not on a tie)"),
    ("BMXRiding", "bmx riding"), ("  Walking   Left ", "walking left"), ("passing American football (in game)",
                                                                        "passing american football (in game)")])
def test_normalize_class_name(name, expected):
    assert su.normalize_class_name(name) == expected


@pytest.mark.parametrize("word, lemma", [
    ("ran", "run"), ("swam", "swim"), ("threw", "throw"), ("swimming", "swim"), ("dribbling", "dribble"),
    ("making", "make"), ("dancing", "dance"), ("skiing", "ski"), ("canoeing", "canoe"), ("tying", "tie"),
    ("rolling", "roll"), ("opening", "open"), ("hiking", "hike"), ("kayaking", "kayak"), ("paragliding", "paraglide"),
    ("snowkiting", "snowkite"), ("bobsledding", "bobsled"), ("lunging", "lunge"), ("changing", "change"),
    ("kicked", "kick"), ("danced", "dance"), ("stopped", "stop"), ("swings", "swing"), ("knives", "knife"),
    ("teeth", "tooth"), ("boxes", "box"), ("cookies", "cookie"), ("lunges", "lunge"), ("leaves", "leaf"),
    ("toes", "toe"), ("tomatoes", "tomato"), ("glasses", "glasses"), ("gymnastics", "gymnastics"), ("bus", "bus"),
    ("bobsled", "bobsled"), ("shed", "shed"),
    # words no lexicon knows: the spelling rules alone
    ("yeeting", "yeet"), ("flurbling", "flurble"), ("zorping", "zorp"), ("blaving", "blave"), ("skronks", "skronk")])
def test_lemmatize(word, lemma):
    assert su.lemmatize(word) == lemma


def test_camel_case_and_underscore_styles_give_the_same_units():
    assert _units("BrushingTeeth") == _units("brushing teeth") == _units("brushing_teeth")
    assert _units("PushUps") == _units("push ups") == _units("pushup")
    assert ("object", "yo-yo") in _units("YoYo")
    assert ("object", "daf") in _units("PlayingDaf")


def test_longest_match_first():
    assert "bass guitar" in _texts("playing bass guitar", "object") and "guitar" not in _texts("playing bass guitar")
    assert "golf club" in _texts("swinging a golf club", "object") and "club" not in _texts("swinging a golf club")
    assert "pull-up" in _texts("PullUps", "motion") and "pull-up" in _texts("pull ups", "motion")
    assert ("object", "ice cream") in _units("eating ice cream") and "ice" not in _texts("eating ice cream")
    assert ("motion", "jumping jack") in _units("JumpingJack") and "jack" not in _texts("JumpingJack")
    # written joined or split: one unit; but a verb + its object is not a compound ("kick ball" is not "kickball")
    assert ("object", "skateboard") in _units("SkateBoarding") and ("object", "skateboard") in _units("skateboarding")
    assert ("motion", "kick") in _units("kick_ball") and ("object", "ball") in _units("kick_ball")


def test_head_verb_is_a_motion_even_when_unknown():
    assert _units("yeeting a shoe") >= {("motion", "yeet"), ("object", "shoe")}
    assert ("motion", "flurble") in _units("flurbling")
    assert ("motion", "zorp") in _units("zorp_ball") and ("object", "ball") in _units("zorp_ball")
    assert ("motion", "kick") in _units("high kick")                       # a known verb after a modifier


def test_patterns_make_objects_and_scenes():
    assert ("object", "daf") in _units("playing daf")                        # playing X
    assert ("object", "flurble") in _units("fixing a flurble")               # X-ing a Y
    assert ("object", "flurble") in _units("dancing with a flurble")         # with a X
    assert ("scene", "flurble") in _units("dancing in the flurble")          # in / at / on the X
    assert ("scene", "flurble") in _units("sitting at the flurble")
    assert ("object", "flurble") in _units("flurble blowing")                # a noun before the head gerund
    assert ("object", "mechanical bull") in _units("riding mechanical bull")  # unknown modifier + known noun
    assert ("object", "kayak") in _units("kayaking")                         # X-ing names the object X
    units = _units("walking left")                                           # direction joins the verb
    assert {("motion", "walk"), ("motion", "walk left")} <= units and _units("walking right") != units
    assert ("motion", "stand up") in _units("standing up") and ("motion", "sit down") in _units("sitting down")
    assert "hike up" not in _texts("hiking up a mountain")                   # "up a mountain" is a place


def test_coordination_and_qualifiers():
    assert {("motion", "catch"), ("motion", "throw")} <= _units("catching or throwing baseball")
    assert {("object", "canoe"), ("object", "kayak")} <= _units("canoeing or kayaking")
    assert "tie" not in _texts("tying knot (not on a tie)", "object") and "knot" in _texts("tying knot (not on a tie)")
    assert "cat" not in _texts("petting animal (not cat)")
    assert "boxing glove" in _texts("punching person (boxing)")            # a positive qualifier adds its units


@pytest.mark.parametrize("name, implied", [
    ("kick", {("body part", "leg"), ("body part", "foot")}), ("clap", {("body part", "hand")}),
    ("golf", {("object", "golf club"), ("scene", "golf course"), ("motion", "swing")}),
    ("swimming", {("scene", "water"), ("scene", "swimming pool")}),
    ("PlayingFlute", {("body part", "mouth"), ("body part", "finger")}),      # a group of the table: wind instruments
    ("playing tennis", {("object", "tennis racket"), ("scene", "tennis court"), ("motion", "swing")})])
def test_commonsense_implied_units(name, implied):
    assert implied <= _units(name)


def test_implied_units_do_not_override_the_name():
    assert "swing" not in _texts("golf putting", "motion")     # the name's own motion wins over the sport's usual one
    assert "swimming pool" not in _texts("swimming in a lake")  # a named place wins over the verb's usual one
    assert "box" not in _texts("boxing", "object")             # an activity in -ing is not its noun
    assert "bowling ball" not in _texts("CricketBowling")      # the named sport wins over the gerund's


def test_commonsense_table_is_consistent():
    known = {entry for entries in su.LEXICON.values() for entry in entries}
    texts = {text for _, text in known}
    for (kind, key), units in su.IMPLIED.items():
        assert key in texts and (kind is None or (kind, key) in known), key
        for unit in units:
            assert unit in known and unit[0] in su.KINDS, (key, unit)
    activities = {text for kind, text in known if kind == "activity"}
    assert all(("activity", a) in su.IMPLIED or (None, a) in su.IMPLIED for a in activities)
    sizes = {kind: sum(k == kind for k, _ in known) for kind in su.KINDS}
    print("lexicon sizes:", sizes, "activities:", len(activities))
    assert sizes["object"] >= 300 and sizes["motion"] >= 300 and sizes["scene"] >= 100 and sizes["body part"] >= 50


def test_descriptions_add_units(recwarn):
    names = ["golf", "YoYo"]
    descriptions = {"golf": "A person swings a golf club and hits the ball on a green fairway.",
                    "yo-yo": ["The player flicks the yo-yo down", "catching it with the hand"]}
    plain = su.extract_semantic_units(names)
    rich = su.extract_semantic_units(names, descriptions)
    for c in range(len(names)):
        before = {(u.kind, u.text) for u in plain.of_class(c)}
        after = {(u.kind, u.text) for u in rich.of_class(c)}
        # richer text, richer units; a motion the text names replaces the one the table would have filled in
        assert len(after - before) >= 2 and {u for u in before if u[0] != "motion"} <= after
    assert ("motion", "hit") in {(u.kind, u.text) for u in rich.of_class(0)}
    assert ("scene", "fairway") in {(u.kind, u.text) for u in rich.of_class(0)}
    assert ("motion", "flick") in {(u.kind, u.text) for u in rich.of_class(1)}
    assert not recwarn.list


def test_description_of_unknown_class_warns():
    with pytest.warns(UserWarning, match="not in the label set"):
        bank = su.extract_semantic_units(["golf"], {"curling": "sliding a stone on ice"})
    assert bank.of_class(0) == su.extract_semantic_units(["golf"]).of_class(0)


def test_load_descriptions(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"golf": "swings a club", "run": ["legs move", "on a track"]}))
    assert su.load_descriptions(good) == {"golf": ["swings a club"], "run": ["legs move", "on a track"]}
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "golf": "swings a club",\n  "run": "legs move"\n  "walk": "feet"\n}\n')
    with pytest.raises(ValueError, match=r"bad\.json:4"):
        su.load_descriptions(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{\n  "golf": "swings a club",\n  "run": 3\n}\n')
    with pytest.raises(ValueError, match=r"wrong\.json:3: class 'run'"):
        su.load_descriptions(wrong)
    not_object = tmp_path / "list.json"
    not_object.write_text('["golf"]')
    with pytest.raises(ValueError, match=r"list\.json"):
        su.load_descriptions(not_object)


def test_deterministic_sorted_unique_and_clean():
    names = [name for name, _, _ in OTHER_SOURCES] + list(GOLD)
    bank = su.extract_semantic_units(names)
    again = su.extract_semantic_units(names)
    assert bank == again
    shuffled = su.extract_semantic_units(names[::-1])
    assert shuffled.units == bank.units                          # the bank does not depend on the class order
    assert [set(shuffled.of_class(len(names) - 1 - c)) for c in range(len(names))] == \
        [set(bank.of_class(c)) for c in range(len(names))]
    pairs = [(u.kind, u.text) for u in bank.units]
    assert len(set(pairs)) == len(pairs)
    assert pairs == sorted(pairs, key=lambda p: (su.KINDS.index(p[0]), p[1]))
    for unit in bank.units:
        assert unit.kind in su.KINDS and unit.text == unit.text.strip().lower() and unit.text
        assert unit.text not in su.FUNCTION_WORDS and not set(unit.text.split()) <= su.FUNCTION_WORDS
    assert all(idx == sorted(set(idx)) for idx in bank.by_class)


@pytest.mark.parametrize("name, motion, noun", OTHER_SOURCES)
def test_action_names_from_other_sources(name, motion, noun):
    units = _units(name)
    assert any(k == "motion" for k, _ in units) and any(k != "motion" for k, _ in units), units
    assert ("motion", motion) in units, units
    if noun is not None:
        assert any(k != "motion" and t == noun for k, t in units), units


def test_gold_precision_and_recall():
    precision, recall, details = score_gold(GOLD)
    held_precision, held_recall, _ = score_gold(HELD_OUT)
    print(f"gold ({len(GOLD)} classes): precision {precision:.3f} recall {recall:.3f}; "
          f"held-out ({len(HELD_OUT)}): precision {held_precision:.3f} recall {held_recall:.3f}")
    assert len(GOLD) >= 40
    assert precision >= 0.8 and recall >= 0.8, details
    assert held_precision >= 0.7 and held_recall >= 0.7


@pytest.mark.parametrize("dataset", ["kinetics400", "ucf101", "hmdb51"])
def test_every_class_of_the_standard_datasets(dataset):
    path = LABELS / f"{dataset}.txt"
    if not path.is_file():
        pytest.skip(f"label list not found: {path}")
    names = path.read_text(encoding="utf-8").splitlines()
    bank = su.extract_semantic_units(names)
    sizes = {kind: sum(u.kind == kind for u in bank.units) for kind in su.KINDS}
    print(f"{dataset}: {len(names)} classes, {len(bank.units)} units, {sizes}")
    assert len(bank.by_class) == len(names)
    for c, name in enumerate(names):
        kinds = [u.kind for u in bank.of_class(c)]
        assert "motion" in kinds and any(k != "motion" for k in kinds), (name, bank.of_class(c))
    assert all(sizes[kind] > 0 for kind in su.KINDS)


def test_su_prompt():
    assert su.su_prompt(su.SemanticUnit("kick", "motion")) == "a video of a person kick."
    assert su.su_prompt(su.SemanticUnit("golf club", "object")) == "a photo of golf club."
    assert su.su_prompt(su.SemanticUnit("hand", "body part"), template="{}") == "hand"


def test_su_text_embeddings(tmp_path):
    clip_vit = pytest.importorskip("clip_vit")
    torch = pytest.importorskip("torch")
    model = clip_vit.tiny_clip(seed=0)
    bank = su.extract_semantic_units(["kick_ball", "PlayingFlute"])
    embeddings = su.su_text_embeddings(model, bank, cache_dir=tmp_path)
    assert embeddings.shape == (len(bank.units), model.text_projection.shape[1])
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(len(bank.units)), atol=1e-5)
    prompts = [su.su_prompt(u) for u in bank.units]
    assert torch.allclose(embeddings, clip_vit.encode_texts(model, prompts), atol=1e-6)
    assert list(tmp_path.iterdir())                                          # cached on disk
    assert torch.equal(su.su_text_embeddings(model, bank.units, cache_dir=tmp_path), embeddings)


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "semantic_units.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def test_cli(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("kick_ball\nPlayingFlute\nwalking left\n\n")
    descriptions = tmp_path / "desc.json"
    descriptions.write_text(json.dumps({"kick_ball": "kicks a ball in a stadium"}))
    out = tmp_path / "units.json"
    result = _cli(labels, "--descriptions", descriptions, "--json", out)
    assert result.returncode == 0, result.stderr
    bank = su.extract_semantic_units(["kick_ball", "PlayingFlute", "walking left"],
                                     su.load_descriptions(descriptions))
    assert f"3 classes, {len(bank.units)} semantic units" in result.stdout
    for kind in su.KINDS:
        assert f"{kind:9s} {sum(u.kind == kind for u in bank.units):5d}" in result.stdout
    assert "stadium" in result.stdout and "walk left" in result.stdout
    data = json.loads(out.read_text())
    assert data["units"] == [{"text": u.text, "kind": u.kind} for u in bank.units]
    assert [c["units"] for c in data["classes"]] == bank.by_class


def test_cli_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.txt"
    result = _cli(missing)
    assert result.returncode != 0 and "nope.txt" in result.stderr
    labels = tmp_path / "labels.txt"
    labels.write_text("golf\n")
    bad = tmp_path / "bad.json"
    bad.write_text('{"golf": "swing",\n}')
    result = _cli(labels, "--descriptions", bad)
    assert result.returncode != 0 and "bad.json:2" in result.stderr
