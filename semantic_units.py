"""Semantic units (SUs): the body parts, objects, scenes and motions behind an action set (ASU, "semantic units").

ASU describes every action class by semantic units taken from the language of the whole action set; visual tokens
select the relevant SUs and a decoder builds the video representation from them. The paper takes SUs from language
descriptions; ours come from handwritten lexicons and rules, so any label set, seen before or not, gets SUs without a
language model:

  1. normalise the name (CamelCase, underscores; "(not ...)" qualifiers dropped), split words with `regex`,
     lemmatise (suffix rules + an irregular table, checked against the lexicon vocabulary);
  2. match lexicon entries longest-first (multi-word, also when written joined: "push ups" = "pushups");
  3. roles: the head verb (first gerund, else a known verb, else an unknown word in verb position) is a motion even
     when the lexicon lacks it; a direction or particle joins it ("walk left", "stand up"); "V-ing [a] X" and
     "playing X" make X an object, "with a X" an object, "in/at/on the X" a scene; a noun before the head gerund
     is its object ("balloon blowing"); an "X-ing" whose X is an object names the object too ("kayaking");
  4. a commonsense table adds implied units (kick -> leg, foot; golf -> golf club, golf course, swing).
Descriptions (free text per class) go through the same rules, so richer text gives richer units.

In:  class names (C strings, any style) and optional descriptions {class: [text, ...]}.
Out: SemanticUnits: .units (S unique SemanticUnit(text, kind), sorted by kind, then text) and .by_class (C sorted
     lists of unit indices); su_text_embeddings(clip, units) -> (S, D) L2-normalised text embeddings.
CLI: python semantic_units.py LABELS.txt [--descriptions F] [--json OUT]
"""
import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import regex

KINDS = ("body part", "object", "scene", "motion")


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


# ----------------------------------------------------------------------------------------------------------------
# Lexicons: one per kind, comma-separated; "a|b" = unit "a", also written "b". Breadth over the label lists we know:
# everyday, sports, music, household, work and outdoor vocabulary.

BODY_PARTS = """
head, face, hair, scalp, forehead, eyebrow, eyelash, eyelid, eye, eyeball, ear, nose, nostril, cheek, mouth, lip,
tongue, teeth|tooth, gum, jaw, chin, beard, moustache|mustache, sideburns, neck, throat, shoulder, armpit, arm,
upper arm, elbow, forearm, wrist, hand, palm, finger, fingertip, thumb, fingernail, nail, fist, knuckle, chest,
breast, rib, back, lower back, spine, belly|tummy, stomach, abdomen, abs, waist, hip, buttock|butt|bum, groin, leg,
thigh, knee, shin, calf, ankle, foot, heel, toe, toenail, skin, body, torso, muscle, biceps|bicep, triceps, hamstring,
lap, nape, ponytail, braid, lung"""

OBJECTS = """
ball, soccer ball, football, american football, rugby ball, basketball, volleyball, tennis ball, golf ball, baseball,
softball, cricket ball, bowling ball, beach ball, exercise ball|fitness ball|swiss ball, medicine ball,
ping pong ball, billiard ball|pool ball, cue ball, shuttlecock|birdie, puck, frisbee, disc, bat, baseball bat,
cricket bat, racket|racquet, tennis racket, badminton racket, squash racket, paddle, oar, golf club, hockey stick,
lacrosse stick, hurley, cue, pool cue, net, goal, goalpost, hoop, basket, rim, glove, baseball glove|mitt,
boxing glove, punching bag, speed bag, skateboard, longboard, snowboard, surfboard, wakeboard, paddleboard, bodyboard,
kiteboard, ski, ski pole, skate, ice skate, roller skate, rollerblade, helmet, goggles, knee pad, barbell, dumbbell,
kettlebell, weight, weight plate, bench, treadmill, exercise bike, rowing machine, trampoline,
jump rope|skipping rope, rope, hula hoop, javelin, discus, shot put, hammer, pole, hurdle, balance beam|beam,
parallel bars, uneven bars, bar, pull-up bar, pommel horse, rings|still rings, vaulting horse, mat, yoga mat,
springboard, diving board, platform, bow, arrow, quiver, target, dart, dartboard, sword, foil, epee, sabre|saber,
fencing mask, shield, nunchucks|nunchaku, staff, poi, kite, parachute, paraglider, hang glider, sail, harness,
carabiner, climbing wall, slackline, trapeze, tee, pin, bowling pin, chess piece, chessboard, card|playing card, dice,
board game, token, controller|game controller, joystick, whistle, stopwatch, scoreboard, trophy, medal, award, stick,
baton, pom-pom, bungee cord, snorkel, diving mask, flipper|fins, wetsuit, oxygen tank|scuba tank, life jacket,
fishing rod|fishing pole, fishing line, fishing net, bait, hook, tent, sleeping bag, backpack, map, compass,
flashlight, binoculars, saddle, rein|reins, bridle, stirrup, leash, collar, lasso, horseshoe, mechanical bull, sled,
sleigh, toboggan, bobsled, snowshoe, ice axe, guitar, bass guitar, electric guitar, acoustic guitar, ukulele, banjo,
mandolin, sitar, harp, lute, zither, violin, viola, cello, double bass, fiddle, piano, keyboard, organ, accordion,
synthesizer, harpsichord, flute, recorder, piccolo, pan flute, clarinet, oboe, bassoon, saxophone|sax, trumpet,
trombone, tuba, french horn, horn, bugle, cornet, harmonica, bagpipes, didgeridoo, kazoo, drum,
drum kit|drums|drum set, snare drum, bass drum, timpani, cymbal, gong, tabla, dhol, daf, bongo, conga, djembe,
tambourine, cajon, maracas, xylophone, marimba, glockenspiel, vibraphone, triangle, cowbell, steel drum, drumstick,
mallet, microphone|mic, music stand, sheet music, headphones, speaker, amplifier, turntable, music, knife, fork,
spoon, chopsticks, plate, bowl, cup, mug, glass, wine glass, shot glass, bottle, can, jar, pot, pan, frying pan, wok,
kettle, teapot, oven, stove, microwave, fridge|refrigerator, sink, faucet|tap, dish, sponge, towel, cutting board,
rolling pin, whisk, spatula, ladle, tongs, grater, peeler, blender, mixer, tray, baking tray, napkin, tablecloth,
table, chair, stool, sofa|couch, bed, pillow, blanket, sheet, mattress, crib, lamp, candle, door, window, curtain,
carpet, rug, wall, ladder, shelf, cabinet, drawer, closet, mirror, clock, television|tv,
remote control|remote controller|remote, phone|smartphone|cell phone|mobile phone, laptop, computer, computer mouse,
screen, monitor, tablet, camera, tripod, book, newspaper, magazine, paper, notebook, pen, pencil, marker, chalk,
crayon, eraser, ruler, brush, paintbrush, paint, paint roller, spray paint|spray can, canvas, easel, scissors, tape,
glue, envelope, letter, box, bag, shopping bag, present|gift, wrapping paper, ribbon, bow tie, tie|necktie, shirt,
t-shirt, jacket, coat, dress, skirt, pants|trousers, jeans, shorts, sock, shoe|sneaker, boot, shoelace, hat, cap,
scarf, sunglasses, glasses, watch, ring, necklace, bracelet, earring, jewelry|jewellery, bead, button, zipper,
clothes|clothing, laundry, washing machine, iron, ironing board, hanger, vacuum cleaner|vacuum, mop, broom, dustpan,
bucket, trash| rubbish, trash can|bin|dustbin, garbage, garbage bag, toilet, toilet paper, toothbrush, toothpaste,
floss, comb, hairbrush, hair dryer|blow dryer, curling iron, hair straightener, razor, shaver|electric shaver,
shaving cream, soap, shampoo, lotion, cream, sunscreen, makeup|make up, eye makeup, lipstick, mascara, eyeliner,
eyebrow pencil, nail polish, nail file, nail clipper, perfume, tissue, wax, tattoo, tattoo machine, needle, match,
lighter, cigarette, cigar, pipe, hookah, vape|e-cigarette, key, lock, wallet, money|cash, coin, banknote, credit card,
ticket, umbrella, battery, light bulb, flower, bouquet, vase, plant, houseplant, watering can, hose, sprinkler,
balloon, toy, doll, teddy bear, puzzle, rubik's cube, yo-yo|yoyo, spinning top, baby bottle, pacifier, diaper,
stroller|pram, wheelchair, crutch, cane, bandage, syringe, pill, thermometer, stethoscope, gavel, podium, flag,
banner, sign, wreath, christmas tree, ornament, pumpkin, snowman, sandcastle, bubble, confetti, firework, gas pump,
nozzle, tire|tyre, wheel, steering wheel, car jack, engine, oil, jack, welding torch, welding mask, blowtorch, torch,
hammer drill, drill, screwdriver, screw, wrench|spanner, pliers, saw, chainsaw, axe|ax, hatchet, shovel|spade, rake,
hoe, pickaxe, wheelbarrow, lawn mower|mower, leaf blower, hedge trimmer, shears, pruning shears, trowel, chisel,
sandpaper, sander, nail gun, tape measure, toolbox, crowbar, anvil, brick, cement, concrete, plaster, wood, log,
firewood, plank, board, whiteboard, blackboard|chalkboard, metal, glass pane, clay, pottery, pottery wheel, kiln,
yarn|wool, thread, fabric|cloth, knitting needle, crochet hook, sewing machine, loom, rag, mask, stone|rock, pebble,
boulder, sand bag, snow shovel, fire, campfire|bonfire, fire extinguisher, smoke, cart|shopping cart|trolley,
package|parcel, crate, pallet, forklift, cash register, printer, keyboard stand, document, folder, clipboard,
weather map, teleprompter, desk, leaf, branch, tree, palm tree, bush|shrub, hedge, flowerbed, seed, soil bag, block,
gun|rifle|pistol, water ski, sculpture, statue, picture|photo, furniture, poster, kite string, string, chain, knot,
bow string, food, apple, banana, orange, lemon, grape, watermelon, pineapple, strawberry, cherry, peach, pear, mango,
coconut, fruit, vegetable, carrot, potato, tomato, onion, garlic, lettuce, salad, cucumber, pepper, corn, mushroom,
bread, toast, sandwich, burger|hamburger, hotdog|hot dog, pizza, pasta, spaghetti, noodles, rice, sushi, soup, egg,
bacon, sausage, meat, steak, chicken, fish, cheese, butter, cake, cookie|biscuit, doughnut|donut, pancake, waffle,
muffin, pie, ice cream, chocolate, candy, chips|crisps, french fries|fries, popcorn, cereal, milk, juice, beer, wine,
cocktail, soda, tea, coffee, flour, sugar, salt, dough, batter, sauce, ketchup, honey, breadcrumbs, spice, oil bottle,
grill, barbecue|barbeque|bbq, skewer, turkey, nut, icing, tofu, dumpling, taco, car, truck, bus, van, taxi, tractor,
motorcycle|motorbike, dirt bike, scooter, bike|bicycle, mountain bike, bmx, unicycle, tricycle, segway, hoverboard,
train, tram, airplane|plane|aeroplane, helicopter, boat, ship, sailboat, yacht, kayak, canoe, raft, rowboat, gondola,
jet ski|jetski|skijet, snowmobile, wagon, carriage, go-kart|kart, quad bike|atv, bulldozer, excavator, crane,
ambulance, fire truck, rocket, hot air balloon, glider, elevator, escalator, horse, pony, mule, donkey, camel,
elephant, cow, calf, bull, ox, sheep, lamb, goat, pig, hen, rooster, duck, goose, bird, parrot, pigeon, eagle, owl,
shark, dolphin, whale, turtle, snake, lizard, frog, rabbit|bunny, hamster, mouse, rat, squirrel, deer, bear, lion,
tiger, monkey, gorilla, giraffe, zebra, kangaroo, bee, beehive, butterfly, spider, ant, insect, worm, crab, lobster,
octopus, seal, penguin, dog|puppy, cat|kitten, sled dog, animal| pet, baby|infant, child|kid|toddler, partner,
opponent, crowd|audience, band, team, soldier, uniform"""

SCENES = """
park, playground, beach, sea, ocean, lake, frozen lake, river, pond, stream, waterfall, water, swimming pool| pool,
hot tub, bathroom, kitchen, living room, bedroom, dining room, office, classroom, school, library, gym|gymnasium,
studio, dance studio, stage, concert, theater|theatre, cinema, restaurant, pub, cafe, shop|store, supermarket, market,
mall, street, road, highway, sidewalk|pavement, alley, crosswalk, parking lot, garage, gas station|petrol station,
city, town, village, house, home, yard, backyard, garden, farm, field, meadow, grass, lawn, forest|woods, jungle,
mountain, hill, cliff, cave, desert, canyon, valley, snow, ice rink|rink|skating rink, glacier, sky, air, shore,
coast, harbor| harbour, dock, pier, island, court, basketball court, tennis court, volleyball court, badminton court,
squash court, soccer field|football pitch, football field, baseball field|baseball diamond, cricket pitch, pitch,
stadium, arena, track|running track, race track|racetrack, golf course, putting green, driving range,
ski slope|slope|piste, skatepark|skate park, halfpipe|half pipe, ramp, bowling alley, boxing ring, wrestling ring,
dance floor, ballroom, church, temple, mosque, hospital, salon|beauty salon|hair salon, barbershop|barber shop,
tattoo parlor|tattoo studio, laboratory|lab, factory, workshop, warehouse, construction site, roof|rooftop, attic,
basement, porch, balcony, hallway|corridor, stairs|staircase|stairway|steps, floor, ground, room, indoors|indoor,
outdoors|outdoor, campsite, camp, barn, stable, paddock, ranch, zoo, aquarium, underwater, coral reef,
seabed|sea floor, wave, sand, sand pit| sandpit, dirt, mud, soil, trail, path, bridge, tunnel, train station, airport,
runway, ceremony, wedding, party, festival, newsroom|news studio, tv studio, courtroom, rodeo, circus, casino,
car wash, laundromat, patio, spa, sauna, locker room, poolside, riverbank, countryside, snowfield, ice, ski resort,
fairway, velodrome, dojo, boxing gym, climbing gym, bouldering gym, orchard, vineyard, greenhouse, garden bed,
construction, kitchen counter, table top"""

MOTIONS = """
walk, run, jog, sprint, hop, skip, march, stomp, tiptoe, limp, stride, trek, hike, kick, step, pedal, jump, leap,
bounce, vault, hurdle, clap, applaud, wave, slap, pat, tap, snap, knock, point, grab, grip, hold, pick, pluck,
squeeze, pinch, wring, catch, juggle, clasp, salute, pray, knead, pet, stroke, caress, tickle, massage, rub, scratch,
throw, toss, pitch, hurl, lob, fling, swing, lift, carry, hug, cuddle, embrace, flap, raise, reach, punch, jab, box,
push, pull, shove, drag, haul, tug, eat, bite, chew, swallow, lick, sip, drink, taste, gargle, spit, yawn, cough,
burp, blow, suck, kiss, smile, laugh, grin, giggle, talk, speak, say, whisper, shout, yell, scream, cheer, sing, hum,
chant, whistle, smoke, vape, puff, inhale, exhale, breathe, cry, weep, sob, frown, wink, blink, stare, look, watch,
read, see, gaze, peek, sneeze, sniff, smell, nod, headbang, headbutt, shrug, sit, stand, lie, kneel, crawl, roll,
tumble, flip, spin, twirl, turn, twist, rotate, bend, bow, squat, lunge, stretch, balance, fall, slip, trip, dive,
swim, float, climb, abseil, rappel, dance, skate, ski, surf, windsurf, kitesurf, snowboard, skateboard, sled, ride,
drive, fly, glide, paraglide, skydive, slide, wrestle, fight, spar, grapple, tackle, dodge, duck, hide, chase, race,
fence, shoot, aim, fire, exercise, train, write, draw, sketch, paint, type, text, sew, knit, crochet, weave,
embroider, fold, cut, chop, slice, dice, peel, grate, carve, whittle, sculpt, mold, sand, polish, shine, file, saw,
hammer, drill, screw, glue, tape, wrap, unwrap, tie, untie, braid, comb, brush, shave, trim, clip, wax, apply, spray,
pour, fill, empty, stir, mix, whisk, spread, season, cook, bake, fry, boil, grill, barbecue, roast, toast, steam,
serve, set, arrange, decorate, clean, wash, rinse, scrub, wipe, dust, sweep, mop, vacuum, iron, hang, dry,
blow-dry|blow dry, fix, repair, build, assemble, install, plaster, weld, solder, dig, plant, water, rake, mow, prune,
harvest, shovel, split, stack, load, unload, pack, unpack, open, close, lock, unlock, press, count, sort, shuffle,
deal, play, strum, drum, conduct, record, film, photograph, feed, milk, shear, groom, lead, tame, row, paddle, sail,
kayak, canoe, raft, fish, hunt, snorkel, scuba dive, bungee jump, parachute, hang glide, skip rope, dribble, pass,
dunk, block, spike, volley, smash, bunt, bat, bowl, putt, chip, tee off, score, defend, referee, celebrate,
clean and jerk, snatch, deadlift, bench press, push-up|pushup|press-up, pull-up|pullup|chin-up, sit-up|situp, burpee,
jumping jack| star jump, crunch, plank, front raise, lateral raise, bicep curl, handstand, headstand, cartwheel,
somersault, backflip|back flip, frontflip, handspring, flic-flac, round-off, splits, high five, fist bump, moonwalk,
wheelie, ollie, kickflip, layup, slam dunk, use, do, get, go, have, take, make, give, receive, put, place, drop, lay,
check, inspect, search, find, show, present, teach, learn, practice|practise, perform, rehearse, interpret, sign,
tattoo, auction, bartend, busk, beatbox, testify, wait, queue, stop, brake, steer, park, crash, bang, anchor, report,
forecast, announce, interview, answer, ask, call, listen, hear, greet, shake, marry, beg, stumble, crouch, lean, rock,
sway, shiver, tremble, wiggle, shimmy, strut, waddle, gallop, trot, jump rope, pole vault, wake, sleep, rest, relax,
bathe, shower, dress, undress, button, zip, lace, knot, sharpen, grind, mash, squash, crush, bread, breadcrumb, frost,
glaze, marinate, garnish, sample, pump, inflate, deflate, blow up, pop, pick up, put down, throw away, hit, strike,
move, flick, tilt, hoist, heave, swat, smack, poke, prod, stab, slash, thrust, parry, pivot, skid, scoop, grasp,
clutch, release, swirl, sprinkle, drizzle, soak, scrape, measure, staple, put on, take off, take out, turn on,
turn off, collect, gather, tag, seek, zigzag, swerve, scale, boulder, belay, spelunk, excavate, quarry, change,
replace, remove, unbox, faceplant, dine, lay bricks, tile, grout, caulk, wallpaper, sand down, varnish, stain,
lacquer"""

# Activities name a sport, game, art or chore: not a unit themselves, they bring their units through COMMONSENSE.
ACTIVITIES = """
golf, tennis, table tennis|ping pong, badminton, squash, racquetball, basketball, volleyball, beach volleyball,
football, soccer, american football, rugby, baseball, softball, cricket, hockey|ice hockey, field hockey, lacrosse,
hurling, polo, water polo, handball, dodgeball, kickball, bowling, billiards|snooker, darts, archery, fencing, boxing,
kickboxing, wrestling, sumo, judo, karate, taekwondo, kung fu, martial arts, capoeira, tai chi, yoga, pilates,
aerobics, zumba, gymnastics, floor gymnastics, cheerleading, ballet, salsa, tango, swing dance, ballroom dance,
belly dance, line dance|country line dance, hip hop, breakdance|breakdancing|breaking, krump, robot dance, charleston,
macarena, gangnam style, jumpstyle, tap dance, ice dancing|figure skating, parkour, skateboarding, snowboarding,
skiing, water skiing, ski jumping, slalom, cross country skiing|crosscountry, surfing, windsurfing, kitesurfing,
snowkiting, sailing, parasailing, rowing, canoeing, kayaking, rafting, scuba diving|scuba, snorkeling, skydiving,
paragliding, hang gliding, bungee jumping, rock climbing, ice climbing, bouldering, abseiling, hiking, camping,
fishing, ice fishing, hunting, horse riding|horseback riding|equestrian, horse race|horse racing, cycling,
mountain biking, motocross, marathon, triathlon, high jump, long jump, triple jump, pole vault|pole vaulting,
hurdles|hurdling, hammer throw, javelin throw|javelin, discus throw|discus, shot put|shotput,
weightlifting| weight lifting, powerlifting, bodybuilding, calisthenics, crossfit, trampolining, roller skating,
ice skating, speed skating, bobsledding|bobsleigh, luge, sledding|tobogganing, snowmobiling, jet skiing,
sled dog racing|dog sledding, chess, poker, cards, monopoly, board game, video game|gaming, hopscotch,
rock paper scissors|rock scissors paper, hide and seek, contact juggling, juggling, beatboxing, karaoke, busking,
magic, origami, pottery|clay pottery, bookbinding, carpentry, gardening, cooking, baking, laundry, housework, haircut,
manicure|nails, tattoo, sign language, news, breaststroke|breast stroke, backstroke|back stroke, butterfly stroke,
front crawl, freestyle swimming, disc golf|disc golfing, beekeeping|bee keeping, body weight|bodyweight,
weather forecast, parade|military parade, marching band|band marching, penalty| penalty kick|penalty shot, field goal,
free kick, corner kick, serve, rally, touchdown, home run, trick shot, stunt, acrobatics, trapeze, slacklining,
tightrope, circus, pizza tossing, bartending, auctioning, surgery, first aid, arm wrestling, sword fighting,
tug of war, relay race, sack race, limbo, twister, jenga, bingo, lottery, hula hooping"""

# Commonsense: units a mention implies. Keys are entries of any lexicon above (activities included); implied units
# are entries of the named kind. Written per concept, for reuse by every label that mentions it.
COMMONSENSE = """
walk, run, jog, sprint, hop, skip, march, stomp, tiptoe, limp, stride, trek, hike, kick, step, pedal => body part:
    leg, foot
jump, leap, bounce, vault, squat, lunge, burpee => body part: leg
clap, applaud, cheer, celebrate, slap, pat, grab, grip, hold, catch, squeeze, pinch, salute, pray, pet, stroke,
    massage, rub, pick => body part: hand
pluck, snap, point, tickle, scratch => body part: finger, hand
throw, toss, pitch, hurl, lob, fling, dunk, push, pull, shove, drag, tug, juggle, wave => body part: hand, arm
swing, lift, hug, cuddle, embrace, carry, flap, raise, reach, bicep curl, front raise, lateral raise => body part: arm
punch, jab, box (motion) => body part: fist, arm
answer, ask, greet, interview, call, testify, eat, bite, chew, swallow, lick, sip, drink, taste, gargle, spit, yawn,
    cough, burp, blow, suck, talk, speak, say, whisper, shout, yell, scream, sing, hum, chant, smoke, vape, puff,
    inhale, exhale, breathe, beatbox => body part: mouth
kiss, whistle => body part: lip
smile, laugh, grin, giggle => body part: mouth, face
cry, weep, sob, frown => body part: face, eye
wink, blink, stare, look, watch, read, gaze, peek => body part: eye
sneeze, sniff, smell => body part: nose
nod, headbang, headbutt => body part: head
shrug => body part: shoulder
kneel => body part: knee
crawl => body part: hand, knee
stand => body part: leg, foot
sit => object: chair; body part: leg
stretch => body part: arm, leg
bend => body part: back
balance => body part: foot, leg
dance => body part: leg, foot
climb => body part: hand, leg
fall => scene: ground
swim => scene: water, swimming pool; body part: arm, leg
dive => scene: water, swimming pool; object: diving board
surf => object: surfboard; scene: wave, sea
ski => object: ski, ski pole; scene: snow, ski slope
skate => object: skate
sled => object: sled; scene: snow
row => object: oar; scene: water
paddle => object: paddle; scene: water
sail => object: sail; scene: sea
fish (motion) => object: fishing rod; scene: water
shoot => body part: hand
aim => body part: eye, hand
type => object: keyboard; body part: finger
text => object: phone; body part: thumb
write => object: pen, paper; body part: hand
draw, sketch => object: pencil, paper; body part: hand
paint => object: paintbrush, paint
sew, embroider => object: needle, thread
knit => object: knitting needle, yarn
crochet => object: crochet hook, yarn
shave => object: razor
wax => object: wax
sweep => object: broom; scene: floor
mop => scene: floor
vacuum => object: vacuum cleaner; scene: floor
iron => object: ironing board
stir, mix, whisk => object: bowl, spoon
knead => object: dough; body part: hand
cut, chop, slice, dice, peel, carve => object: knife
wash, rinse, bathe, shower => scene: water
dig => object: shovel; scene: ground
plant => scene: soil
mow => object: lawn mower; scene: lawn
rake => object: leaf
hammer => body part: hand
weld => object: welding torch, metal
milk (motion) => object: bucket
water (motion) => object: watering can; scene: garden
shear => object: shears
groom => object: brush
feed => object: food
apply => body part: hand
fold => body part: hand
dine => object: table, plate; scene: restaurant; body part: mouth
hit, strike => body part: hand, arm
pour => object: cup, bottle; body part: hand
spray => body part: hand
unbox => object: box; body part: hand
faceplant => body part: face; scene: ground
blow-dry => object: hair dryer; body part: hair
tie, untie, braid => body part: finger, hand
handstand => body part: hand, arm
cartwheel => body part: hand, leg
headstand => body part: head, arm
push-up => body part: arm, chest; scene: floor
pull-up => object: pull-up bar; body part: arm
somersault, backflip, frontflip, handspring, flic-flac, round-off, tumble => object: mat; body part: body
splits => body part: leg
clean and jerk, snatch, deadlift, bench press => object: barbell; body part: arm, leg
jumping jack => body part: arm, leg
plank, crunch, sit-up => body part: abs
dribble => object: ball
ollie, kickflip, wheelie => object: skateboard
layup, slam dunk => object: hoop, basketball
skip rope => object: jump rope
guitar, bass guitar, electric guitar, acoustic guitar, ukulele, banjo, mandolin => body part: finger, hand; motion:
    strum
sitar, harp, lute, zither => body part: finger; motion: pluck
violin, viola, cello, double bass, fiddle => object: bow; body part: finger, hand
piano, keyboard, organ, synthesizer, harpsichord => body part: finger, hand
accordion => body part: finger, hand; motion: squeeze
flute, recorder, piccolo, pan flute, clarinet, oboe, bassoon, saxophone, trumpet, trombone, tuba, french horn, horn,
    bugle, cornet, harmonica, bagpipes, didgeridoo, kazoo => body part: mouth, finger; motion: blow
drum, drum kit, snare drum, bass drum, timpani, cymbal, gong => object: drumstick; body part: hand, arm; motion: hit
tabla, dhol, daf, bongo, conga, djembe, tambourine, cajon => body part: hand, finger; motion: tap
xylophone, marimba, glockenspiel, vibraphone, steel drum => object: mallet; body part: hand; motion: hit
maracas => body part: hand; motion: shake
microphone => motion: sing; body part: mouth
soccer ball, football => body part: foot; motion: kick
basketball => object: hoop; scene: basketball court; motion: dribble, shoot
volleyball, beach volleyball => object: net; scene: volleyball court; motion: hit
baseball => object: baseball bat, baseball glove; scene: baseball field; motion: pitch
softball => object: bat, glove; motion: pitch
tennis ball => object: tennis racket
golf ball => object: golf club
bowling ball => object: bowling pin; scene: bowling alley; motion: roll
frisbee => motion: throw, catch; body part: hand
kite => object: kite string; scene: sky; motion: fly
yo-yo => object: string; body part: hand; motion: spin
hula hoop => body part: waist, hip; motion: spin
poi => body part: hand, arm; motion: spin
nunchucks => body part: hand, arm; motion: swing
balance beam => scene: gym; body part: foot; motion: balance, walk
parallel bars, uneven bars, bar, rings => scene: gym; body part: hand, arm; motion: swing
pommel horse, vaulting horse => scene: gym; body part: hand, arm; motion: swing
trampoline => motion: bounce, jump; body part: leg
treadmill => motion: run; scene: gym
punching bag, speed bag => object: boxing glove; scene: gym; motion: punch; body part: fist
barbell, dumbbell, kettlebell, weight => scene: gym; body part: arm; motion: lift
jump rope => motion: jump; body part: leg
javelin, discus, shot put => scene: field; body part: arm; motion: throw
hurdle => scene: track; motion: jump
bow => object: arrow
dart => object: dartboard; motion: throw
sword, foil, epee, sabre => body part: hand, arm; motion: swing
skateboard, longboard => scene: skatepark; body part: foot; motion: ride
snowboard => scene: snow, ski slope; motion: ride
surfboard, bodyboard => scene: wave, sea; motion: surf
wakeboard, paddleboard, kiteboard => scene: water; motion: ride
ice skate => scene: ice rink; motion: skate
roller skate, rollerblade => motion: skate; body part: foot
bike, mountain bike, bmx, unicycle, tricycle => body part: leg; motion: ride, pedal
motorcycle, dirt bike, scooter, segway, hoverboard, quad bike => scene: road; motion: ride
car, truck, bus, van, taxi, tractor, go-kart => motion: drive
horse, pony, mule, donkey, camel => object: saddle, rein; motion: ride
elephant => motion: ride
mechanical bull => body part: hand; motion: ride
boat, rowboat, sailboat, yacht, ship, gondola => scene: water
kayak, canoe, raft => object: paddle; scene: river
jet ski => scene: sea; motion: ride
snowmobile, sled, toboggan, bobsled, snowshoe => scene: snow
parachute, paraglider, hang glider, glider, hot air balloon, airplane, helicopter => scene: sky
dog, sled dog => object: leash
cat, rabbit, hamster => body part: hand
computer, laptop => object: keyboard, screen; motion: type
phone => body part: hand; motion: text
remote control, controller, joystick => body part: hand, thumb; motion: press
camera => motion: film
book, newspaper, magazine => body part: eye; motion: read
pen, pencil, marker, chalk, crayon => body part: hand; motion: write
paintbrush, paint roller, spray paint => motion: paint
whiteboard, blackboard => object: marker
needle => object: thread
toothbrush => body part: teeth
teeth => object: toothbrush; body part: mouth
comb, hairbrush, hair dryer, curling iron, hair straightener => body part: hair
razor, shaver, shaving cream => body part: face
lipstick => body part: lip
eye makeup, mascara, eyeliner, eyebrow pencil => body part: eye
makeup => body part: face; object: brush
nail polish, nail file, nail clipper => body part: fingernail
cigarette, cigar, pipe, hookah, vape => body part: mouth; object: smoke
candle => object: fire
balloon, bubble => body part: mouth
beer, wine, cocktail, juice, soda, tea, coffee => object: glass, cup
vacuum cleaner => scene: floor
washing machine => object: laundry
laundry, clothes => motion: fold, wash
broom => scene: floor; motion: sweep
lawn mower => scene: lawn; motion: mow
shovel => scene: ground; motion: dig
axe, hatchet => object: wood; motion: chop
saw, chainsaw => object: wood; motion: cut
drill, screwdriver => object: screw
welding torch => object: welding mask, metal
fishing rod => object: fishing line; scene: water
gas pump => object: car, nozzle
tire, wheel => object: car jack; body part: hand
christmas tree => object: ornament
present, wrapping paper => object: ribbon; body part: hand
tattoo => object: tattoo machine; body part: arm, skin
snowman => scene: snow; motion: roll
golf => object: golf club, golf ball; scene: golf course; motion: swing
tennis => object: tennis racket, tennis ball; scene: tennis court; motion: swing
table tennis => object: paddle, ping pong ball, table; motion: hit
badminton => object: badminton racket, shuttlecock; scene: badminton court; motion: hit
squash, racquetball => object: racket, ball; scene: squash court; motion: hit
american football => object: american football; scene: football field; motion: throw, catch
soccer, football (activity) => object: soccer ball; scene: soccer field; motion: kick
rugby => object: rugby ball; scene: field; motion: run, tackle
cricket => object: cricket bat, cricket ball; scene: cricket pitch; motion: bowl, bat
hockey => object: hockey stick, puck; scene: ice rink; motion: skate
field hockey => object: hockey stick, ball; scene: field; motion: hit
lacrosse => object: lacrosse stick, ball; scene: field; motion: throw, catch
hurling => object: hurley, ball; scene: field; motion: hit
polo => object: horse, mallet; scene: field; motion: ride
water polo => object: ball; scene: swimming pool; motion: swim, throw
handball, dodgeball => object: ball; motion: throw, dodge
kickball => object: ball; scene: field; motion: kick
bowling => object: bowling ball, bowling pin; scene: bowling alley; motion: roll
billiards => object: cue, billiard ball; motion: aim, hit
darts => object: dart, dartboard; motion: throw
archery => object: bow, arrow, target; motion: shoot, aim
fencing => object: sword, fencing mask; motion: lunge
boxing, kickboxing => object: boxing glove; scene: boxing ring; motion: punch; body part: fist
wrestling, sumo, judo => object: mat; motion: grapple; body part: arm
karate, taekwondo, kung fu, martial arts => motion: kick, punch; scene: dojo
capoeira => motion: kick, spin, cartwheel; body part: leg
tai chi => motion: stretch, balance; body part: arm, leg; scene: park
yoga, pilates => object: yoga mat; motion: stretch, balance
aerobics, zumba => motion: jump, dance; scene: gym
gymnastics, floor gymnastics, acrobatics => object: mat; scene: gym; motion: flip, tumble
cheerleading => object: pom-pom; motion: jump, cheer
ballet => scene: stage; motion: dance, spin
salsa, tango, swing dance, ballroom dance, belly dance, line dance, hip hop, breakdance, krump, robot dance,
    charleston, macarena, gangnam style, jumpstyle, tap dance => motion: dance; body part: leg, foot
ice dancing => object: ice skate; scene: ice rink; motion: skate, spin
parkour => object: wall; scene: street; motion: jump, climb, run
skateboarding => object: skateboard; scene: skatepark
snowboarding => object: snowboard; scene: snow, ski slope
skiing, slalom, cross country skiing => object: ski, ski pole; scene: snow, ski slope
water skiing => object: water ski; scene: lake; motion: ski
ski jumping => object: ski; scene: snow, ski slope; motion: jump, fly
surfing => object: surfboard; scene: wave, sea
windsurfing => object: sail, surfboard; scene: sea
kitesurfing, snowkiting => object: kite, kiteboard; scene: sea
sailing => object: sailboat, sail; scene: sea
parasailing => object: parachute, boat; scene: sea, sky
rowing => object: oar, rowboat; scene: river
canoeing => object: canoe, paddle; scene: river
kayaking => object: kayak, paddle; scene: river
rafting => object: raft, paddle; scene: river
scuba diving => object: oxygen tank, diving mask; scene: underwater, sea; motion: swim
snorkeling => object: snorkel, diving mask; scene: sea; motion: swim
skydiving => object: parachute; scene: sky; motion: fall
paragliding => object: paraglider; scene: sky; motion: fly
hang gliding => object: hang glider; scene: sky; motion: fly
bungee jumping => object: bungee cord; scene: bridge; motion: jump, fall
rock climbing, bouldering => object: rope, harness, climbing wall; scene: cliff; body part: hand
ice climbing => object: ice axe, rope; scene: ice, glacier
abseiling => object: rope, harness; scene: cliff
hiking => object: backpack; scene: trail, mountain
camping => object: tent, campfire; scene: campsite
fishing => object: fishing rod, fishing line; scene: lake
ice fishing => object: fishing rod; scene: ice, frozen lake
hunting => object: bow, gun; scene: forest
horse riding => object: horse, saddle; motion: ride
horse race => object: horse; scene: race track; motion: ride, race
cycling, mountain biking => object: bike, helmet; scene: road; motion: pedal
motocross => object: dirt bike, helmet; scene: dirt; motion: ride
marathon, triathlon, relay race, sack race => scene: road, track; motion: run
high jump => object: bar, mat; motion: run, jump
long jump => scene: sand pit; motion: run, jump
triple jump => scene: sand pit; motion: hop, jump
pole vault => object: pole, bar, mat; motion: run, vault
hurdles => object: hurdle; scene: track; motion: run, jump
hammer throw => object: hammer; scene: field; motion: spin, throw
javelin throw => object: javelin; scene: field; motion: run, throw
discus throw => object: discus; scene: field; motion: spin, throw
shot put => object: shot put; scene: field; motion: push, throw
weightlifting, powerlifting, bodybuilding, crossfit => object: barbell; scene: gym; motion: lift
calisthenics => object: bar; motion: pull-up, push-up
trampolining => object: trampoline; motion: bounce, flip
roller skating => object: roller skate; motion: skate
ice skating, speed skating => object: ice skate; scene: ice rink; motion: skate
bobsledding, luge => object: bobsled; scene: snow; motion: slide
sledding => object: sled; scene: snow; motion: slide
snowmobiling => object: snowmobile; scene: snow; motion: ride
jet skiing => object: jet ski; scene: sea; motion: ride
sled dog racing => object: sled dog, sled; scene: snow; motion: race
chess => object: chessboard, chess piece; motion: move
poker, cards => object: card, table; motion: deal, shuffle
monopoly, board game => object: board game, dice; motion: roll
video game => object: controller, screen; motion: press
hopscotch => object: chalk; scene: sidewalk; motion: hop, jump
rock paper scissors => body part: hand; motion: shake
hide and seek => motion: hide, seek, run
contact juggling => object: ball; body part: hand, arm; motion: roll
juggling => object: ball; body part: hand; motion: toss, catch
karaoke => object: microphone; motion: sing
busking => object: guitar; scene: street; motion: play
magic => object: card; body part: hand
origami => object: paper; motion: fold
pottery => object: clay, pottery wheel; body part: hand
bookbinding => object: book, paper, needle; motion: sew, glue
carpentry => object: wood, saw, hammer; scene: workshop
gardening => object: plant, shovel; scene: garden
cooking => object: pan, stove; scene: kitchen
baking => object: oven, dough; scene: kitchen
housework => object: broom, mop; motion: clean
haircut => object: scissors, comb; body part: hair; scene: barbershop; motion: cut
manicure => object: nail polish, nail file; body part: fingernail
sign language => body part: hand, finger
news => object: microphone, desk; scene: newsroom
weather forecast => object: weather map; scene: tv studio
parade => scene: street; object: crowd; motion: march
marching band => object: drum, trumpet; scene: street; motion: march, play
penalty => object: goal; motion: kick, shoot
field goal, free kick, corner kick => object: ball, goal; motion: kick
serve (activity), rally => object: racket, ball; motion: hit
touchdown => object: american football; scene: football field; motion: run
home run => object: baseball, baseball bat; motion: swing, run
trick shot, stunt => body part: body
breaststroke, backstroke, butterfly stroke, front crawl, freestyle swimming => scene: swimming pool, water; body part:
    arm, leg; motion: swim
disc golf => object: disc, basket; scene: park; motion: throw
beekeeping => object: beehive, bee; body part: hand
body weight => body part: body
trapeze => object: trapeze; scene: circus; motion: swing
slacklining, tightrope => object: slackline; motion: balance, walk
circus => scene: circus
pizza tossing => object: pizza, dough; motion: toss, spin
bartending => object: bottle, glass, cocktail; motion: pour, mix
auctioning => object: gavel; object: crowd; motion: talk
surgery, first aid => object: bandage; scene: hospital
arm wrestling => body part: arm, hand; object: table; motion: push
sword fighting => object: sword; motion: swing, block
tug of war => object: rope; motion: pull
limbo => object: pole; motion: bend
twister => object: mat; motion: stretch
jenga => object: block; motion: pull, stack
bingo, lottery => object: card, ticket
hula hooping => object: hula hoop; body part: waist, hip; motion: spin
beatboxing => object: microphone; body part: mouth
"""

# ----------------------------------------------------------------------------------------------------------------
# Grammar words. Function words are never units; particles and directions join the verb before them.
FUNCTION_WORDS = set("""a an the and or of in on at to into onto with without for from by as than so such not no nor
this that these those some any each every all both either neither his her their its my your our one two three him them
he she it they we you i me us who whom which what while when where then there is are was were be been being am has have
had does did very also just again still too only someone somebody something anything anyone everyone
everything nothing person people man men woman women guy lady sport sports game games thing things way time question
questions one's self himself herself themselves yourself through across along near under beside behind above below
within inside""".split())
DETERMINERS = set("a an the his her their its my your our some this that these those".split())
SCENE_PREPS = set("in at on inside into onto across through along near under beside behind above below within".split())
PARTICLES = set("up down out off over around away back left right forward forwards backward backwards sideways "
                "together apart along aside".split())
ADJECTIVES = set("""high low long short big small little large tiny huge old new young front side fast slow quick hard
soft heavy light red blue green yellow black white pink purple brown orange single double triple wet dry hot cold warm
full empty top bottom upper lower other another same different various several electric wooden metal plastic giant mini
real fake professional amateur competitive synchronized synchronised artistic rhythmic extreme freestyle free
traditional modern indoor outdoor""".split())
NOT_DENOMINAL = set("train tap duck dress ring present fly match watch box can pet bow stick tie plant sign".split())
LIGHT_VERBS = set("do get go have take use be let keep try".split())  # a motion only when nothing better is found
GENERIC_VERBS = set("play make practice perform start help".split())   # kept, but implied motions still fill in

# ----------------------------------------------------------------------------------------------------------------
# Lemmatiser: irregular table, then suffix rules whose candidates are checked against the lexicon vocabulary.
IRREGULAR = dict(pair.split(":") for pair in """ran:run swam:swim swum:swim threw:throw thrown:throw caught:catch
rode:ride ridden:ride drove:drive driven:drive ate:eat eaten:eat drank:drink drunk:drink fell:fall fallen:fall flew:fly
flown:fly went:go gone:go took:take taken:take gave:give given:give made:make did:do done:do got:get gotten:get sat:sit
stood:stand lay:lie lain:lie lying:lie tying:tie untying:untie dying:die wore:wear worn:wear tore:tear torn:tear
swung:swing sang:sing sung:sing spun:spin hung:hang dug:dig shot:shoot struck:strike stuck:stick held:hold led:lead
fed:feed built:build bent:bend slid:slide broke:break broken:break woke:wake woken:wake blew:blow blown:blow drew:draw
drawn:draw grew:grow grown:grow bitten:bite froze:freeze frozen:freeze shook:shake shaken:shake wove:weave woven:weave
wrote:write written:write spoke:speak spoken:speak fought:fight brought:bring taught:teach kept:keep slept:sleep
swept:sweep knelt:kneel lit:light paid:pay laid:lay sewn:sew teeth:tooth feet:foot geese:goose mice:mouse
children:child knives:knife leaves:leaf wolves:wolf shelves:shelf halves:half loaves:loaf calves:calf hooves:hoof
scarves:scarf lives:life wives:wife axes:axe oxen:ox cacti:cactus""".split())
NOT_ING = set("""ring king wing thing string spring swing sling sting bring cling fling wring ceiling evening
morning wedding pudding clothing bedding icing during nothing something anything everything awning herring viking
darling sibling dumpling earring lightning offspring seedling sapling duckling inkling shilling""".split())
INVARIANT = set("""clothes glasses sunglasses scissors pants trousers jeans shorts tongs pliers goggles binoculars
billiards darts news chess tennis series species dice abs biceps triceps nunchucks maracas bagpipes fries chips crisps
headphones always perhaps""".split())


def _word_list(text):
    return regex.findall(r"\p{L}+", text.lower())


_ALL_NAMES = [name.strip() for block in (BODY_PARTS, OBJECTS, SCENES, MOTIONS, ACTIVITIES)
              for name in regex.split(r"[,|\n]", block) if name.strip()]
VOCAB = {w for name in _ALL_NAMES for w in _word_list(name)} | set(IRREGULAR.values())


def _choose(candidates):
    """First candidate the lexicons know, else the first (the default rule)."""
    return next((c for c in candidates if c in VOCAB), candidates[0])


def _needs_e(stem):
    """Whether a stem that lost its -ing/-ed also lost a silent e ("mak" -> "make"), for words we do not know."""
    vowels = "aeiouy"
    if len(stem) < 2:
        return False
    if stem[-1] in "cvu" or stem.endswith(("dg", "rg", "ang", "ung")) or stem[-1] == "z" and stem[-2] in vowels:
        return True                                          # danc, div, argu, judg, chang, lung, sneez
    if stem[-1] == "s":
        return stem[-2] != "s" and not stem.endswith("us")
    if stem[-1] == "l" and stem[-2] not in vowels + "rwl":
        return True                                          # dribbl, juggl, cycl
    # a single vowel before a single final consonant in a one-syllable stem: the consonant would have been doubled
    # unless an e was dropped ("skat" -> "skate", but "skipp" -> "skip" is handled by undoubling)
    syllables = len(regex.findall(r"[aeiou]+|y(?![aeiou])", stem))
    return (syllables == 1 and stem[-1] not in vowels + "wxy" and stem[-2] in "aeiou"
            and (len(stem) == 2 or stem[-3] not in vowels))


def _verb_stem(stem):
    """Base form of the stem left by -ing/-ed."""
    if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiou":
        undoubled = stem[:-1]
        return _choose([stem, undoubled] if stem[-1] in "lsfz" else [undoubled, stem])
    for k in [0] + list(range(3, len(stem) - 2)):        # the whole stem, then the tail of a compound ("paraglid")
        tail = stem[k:]
        known = [c for c in (tail, tail + "e") if c in VOCAB]
        if len(known) == 1:
            return stem[:k] + known[0]
        if known:                                            # both known ("kit", "kite"): the spelling rule decides
            return stem + "e" if _needs_e(tail) else stem
    return stem + "e" if _needs_e(stem) else stem


def lemmatize(word):
    """Lemma of one lower-case word: "ran" -> "run", "swimming" -> "swim", "dribbling" -> "dribble", "knives" ->
    "knife". Suffix rules propose candidates; the lexicon vocabulary picks among them; unknown words get the rule."""
    w = word.lower()
    if w in IRREGULAR:
        return IRREGULAR[w]
    if len(w) <= 3 or w in INVARIANT or w.endswith(("ss", "us", "is", "ics", "ous")):
        return w
    if w.endswith("ing") and len(w) > 4 and w not in NOT_ING:
        stem = w[:-3]
        return stem if stem.endswith(("y", "ee", "oe", "ye")) else _verb_stem(stem)
    if w.endswith("ed") and not w.endswith("eed") and len(w) > 4:
        stem = w[:-3] + "y" if w.endswith("ied") else _verb_stem(w[:-2])
        return stem if stem in VOCAB else w                  # -ed only when the verb is known ("bobsled" stays)
    if w.endswith("s"):
        if w.endswith("ies"):
            return _choose([w[:-1], w[:-3] + "y"] if len(w) <= 4 else [w[:-3] + "y", w[:-1]])
        if w.endswith("ves"):
            return _choose([w[:-1], w[:-3] + "f", w[:-3] + "fe"])      # gloves, knives, halves
        if w.endswith("es") and w[:-2].endswith(("s", "sh", "ch", "x", "z", "o")):
            return _choose([w[:-2], w[:-1]])
        return w[:-1]
    return w


# ----------------------------------------------------------------------------------------------------------------
# The lexicon as one lookup table: key (tuple of lemmas, or of surface words) -> [(kind, unit text), ...].

def _parse_units(text):
    """'body part: leg, foot; object: ball' -> [("body part", "leg"), ("body part", "foot"), ("object", "ball")]"""
    units = []
    for part in text.split(";"):
        kind, _, names = part.partition(":")
        units += [(kind.strip(), n.strip()) for n in names.split(",") if n.strip()]
    return units


def _keys(name, surface=False):
    words = _word_list(name)
    forms = words if surface else [lemmatize(w) for w in words]
    keys = [tuple(forms)]
    if len(words) > 1:                                       # "push up" is also written "pushup"
        joined = "".join(words)
        keys.append((joined if surface else lemmatize(joined),))
    return keys


LEXICON = {}
for _kind, _block in (("body part", BODY_PARTS), ("object", OBJECTS), ("scene", SCENES), ("motion", MOTIONS),
                      ("activity", ACTIVITIES)):
    for _item in regex.split(r",\s*", _block.strip()):
        _names = [" ".join(n.split()) for n in _item.split("|") if n.strip()]
        for _name in _names:
            # an activity in -ing is matched as written: "fencing" must not fire on "fence", "mountain biking" on
            # "mountain bike"
            _surface = [True] if _kind == "activity" and _name.endswith("ing") else [True, False]
            for _key in {k for s in _surface for k in _keys(_name, s)}:
                if (_kind, _names[0]) not in LEXICON.setdefault(_key, []):
                    LEXICON[_key].append((_kind, _names[0]))
MAX_WORDS = max(len(k) for k in LEXICON)
IMPLIED = {}              # (kind or None, unit text) -> [(kind, unit text)]; "fish (motion)" applies to the verb only
for _line in regex.sub(r"\n\s+", " ", COMMONSENSE).strip().splitlines():   # indented lines continue
    _keys_text, _, _units_text = _line.partition("=>")
    for _key in _keys_text.split(","):
        _name, _, _qualifier = _key.strip().rstrip(")").partition(" (")
        IMPLIED.setdefault((_qualifier or None, _name), []).extend(_parse_units(_units_text))
MOTION_WORDS = {t for entries in LEXICON.values() for k, t in entries if k == "motion"}


# ----------------------------------------------------------------------------------------------------------------
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

    @property
    def kinds(self):
        return {kind for kind, _ in self.entries}

    @property
    def function(self):    # punctuation or a grammar word: never a unit
        return not self.words[0][0].isalpha() or (len(self.words) == 1 and self.words[0] in FUNCTION_WORDS)

    @property
    def gerund(self):
        last = self.words[-1]
        return last.endswith("ing") and len(last) > 4 and last not in NOT_ING and not self.in_parens

    @property
    def unknown(self):
        return not self.entries and not self.function and self.words[0] not in ADJECTIVES | PARTICLES


def _spans(tokens):
    lemmas = [lemmatize(t) if t[0].isalpha() else t for t in tokens]
    spans, i, in_parens = [], 0, False
    while i < len(tokens):
        in_parens = (in_parens or tokens[i] == "(") and tokens[i] != ")"
        for n in range(min(MAX_WORDS, len(tokens) - i), 0, -1):      # longest match first
            words = tokens[i:i + n]
            if n > 1 and not all(w[0].isalpha() for w in words):
                continue
            keys = [tuple(lemmas[i:i + n]), tuple(words)]
            entries = list(dict.fromkeys(e for k in keys for e in LEXICON.get(k, ())))
            if n > 1 and not entries and not _verb_and_noun(words, lemmas[i:i + n]):
                joined = "".join(words)                      # "sky diving" = "skydiving", but "kick ball" is not
                entries = list(dict.fromkeys(e for k in [(joined,), (lemmatize(joined),)] for e in LEXICON.get(k, ())))
            if words[0] in FUNCTION_WORDS and n == 1:
                entries = []
            if entries or n == 1:
                break
        spans.append(_Span(words, lemmas[i:i + n], entries, in_parens))
        i += n
    return spans


def _verb_and_noun(words, lemmas):
    """Whether two words read as a verb phrase ("kick ball"), which must not be joined into one word ("kickball")."""
    first, second = (LEXICON.get((lemma,), []) for lemma in lemmas[-2:])
    return (len(words) == 2 and words[0] == lemmas[0] and ("motion", lemmas[0]) in first and words[1] == lemmas[1]
            and any(k in KINDS[:3] for k, _ in second) and not any(k == "motion" for k, _ in second))


def _head(spans):
    """Index of the head verb of a label: first gerund, else a known verb, else an unknown word in verb position."""
    content = [i for i, s in enumerate(spans) if not s.function and not s.in_parens]
    for test in (lambda s: s.gerund, lambda s: s.kinds == {"motion"}, lambda s: "motion" in s.kinds):
        found = [i for i in content if test(spans[i])]
        if found:
            return found[0]
    ends = [i for i in content[:1] + content[-1:] if spans[i].unknown]
    return ends[0] if ends else None


def _implied(kind, unit):
    return IMPLIED.get((kind, unit), []) + IMPLIED.get((None, unit), [])


def _read(text, is_name=True):
    """Units of one text: (explicit, implied, light verbs); implied entries are (kind, text, weak) where weak ones
    (a motion's usual place: swim -> swimming pool) apply only when the class names no other place."""
    spans = _spans(tokenize_words(text))
    units, implied, light, gerund_activities = [], [], [], []

    def add(kind, unit):
        if (kind, unit) not in units:
            units.append((kind, unit))
        implied.extend((k, t, kind == "motion" and k == "scene") for k, t in _implied(kind, unit))

    head = _head(spans) if is_name else None
    verbal = {i for i, s in enumerate(spans) if s.gerund or i == head}
    if not is_name:        # descriptions: verbs are gerunds, unambiguous verbs, or known verbs after a subject / "to"
        verbal |= {i for i, s in enumerate(spans) if s.kinds == {"motion"} or (
            "motion" in s.kinds and i > 0 and spans[i - 1].function and spans[i - 1].words[0] not in DETERMINERS)}
    prep, in_slot, pending = None, False, []        # pending: unknown words, the object (or place) of a pattern

    def flush(noun=None):
        """Unknown words become one unit: a scene after "in/at/on", else an object; before a noun they modify it."""
        if noun:
            words = [p.words[0] for p in pending]
            add(noun[0], " ".join(words + [noun[1]]) if noun[0] == "object" else noun[1])
        elif pending:
            add("scene" if prep in SCENE_PREPS else "object",
                " ".join([p.words[0] for p in pending[:-1]] + [pending[-1].lemmas[0]]))
        pending.clear()

    for i, s in enumerate(spans):
        word = s.words[0]
        if s.function or (word in PARTICLES and not s.entries):
            flush()
            if word in SCENE_PREPS or word in ("with", "for", "of", "to", "from", "by"):
                prep, in_slot = word, False
            elif not word[0].isalpha() or word in ("and", "or"):
                prep, in_slot = None, False
            continue
        activities = [t for k, t in s.entries if k == "activity"]
        if i in verbal:
            flush()
            joined = lemmatize("".join(s.words))                        # "paddle boarding" -> "paddleboard"
            verb = next((t for k, t in s.entries if k == "motion"),
                        joined if len(s.words) > 1 and any(" " not in t for _, t in LEXICON.get((joined,), ()))
                        else s.lemmas[-1])
            if verb in LIGHT_VERBS:
                light.append(("motion", verb))
            elif not activities or verb in MOTION_WORDS:   # "hula hooping": the activity knows better than "hoop"
                add("motion", verb)
                after = spans[i + 1:i + 3] + [None, None]
                if (after[0] and after[0].words[0] in PARTICLES and not after[0].entries
                        and not (after[1] and after[1].words[0] in DETERMINERS)):
                    add("motion", f"{verb} {after[0].words[0]}")        # "walk left", "stand up"; not "hike up a hill"
            if not activities:                                          # "kayaking" names the kayak
                for kind, unit in s.entries:
                    if kind == "object" and unit not in NOT_DENOMINAL:
                        add(kind, unit)
            gerund_activities += activities
            prep, in_slot = None, True
            continue
        for unit in activities:
            implied.extend((k, t, False) for k, t in _implied("activity", unit))
        if s.in_parens and s.words[-1].endswith("ing"):                 # "(boxing)" qualifies: the activity only
            continue
        nouns = [(k, t) for k, t in s.entries if k in KINDS[:3]]
        if nouns:
            order = ("scene", "object", "body part") if prep in SCENE_PREPS else ("object", "body part", "scene")
            flush(min(nouns, key=lambda e: order.index(e[0])))
        elif s.kinds == {"motion"}:
            flush()
            add("motion", s.entries[0][1])
        elif s.unknown:
            before_head = head is not None and i < head and spans[head].gerund
            if in_slot or prep in SCENE_PREPS or prep == "with" or before_head:
                pending.append(s)
    flush()
    if not any(k == "activity" for s in spans if not s.gerund for k, _ in s.entries):
        for unit in gerund_activities:                                   # "cricket bowling" is cricket, not bowling
            implied.extend((k, t, False) for k, t in _implied("activity", unit))
    return units, implied, light


def _class_key(name):
    """Descriptions may spell a class differently: "YoYo", "yo-yo" and "yoyo" are the same class."""
    return "".join(regex.findall(r"\p{L}+|\p{N}+", normalize_class_name(name)))


def extract_semantic_units(class_names, descriptions=None):
    """The SU bank of an action set: every class gets its units from its name (and descriptions, when given)."""
    descriptions = descriptions or {}
    by_name = {_class_key(c): c for c in class_names}
    texts = {c: [] for c in class_names}
    for key, value in descriptions.items():
        name = by_name.get(_class_key(key))
        if name is None:
            warnings.warn(f"descriptions: class {key!r} is not in the label set; ignored", stacklevel=2)
            continue
        texts[name] += [value] if isinstance(value, str) else list(value)
    per_class = []
    for name in class_names:
        units, implied, light = _read(name)
        for text in texts[name]:
            more = _read(text, is_name=False)
            units += [u for u in more[0] if u not in units]
            implied += more[1]
        per_class.append(_complete(name, units, implied, light))
    bank = sorted({u for units in per_class for u in units}, key=lambda u: (KINDS.index(u[0]), u[1]))
    index = {u: i for i, u in enumerate(bank)}
    return SemanticUnits(units=[SemanticUnit(text=t, kind=k) for k, t in bank],
                         by_class=[sorted(index[u] for u in units) for units in per_class])


def _complete(name, units, implied, light):
    """Add implied units. Implied motions fill in only when the text names no specific motion ("playing golf" ->
    swing, but "golf putting" stays putt); light verbs ("doing", "getting") count only when nothing else does."""
    specific = any(k == "motion" and t.split()[0] not in GENERIC_VERBS for k, t in units)
    strong = [(k, t) for k, t, weak in implied if not weak]
    named = {k for k, _ in units + strong}
    for kind, unit, weak in implied:
        if (kind, unit) not in units and not (kind == "motion" and specific) and not (weak and kind in named):
            units.append((kind, unit))
            if kind == "motion":                           # a filled-in motion brings its body parts (golf -> arm)
                units += [u for u in _implied("motion", unit) if u[0] == "body part" and u not in units]
    if not any(k == "motion" for k, _ in units):
        # our reading: a label without any verb names its action by a noun ("cartwheel"); use the noun as the motion
        words = [w for w in tokenize_words(name) if w[0].isalpha() and w not in FUNCTION_WORDS]
        units.append(light[0] if light else ("motion", lemmatize(words[-1]) if words else "move"))
    if all(k == "motion" for k, _ in units):
        units.append(("body part", "body"))                # our reading: every action involves the body
    return units


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
    args = parser.parse_args(argv)
    if not args.labels.is_file():
        parser.error(f"labels file not found: {args.labels}")
    class_names = [line.strip() for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        descriptions = load_descriptions(args.descriptions) if args.descriptions else None
    except (OSError, ValueError) as e:
        parser.error(str(e))
    bank = extract_semantic_units(class_names, descriptions)
    print(f"{len(class_names)} classes, {len(bank.units)} semantic units")
    for kind in KINDS:
        print(f"  {kind:9s} {sum(u.kind == kind for u in bank.units):5d}")
    for c, name in enumerate(class_names):
        units = bank.of_class(c)
        cells = [f"{k}: " + ", ".join(u.text for u in units if u.kind == k) for k in KINDS
                 if any(u.kind == k for u in units)]
        print(f"{name:40s} | " + " | ".join(cells))
    if args.json:
        args.json.write_text(json.dumps({
            "units": [{"text": u.text, "kind": u.kind} for u in bank.units],
            "classes": [{"name": n, "units": idx} for n, idx in zip(class_names, bank.by_class)]}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
