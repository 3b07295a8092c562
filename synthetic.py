"""The embedded default's data: stick-figure videos rendered with numpy and written as H.264 mp4 through PyAV.

Not part of the paper: a stand-in for Kinetics that a CPU trains on in minutes. The clips are real video files
with list files (the "list" layout of data.py), so they go through exactly the reading code real data takes.
Class names combine units of the four SU kinds: body parts (arms, legs), motions, objects (ball, chair, flag) and
scenes (park, beach, room, street). Two pairs differ only by frame order (sitting down / standing up) and only by a
small hand-held object (waving arms / waving a flag).

In:  make_synthetic(root, num_classes=10, ..., pairs=None): a folder to fill (skipped when it holds a set with these
     settings; refused unless it is missing, empty or a set made here: check_root); pairs: the (motion, scene) pairs
     to render instead of the first num_classes default classes (the world: WORLD_PAIRS, every motion in every scene).
Out: root/videos/<class>/{train,val}_<k>.mp4 ((T, S, S) frames, T = 28..36, S = 128, 16 fps), train.txt, val.txt,
     labels.txt and synthetic.json (the settings; written last, so a set is complete only when it is there).
     synthetic_class_names(n) -> the first n class names; write_video(path, frames (T, H, W, 3) uint8).
     split_pairs(fold, kind) -> (base, novel) pairs of the world; protocol_class_names(classes, fold, kind) -> the
     class names of a base-to-novel protocol (DESIGN.md, "Protocols on the synthetic world").
     `python synthetic.py --preview docs/synthetic.png`: a picture of the classes (preview), a row of frames each.
"""
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

try:
    import fcntl   # POSIX: the lock that lets one of several DDP ranks render while the others wait
except ImportError:
    fcntl = None

import av
import numpy as np

import pictures
import runtime

# Each scene holds two or three of the default classes and one motion (bouncing a ball) happens in two scenes, so
# neither the scene alone nor the motion alone names the class.

MOTIONS = {   # motion key -> the phrase an action name uses; every motion can be rendered in every scene
    "walk": "walking", "sit_down": "sitting down on a chair", "stand_up": "standing up from a chair",
    "wave": "waving arms", "wave_flag": "waving a flag", "kick": "kicking a ball with one leg",
    "throw": "throwing a ball", "jump": "jumping with both legs", "bounce": "bouncing a ball",
}
SCENES = {"park": "in the park", "beach": "on the beach", "room": "in the room", "street": "in the street"}


def class_name(motion, scene):
    """The action name of a motion in a scene: "kicking a ball with one leg" + "on the beach"."""
    return f"{MOTIONS[motion]} {SCENES[scene]}"


DEFAULT_PAIRS = (   # (motion, scene) of the classes; the first `num_classes` are used (default 10)
    ("walk", "park"), ("sit_down", "room"), ("wave", "beach"), ("kick", "park"), ("throw", "beach"),
    ("jump", "street"), ("bounce", "room"), ("bounce", "street"),
    # standing up is sitting down played backwards: only frame order tells them apart (mean pooling cannot)
    ("stand_up", "room"),
    # waving a flag is waving arms with a small flag in the front hand: only that object tells them apart
    ("wave_flag", "beach"),
    # beyond the default 10
    ("wave", "street"), ("kick", "beach"), ("jump", "park"),
)
CLASSES = tuple((class_name(motion, scene), motion, scene) for motion, scene in DEFAULT_PAIRS)   # (name, motion, scene)

# The world of the base-to-novel protocols: every motion in every scene (9 x 4 = 36 classes), rendered into a folder
# of its own (the default set above stays as it is), 32 training and 8 val clips a class.
WORLD_PAIRS = tuple((motion, scene) for motion in MOTIONS for scene in SCENES)
WORLD_ROOT = "data/synthetic_world"
WORLD_VIDEOS_PER_CLASS = 40
SPLIT_KINDS = ("compositional", "random")
RANDOM_SPLIT_SEED = 0   # the random control's draw: one fixed split, as the compositional one is fixed


def split_pairs(fold=1, kind="compositional"):
    """(base, novel): the world's pairs in two halves of 18, each in WORLD_PAIRS order; fold 2 swaps the halves.
    compositional (as Something-Else's compositional split): motion i is base in scenes i and i+1 (mod 4) and novel
    in the other two, so in either fold every motion is in exactly 2 base classes and every scene in 4 or 5, and
    every novel class is a pair of a seen motion and a seen scene never trained together. random (the control):
    18 pairs drawn at random, which may leave a motion or a scene out of base altogether."""
    if fold not in (1, 2) or kind not in SPLIT_KINDS:
        raise ValueError(f"split_pairs: fold {fold!r} (1 or 2), kind {kind!r} (one of {', '.join(SPLIT_KINDS)})")
    scenes = list(SCENES)
    if kind == "compositional":
        first = [(motion, scenes[(i + j) % len(scenes)]) for i, motion in enumerate(MOTIONS) for j in (0, 1)]
    else:
        drawn = np.random.default_rng(RANDOM_SPLIT_SEED).permutation(len(WORLD_PAIRS))[:len(WORLD_PAIRS) // 2]
        first = [WORLD_PAIRS[k] for k in drawn]
    first = [pair for pair in WORLD_PAIRS if pair in set(first)]
    second = [pair for pair in WORLD_PAIRS if pair not in set(first)]
    return (first, second) if fold == 1 else (second, first)


def protocol_class_names(classes, fold=1, kind="compositional"):
    """The class names of `classes` ("base" or "novel") of split_pairs(fold, kind); None for "all" (every class of
    the data root)."""
    if classes == "all":
        return None
    if classes not in ("base", "novel"):
        raise ValueError(f"--classes {classes!r}: one of all, base, novel")
    base, novel = split_pairs(fold, kind)
    return [class_name(motion, scene) for motion, scene in (base if classes == "base" else novel)]

# What one frame shows, for the captions of the miniature CLIP's pretraining (pretrain.py). The names of the four SU
# kinds: body parts and their state (POSES), objects (ball, flag, chair) and where they are, scenes, and colours.
POSES = {   # pose key -> phrasings (the first is the one zero-shot tests use); _pose says which frame shows which
    "standing": ("standing with arms down", "standing straight", "standing still"),
    "arms_up": ("with both arms up", "raising both arms", "waving both arms over the head"),
    "arm_up": ("with one arm raised over the head", "raising one arm high", "throwing with one arm up"),
    "arm_forward": ("with one arm reaching forward", "holding one arm out in front", "reaching down with one hand"),
    "leg_up": ("with one leg raised", "raising one leg", "kicking with one leg up"),
    "stride": ("with legs apart", "stepping with legs apart", "in a long stride"),
    "crouch": ("with knees bent", "crouching with bent knees", "bending both knees"),
    "air": ("in the air", "jumping off the ground", "with both feet off the ground"),
    "sitting": ("sitting", "sitting on a seat", "seated with bent legs"),
}
MOTION_WORDS = {   # motion key -> what a caption of one frame may say the person is doing
    "walk": ("walking", "walking along"), "sit_down": ("sitting down", "sitting down on a chair"),
    "stand_up": ("standing up", "standing up from a chair"), "wave": ("waving arms", "waving both arms"),
    "wave_flag": ("waving a flag", "waving a flag in the air"), "kick": ("kicking a ball", "kicking"),
    "throw": ("throwing a ball", "throwing"), "jump": ("jumping", "jumping up and down"),
    "bounce": ("bouncing a ball", "bouncing a ball on the ground"),
}
# one frame of sitting down is one of standing up: a caption naming the other motion is neither true nor false of it
SAME_FRAMES = {"sit_down": "stand_up", "stand_up": "sit_down"}
FIGURE_COLOURS = {"black": (25, 25, 25), "red": (190, 30, 30), "blue": (30, 40, 170), "white": (245, 245, 245)}
BALL_COLOURS = {"orange": (230, 60, 20), "yellow": (250, 220, 30), "white": (240, 240, 240)}
FLAG_COLOURS = {"green": (40, 200, 60), "pink": (240, 40, 200), "orange": (250, 150, 0)}
BALL_PLACES = {"hand": ("in the hand", "held in the hand"), "air": ("in the air", "flying through the air"),
               "ground": ("on the ground", "lying on the ground")}
SCENE_WORDS = {"park": ("the park", "a park with grass and a tree"), "beach": ("the beach", "a beach by the sea"),
               "room": ("the room", "a room with a window"), "street": ("the street", "a street with buildings")}
CROP_SCALE = (0.7, 1.0)   # our choice: a crop of 40% of the area could cut the figure out
# our choice: no colour jitter, as the renderer already draws each clip in its own colours and noise; on this set
# jitter and grayscale would double the time it takes to load a training clip
COLOUR = False
VERSION = 6   # bump when the renderer changes, so cached sets are regenerated


def synthetic_class_names(num_classes=10):
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes {num_classes}: the synthetic set has 1..{len(CLASSES)} classes")
    return [name for name, _, _ in CLASSES[:num_classes]]


def _jitter(color, rng, amount=18):
    return np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0, 255)


def _scene(kind, size, rng):
    """Background (size, size, 3) float32 and the y of the ground line. Scenes differ in layout and texture, not
    only colour, so they survive colour jitter and grayscale."""
    image = np.empty((size, size, 3), np.float32)
    y = np.arange(size)[:, None]
    x = np.arange(size)[None, :]
    if kind == "park":      # sky, mown grass in stripes, a tree
        horizon = int(size * rng.uniform(0.38, 0.48))
        image[:] = _jitter((125, 185, 235), rng)
        grass = _jitter((70, 150, 60), rng)
        image[horizon:] = grass
        image[horizon:][((y[horizon:] // max(2, size // 16)) % 2 == 0)[:, 0]] = grass * 0.8
        tree_x = int(rng.uniform(0.1, 0.9) * size)
        image[int(horizon * 0.6):horizon + 2, tree_x - size // 40 - 1:tree_x + size // 40 + 1] = (100, 70, 40)
        image[(y - horizon * 0.5) ** 2 + (x - tree_x) ** 2 < (size * 0.1) ** 2] = _jitter((40, 110, 40), rng)
    elif kind == "beach":   # sky, sea with wave lines, dotted sand
        sea, sand = int(size * rng.uniform(0.28, 0.34)), int(size * rng.uniform(0.48, 0.55))
        image[:] = _jitter((160, 205, 240), rng)
        image[sea:sand] = _jitter((40, 100, 185), rng)
        waves = (sea < y) & (y < sand) & (((y - sea) % max(3, size // 20)) == 0) & ((x // 6) % 3 != 0)
        image[waves] = (235, 240, 250)
        image[sand:] = _jitter((225, 205, 150), rng)
        image[(y >= sand) & ((x * 7 + y * 13) % 23 == 0)] = (150, 130, 90)
    elif kind == "room":    # striped wallpaper, a window, wooden floor planks
        floor = int(size * rng.uniform(0.6, 0.68))
        wall = _jitter((205, 190, 165), rng)
        image[:] = wall
        image[:, (x[0] // max(3, size // 12)) % 2 == 0] = wall * 0.88
        wx, wy, ww = int(rng.uniform(0.1, 0.6) * size), int(size * 0.12), int(size * 0.3)
        image[wy:wy + ww, wx:wx + ww] = (90, 90, 90)
        image[wy + 2:wy + ww - 2, wx + 2:wx + ww - 2] = _jitter((170, 215, 245), rng)
        image[wy + ww // 2 - 1:wy + ww // 2 + 1, wx:wx + ww] = (90, 90, 90)
        image[wy:wy + ww, wx + ww // 2 - 1:wx + ww // 2 + 1] = (90, 90, 90)
        image[floor:] = _jitter((140, 95, 60), rng)
        image[floor:][(((y[floor:] - floor) % max(3, size // 14)) == 0)[:, 0]] = (95, 60, 35)
    else:                   # street: buildings with lit windows, asphalt with a dashed lane line
        road = int(size * rng.uniform(0.55, 0.62))
        image[:] = _jitter((185, 185, 195), rng)
        image[int(size * 0.1):road] = _jitter((95, 80, 80), rng)
        lit = (y > size * 0.14) & (y < road - 4) & (y % 10 < 5) & (x % 9 < 4)
        image[lit] = _jitter((240, 215, 110), rng)
        image[road:] = _jitter((75, 75, 80), rng)
        lane = int((road + size) / 2)
        image[lane - 1:lane + 1, ((x[0] // 10) % 2) == 0] = (240, 240, 240)
    ground = size * rng.uniform(0.84, 0.92)
    return image, ground


def _draw_segments(image, segments, color):
    """Draws thick lines (x0, y0, x1, y1, radius) in one colour; a segment with equal ends is a disk. Works on the
    bounding box of all of them at once, which is what keeps rendering fast."""
    segments = np.asarray(segments, np.float32)                                  # (K, 5)
    x0s, y0s, x1s, y1s, radii = segments.T
    size, pad = image.shape[0], radii.max() + 1
    left, right = max(0, int(min(x0s.min(), x1s.min()) - pad)), min(size, int(max(x0s.max(), x1s.max()) + pad) + 1)
    top, bottom = max(0, int(min(y0s.min(), y1s.min()) - pad)), min(size, int(max(y0s.max(), y1s.max()) + pad) + 1)
    if left >= right or top >= bottom:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)                # (h, w) each
    x0s, y0s, radii = x0s[:, None, None], y0s[:, None, None], radii[:, None, None]
    dx, dy = x1s[:, None, None] - x0s, y1s[:, None, None] - y0s                  # (K, 1, 1)
    t = np.clip(((xs - x0s) * dx + (ys - y0s) * dy) / np.maximum(dx * dx + dy * dy, 1e-6), 0, 1)   # (K, h, w)
    inside = ((xs - x0s - t * dx) ** 2 + (ys - y0s - t * dy) ** 2 <= radii ** 2).any(0)          # (h, w)
    image[top:bottom, left:right][inside] = color


def _smooth(u):
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


def _pose(motion, u, p):
    """Figure pose at clip time u in [0, 1]: (hip x, hip y, lean, arms, legs, ball or None, pose key or None).
    Angles in radians from straight down, positive = towards where the figure faces; arms and legs are
    ((upper, lower), (upper, lower)), absolute angles. Sizes come from p (per-clip parameters). The pose key (one
    of POSES) names what one frame shows of the body; None while it is between two such states (a caption then
    says nothing of the pose, rather than something half true)."""
    thigh, shin, ground, x = p["thigh"], p["shin"], p["ground"], p["x"]
    stand = ground - thigh - shin
    arms, legs, lean, ball = ((0.15, 0.3), (-0.15, 0.1)), ((0.12, 0.05), (-0.12, -0.15)), 0.05, None
    pose = "standing"
    if motion == "walk":
        phase = 2 * math.pi * p["cycles"] * u + p["phase"]
        swing = 0.55 * math.sin(phase)
        legs = ((swing, swing - 0.5 * max(0.0, -math.cos(phase))), (-swing, -swing - 0.5 * max(0.0, math.cos(phase))))
        arms = ((-0.8 * swing, -0.8 * swing + 0.35), (0.8 * swing, 0.8 * swing + 0.35))
        x, lean = x + p["facing"] * p["travel"] * (u - 0.5), 0.22
        stand += 1.5 * abs(math.sin(phase))
        pose = "stride" if abs(swing) > 0.3 else None
    elif motion in ("sit_down", "stand_up"):
        s = _smooth((u - p["onset"]) / p["duration"])
        s = s if motion == "sit_down" else 1 - s     # standing up is sitting down with time reversed
        angle = s * math.pi / 2                      # thighs rotate to horizontal, feet stay put
        x -= p["facing"] * thigh * math.sin(angle)
        stand = ground - shin - thigh * math.cos(angle)
        legs = ((angle, 0.0), (angle - 0.08, -0.08))
        lean = 0.05 + 0.6 * math.sin(math.pi * s)
        reach = math.sin(math.pi * s)              # arms go forward for balance, then rest on the knees
        arms = ((0.3 + 0.7 * reach, 0.8 + 0.6 * s), (0.2 + 0.6 * reach, 0.7 + 0.6 * s))
        pose = "standing" if s < 0.03 else "sitting" if s > 0.92 else "crouch" if 0.35 < s < 0.65 else None
    elif motion in ("wave", "wave_flag"):
        swing = 0.7 * math.sin(2 * math.pi * p["cycles"] * u + p["phase"])
        arms = ((2.6, 2.6 + swing), (-2.6, -2.6 + swing))
        pose = "arms_up"
    elif motion == "kick":
        t = (u - p["onset"]) / 0.3                   # back swing, kick, return
        if 0 < t < 0.4:
            angle = -0.7 * math.sin(math.pi * t / 0.4)
        elif 0.4 <= t < 1:
            angle = 1.4 * math.sin(math.pi * (t - 0.4) / 0.6)
        else:
            angle = 0.0
        legs = ((angle, angle - 0.4 * (angle < 0)), (-0.12, -0.12))
        pose = "leg_up" if angle > 0.8 else "standing" if not 0 < t < 1 else None
        arms = ((-0.5 * angle, -0.5 * angle + 0.3), (0.4 * angle, 0.4 * angle + 0.3))
        contact = p["onset"] + 0.3 * 0.55
        start = x + p["facing"] * (thigh * 0.25 + shin * 0.5 + p["ball"])
        flight = max(0.0, u - contact)
        ball = (start + p["facing"] * p["speed"] * flight, ground - p["ball"] - 25 * flight * max(0.0, 0.5 - flight))
    elif motion == "throw":
        t = (u - p["onset"]) / 0.35                  # wind back, swing over the top, follow through
        if t < 0.5:
            angle = 0.3 - 2.6 * _smooth(t / 0.5)
        elif t < 0.8:
            angle = -2.3 + 4.2 * _smooth((t - 0.5) / 0.3)
        else:
            angle = 1.9 - 1.2 * _smooth((t - 0.8) / 0.2)
        arms = ((angle, angle + 0.2), (0.6, 0.9))
        legs = ((0.3, 0.25), (-0.3, -0.3))
        pose = "arm_up" if angle < -1.4 else "stride" if t < 0 else None   # legs apart from the start
        release = p["onset"] + 0.35 * 0.72
        if u < release:
            neck_y = stand - p["torso"]
            ball = (x + p["facing"] * (p["upper"] + p["lower"]) * math.sin(angle),
                    neck_y + (p["upper"] + p["lower"]) * math.cos(angle))
        else:
            flight = u - release
            ball = (x + p["facing"] * (p["upper"] * 0.7 + p["speed"] * flight),
                    stand - p["torso"] - p["upper"] - p["speed"] * flight * (1.2 - 3.0 * flight))
    elif motion == "jump":
        height = abs(math.sin(math.pi * p["cycles"] * u + p["phase"]))
        crouch = max(0.0, 1 - 3 * height)
        legs = ((0.9 * crouch, -0.6 * crouch), (0.8 * crouch, -0.7 * crouch))
        stand += thigh * (1 - math.cos(0.9 * crouch)) - p["hop"] * height
        # arms swing forward, never overhead: a jump must not look like "waving arms" frozen mid-air
        arms = ((0.3 + 1.1 * height, 0.5 + 1.1 * height), (0.1 + 1.1 * height, 0.3 + 1.1 * height))
        pose = "air" if height > 0.5 else "crouch" if crouch > 0.6 else None
    elif motion == "bounce":
        height = abs(math.cos(math.pi * p["cycles"] * u + p["phase"]))
        hand_y = stand - p["torso"] + p["upper"] + p["lower"] * 0.5 + 6 * (1 - height)
        hand_x = x + p["facing"] * (p["upper"] * 0.6 + p["lower"] * 0.6)
        arms = ((0.7, 1.2 - 0.5 * (1 - height)), (-0.1, 0.2))
        ball = (hand_x + p["facing"] * 2, hand_y + p["ball"] + (ground - 2 * p["ball"] - hand_y) * (1 - height))
        pose = "arm_forward"
    return x, stand, lean, arms, legs, ball, pose


def _render_clip(motion, scene, num_frames, size, rng, records=None, balanced=False):
    """One clip: (num_frames, size, size, 3) uint8. With a list `records`, one attribute record per frame is
    appended to it (see frame_record); recording draws nothing from `rng`, so the frames are the same either way.
    balanced=True: the frames are num_frames instants of the clip drawn so that each pose it passes through is as
    likely as any other (a kick's raised leg lasts a tenth of the clip; pretraining needs it as often as standing)."""
    background, ground = _scene(scene, size, rng)
    # our choice: a figure about two thirds of the frame tall with thick limbs, so that a tiny ViT trained from
    # scratch with 16-pixel patches can see its pose within the embedded default's few minutes
    scale = size / 128 * rng.uniform(1.25, 1.5)
    if motion in ("wave", "wave_flag"):   # further back, so that raised hands (and the flag) stay in the frame
        scale *= 0.85
    facing = rng.choice([-1, 1])
    p = dict(thigh=14 * scale, shin=13 * scale, torso=20 * scale, upper=11 * scale, lower=10 * scale,
             head=5.5 * scale, ball=7 * scale, ground=ground, facing=facing, phase=rng.uniform(0, 2 * math.pi),
             cycles=rng.uniform(1.5, 2.5), travel=size * rng.uniform(0.45, 0.6), onset=rng.uniform(0.1, 0.3),
             duration=rng.uniform(0.3, 0.45), hop=size * rng.uniform(0.08, 0.14), speed=size * rng.uniform(0.5, 0.8))
    p["x"] = size * rng.uniform(0.35, 0.65) if motion == "walk" else size * rng.uniform(0.25, 0.75)
    if motion in ("wave", "wave_flag", "bounce"):
        p["cycles"] = rng.uniform(2.0, 3.5)
    if motion in ("kick", "throw"):
        p["x"] = size * (0.5 - 0.25 * facing + rng.uniform(-0.08, 0.08))   # room in front for the ball
        p["onset"] = rng.uniform(0.15, 0.35)
    colours = {}   # the colour names a caption may use
    for thing, palette, amount in (("figure", FIGURE_COLOURS, 25), ("ball", BALL_COLOURS, 15)):
        colours[thing] = list(palette)[rng.integers(len(palette))]
        colours[thing + "_rgb"] = _jitter(palette[colours[thing]], rng, amount)
    radius = max(1.2, 2.8 * scale)
    colours["flag"] = list(FLAG_COLOURS)[rng.integers(len(FLAG_COLOURS))]
    colours["flag_rgb"] = _jitter(FLAG_COLOURS[colours["flag"]], rng, 15)
    noise = rng.standard_normal((2, size + 16, size + 16, 3)).astype(np.float32) * rng.uniform(2, 6)
    if motion in ("sit_down", "stand_up"):   # the chair stands where the hips end up
        seat_x, seat_y = p["x"] - facing * p["thigh"], ground - p["shin"] + radius
        back, half = seat_x - facing * p["thigh"] * 0.6, p["thigh"] * 0.6
        _draw_segments(background, [(seat_x - half, seat_y, seat_x + half, seat_y, radius),
                                    (back, seat_y, back, seat_y - p["torso"] * 0.9, radius),
                                    (seat_x - half * 0.8, seat_y, seat_x - half * 0.8, ground, radius * 0.8),
                                    (seat_x + half * 0.8, seat_y, seat_x + half * 0.8, ground, radius * 0.8)],
                       _jitter((60, 60, 70), rng, 20))
    times = [i / max(1, num_frames - 1) for i in range(num_frames)]
    if balanced:
        grid = np.linspace(0, 1, 97)
        poses = [_pose(motion, u, p)[-1] for u in grid]
        weights = np.array([1 / poses.count(pose) for pose in poses])
        times = np.sort(rng.choice(grid, num_frames, p=weights / weights.sum()))
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for i in range(num_frames):
        x, hip_y, lean, arms, legs, ball, pose = _pose(motion, times[i], p)
        hand = None   # where the front arm ends
        neck = (x + facing * p["torso"] * math.sin(lean), hip_y - p["torso"] * math.cos(lean))
        head = (neck[0] + facing * (p["head"] + 1) * math.sin(lean), neck[1] - (p["head"] + 1) * math.cos(lean))
        segments = [(x, hip_y, *neck, radius * 1.3), (*head, *head, p["head"]),
                    (*head, head[0] + facing * (p["head"] + 3 * scale), head[1] + 1, radius * 0.8)]   # nose
        for (a, b), start, first, second in ((legs[0], (x, hip_y), p["thigh"], p["shin"]),
                                             (legs[1], (x, hip_y), p["thigh"], p["shin"]),
                                             (arms[0], neck, p["upper"], p["lower"]),
                                             (arms[1], neck, p["upper"], p["lower"])):
            joint = (start[0] + facing * first * math.sin(a), start[1] + first * math.cos(a))
            end = (joint[0] + facing * second * math.sin(b), joint[1] + second * math.cos(b))
            segments += [(*start, *joint, radius), (*joint, *end, radius)]
            hand = end if start is neck and hand is None else hand
        image = background.copy()
        _draw_segments(image, segments, colours["figure_rgb"])
        if motion == "wave_flag":   # a short stick on from the front hand, a flag of about 14 x 9 pixels at its top
            stick = 0.8 * p["lower"]
            top = (hand[0] + facing * stick * math.sin(arms[0][1]), hand[1] + stick * math.cos(arms[0][1]))
            _draw_segments(image, [(*hand, *top, radius * 0.5)], (90, 60, 30))
            width, height = 16 * scale / 1.4, 10 * scale / 1.4
            # rows one pixel apart, so the flag is one solid patch (four rows 3 px apart, our first flag, left
            # stripes of background between them that the tiny ViT hardly told from bare arms: 0.5-0.75 per class)
            _draw_segments(image, [(top[0], top[1] + k, top[0] + facing * width, top[1] + k, 1.0)
                                   for k in np.arange(0, height + 0.5, 1.0)], colours["flag_rgb"])
        if ball is not None:
            _draw_segments(image, [(*ball, *ball, p["ball"])], colours["ball_rgb"])
        k, dy, dx = rng.integers(2), rng.integers(16), rng.integers(16)
        image += noise[k, dy:dy + size, dx:dx + size]
        frames[i] = np.clip(image, 0, 255)
        if records is not None:
            box = np.asarray(segments)   # the figure's extent: (x0, y0, x1, y1, radius) rows
            xs, ys, radii = box[:, [0, 2]], box[:, [1, 3]], box[:, 4:]
            box = (float((xs - radii).min()), float((ys - radii).min()), float((xs + radii).max()),
                   float((ys + radii).max()))
            records.append(dict(frame_record(motion, scene, pose, ball, hand, p, colours), box=box))
    return frames


def _ball_place(ball, hand, p):
    """Where the ball is: "hand" (touching the front hand), "ground", "air", or None in between."""
    gap = p["ground"] - (ball[1] + p["ball"])                 # pixels between the ball and the ground line
    reach = math.hypot(ball[0] - hand[0], ball[1] - hand[1])  # centre to the front hand's end
    if reach <= 1.3 * p["ball"]:
        return "hand"
    if gap < 1:
        return "ground"
    if gap > 0.5 * p["ball"] and reach > 2 * p["ball"]:
        return "air"
    return None


def frame_record(motion, scene, pose, ball, hand, p, colours):
    """What one frame shows, in the words of the four SU kinds (captions() turns it into sentences)."""
    return dict(motion=motion, scene=scene, pose=pose, facing="right" if p["facing"] > 0 else "left",
                figure=colours["figure"],
                ball=None if ball is None else colours["ball"], ball_at=None if ball is None else _ball_place(ball, hand, p),
                flag=colours["flag"] if motion == "wave_flag" else None, chair=motion in ("sit_down", "stand_up"))


def frame_facts(record):
    """What a caption may say of a frame, as (kind, value) pairs, and what it leaves open: kinds (a pose between two
    states, a ball between two places) and single facts (the other motion of a time-reversed pair). A caption that
    states one of those is neither true nor false of the frame."""
    facts = {("scene", record["scene"]), ("figure", record["figure"]), ("facing", record["facing"]),
             ("motion", record["motion"])}
    if record["pose"]:
        facts.add(("pose", record["pose"]))
    for thing in ("ball", "flag"):
        if record[thing]:
            facts |= {("object", thing), (thing, record[thing])}
    if record["ball_at"]:
        facts.add(("ball_at", record["ball_at"]))
    if record["chair"]:
        facts.add(("object", "chair"))
    unknown = {"pose"} if record["pose"] is None else set()   # kinds, and single facts, left open
    if record["ball"] and record["ball_at"] is None:
        unknown.add("ball_at")
    if record["motion"] in SAME_FRAMES:
        unknown.add(("motion", SAME_FRAMES[record["motion"]]))
    return frozenset(facts), frozenset(unknown)


def caption(record, rng, full=False):
    """One sentence about a frame and the facts it states: (text, frozenset of (kind, value)). By default a random
    part of what the frame shows in random phrasings, as alt-texts on the web are partial; full=True says all."""
    def say(probability):
        return full or rng.random() < probability

    def pick(options):
        return options[rng.integers(len(options))]

    stated, person, things = set(), [], []
    subject = pick(("a person", "a stick figure", "someone", "a figure"))
    if say(0.3):
        subject = pick((f"a {record['figure']} stick figure", f"a {record['figure']} figure",
                        f"a person in {record['figure']}"))
        stated.add(("figure", record["figure"]))
    if say(0.4):
        person.append(pick(MOTION_WORDS[record["motion"]]))
        stated.add(("motion", record["motion"]))
    if record["pose"] and say(0.6):
        person.append(pick(POSES[record["pose"]]))
        stated.add(("pose", record["pose"]))
    if say(0.15):
        person.append(f"facing {record['facing']}")
        stated.add(("facing", record["facing"]))
    if record["ball"] and say(0.6):
        colour = f"{record['ball']} " if say(0.3) else ""
        place = f" {pick(BALL_PLACES[record['ball_at']])}" if record["ball_at"] and say(0.5) else ""
        things.append(f"a {colour}ball{place}")
        stated |= {("object", "ball")} | ({("ball", record["ball"])} if colour else set()) | (
            {("ball_at", record["ball_at"])} if place else set())
    if record["flag"] and say(0.6):
        colour = f"{record['flag']} " if say(0.3) else ""
        things.append(f"a {colour}flag")
        stated |= {("object", "flag")} | ({("flag", record["flag"])} if colour else set())
    if record["chair"] and say(0.6):
        things.append("a chair")
        stated.add(("object", "chair"))
    scene = ""
    if say(0.5) or not stated:
        scene = SCENES[record["scene"]] if say(0.5) else "at " + pick(SCENE_WORDS[record["scene"]])
        stated.add(("scene", record["scene"]))
    if stated & {("figure", record["figure"])} or person or not things:
        text = " ".join([subject] + person) + (" with " + " and ".join(things) if things else "")
    else:   # objects, no person: "a yellow ball in the air on the beach"
        text = " and ".join(things)
    if scene and text == subject and not full and rng.random() < 0.5:
        text, scene = pick(SCENE_WORDS[record["scene"]]), ""   # the place alone: "a beach by the sea"
    text = ("a photo of " if say(0.5) else "") + text + (" " + scene if scene else "")
    return text + ".", frozenset(stated)


def captions(record, count=3, seed=0):
    """`count` sentences that each say everything one frame shows (frame_record), in different phrasings."""
    rng = np.random.default_rng(seed)
    return [caption(record, rng, full=True)[0] for _ in range(count)]


def render_clip(motion, scene, num_frames=32, size=128, seed=0, balanced=False):
    """Any motion in any scene: frames (num_frames, size, size, 3) uint8 and one attribute record per frame
    (frame_record: motion, scene, pose, facing, figure, ball, ball_at, flag, chair; and box, the figure's extent
    (x0, y0, x1, y1) in pixels). Deterministic from `seed`."""
    if motion not in MOTIONS or scene not in SCENES:
        raise ValueError(f"render_clip({motion!r}, {scene!r}): motions are {', '.join(MOTIONS)}; scenes "
                         f"{', '.join(SCENES)}")
    if num_frames < 1:
        raise ValueError(f"render_clip: num_frames {num_frames}, at least 1")
    records = []
    frames = _render_clip(motion, scene, num_frames, size, np.random.default_rng(seed), records, balanced)
    return frames, records


def rgb_to_yuv420p(image):
    """(H, W, 3) uint8 RGB, H and W even -> (3H/2, W) uint8 planar YUV 4:2:0 (BT.601, limited range: Y, then U and
    V at half resolution), in integer arithmetic, so the same on every CPU (swscale's SIMD paths need not be)."""
    r, g, b = (image[..., c].astype(np.int32) for c in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    height, width = y.shape

    def half(plane):   # the mean of each 2 x 2 block, rounded
        return (plane.reshape(height // 2, 2, width // 2, 2).sum(axis=(1, 3)) + 2) >> 2

    chroma = np.concatenate([half(u), half(v)]).reshape(height // 2, width)   # U rows, then V rows
    return np.concatenate([y, chroma]).astype(np.uint8)                        # (3H/2, W)


# x264 with one thread, and without its macroblock-tree rate control: with mbtree (x264's default) the same frames
# gave different bytes from one encode to the next, 5 distinct files out of 10 on short clips, and which ones
# depended on what the process had encoded before, as if it read memory it had not set; with mbtree=0, 0 of 192
# encodes differed. Bytes then depend only on the frames, and x264 computes the same on every CPU.
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "23", "threads": "1", "x264-params": "mbtree=0"}


def write_video(path, frames, fps=16, codec="libx264", options=None):
    """Writes (T, H, W, 3) uint8 frames as a video (H.264 mp4 by default) through PyAV. With the default options
    and even H and W, the file's bytes depend only on the frames (ENCODER_OPTIONS, rgb_to_yuv420p)."""
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = height, width
        stream.pix_fmt = "yuv420p"
        stream.options = dict(ENCODER_OPTIONS if options is None else options)
        for index, image in enumerate(frames):
            if height % 2 or width % 2:   # odd sizes: PyAV converts
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            else:
                frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _make_clip(job):
    path, motion, scene, num_frames, size, seed_sequence = job
    rng = np.random.default_rng(seed_sequence)
    length = num_frames + int(rng.integers(-4, 5))   # per-clip duration variation
    write_video(path, _render_clip(motion, scene, length, size, rng))


def _settings_of(root):
    """The settings a set under `root` was made with (so a set made with, say, num_classes=9 is kept as it is),
    without the renderer version; {} (the defaults) where there is no complete set."""
    marker = Path(root) / "synthetic.json"
    try:
        settings = json.loads(marker.read_text())
        version = settings.pop("version")
    except (OSError, ValueError, KeyError, AttributeError):
        return {}
    if version < 5 and settings.get("num_classes") == 8:   # the default before version 5: take today's
        settings.pop("num_classes")
    return settings


def check_root(root):
    """Raise FileExistsError unless `root` is a folder the set may be rendered into: missing, empty, or one it made
    (its marker synthetic.json, or the .lock of a render that was cut short). It never writes into a user's folder
    (a list dataset given without --data list would lose its train.txt, val.txt and labels.txt)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"--data-root {root}: is a file, not a folder")
    held = sorted(path.name for path in root.iterdir()) if root.is_dir() else []
    if held and not {"synthetic.json", ".lock"} & set(held):
        raise FileExistsError(f"--data-root {root}: holds files that are not a synthetic set (e.g. {held[0]}); the "
                              "synthetic set is rendered only into an empty folder or its own (for a list dataset "
                              "add --data list)")


def ensure_synthetic(root, pairs=None):
    """The set under `root`, rendered on first use (default settings; with `pairs`, those pairs instead: the world
    with WORLD_VIDEOS_PER_CLASS clips a class), and rendered again with its own settings when the renderer has
    changed since it was made."""
    settings = _settings_of(root)
    if not settings and pairs is not None:
        settings = dict(pairs=pairs, videos_per_class=WORLD_VIDEOS_PER_CLASS)
    make_synthetic(root, **settings)


def make_synthetic(root, num_classes=10, videos_per_class=60, val_fraction=0.2, seed=0, num_frames=32, size=128,
                   workers=None, pairs=None):
    """Renders the synthetic set into `root` (default size: 10 classes x 60 clips = 48 train + 12 val each, 28..36
    frames of 128 x 128 at 16 fps, H.264) with videos/<class>/<split>_<k>.mp4, train.txt, val.txt, labels.txt.
    pairs: (motion, scene) pairs to render instead of the first num_classes default classes (e.g. WORLD_PAIRS).
    Deterministic from `seed`. Skips the work when `root` already holds a complete set with the same parameters
    (synthetic.json, written last)."""
    root = Path(root)
    settings = dict(version=VERSION, num_classes=num_classes, videos_per_class=videos_per_class,
                    val_fraction=val_fraction, seed=seed, num_frames=num_frames, size=size)
    if pairs is not None:   # (the default set's synthetic.json stays as it was: no new key, no new render)
        pairs = [[motion, scene] for motion, scene in pairs]   # as JSON keeps them
        if bad := [pair for pair in pairs if pair[0] not in MOTIONS or pair[1] not in SCENES]:
            raise ValueError(f"make_synthetic: pair {bad[0]} is not a (motion, scene) of the renderer")
        settings.update(num_classes=len(pairs), pairs=pairs)
        classes = [(class_name(motion, scene), motion, scene) for motion, scene in pairs]
    else:
        classes = CLASSES[:len(synthetic_class_names(num_classes))]   # (which checks num_classes)
    marker = root / "synthetic.json"
    class_names = [name for name, _, _ in classes]

    def complete():
        return marker.is_file() and json.loads(marker.read_text()) == settings

    if complete():
        return
    check_root(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        if fcntl is not None:   # several DDP ranks may get here at once: one renders, the others wait and find it done
            fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():
            return
        marker.unlink(missing_ok=True)
        num_val = max(1, round(videos_per_class * val_fraction))
        jobs, lists = [], {"train": [], "val": []}
        for label, (name, motion, scene) in enumerate(classes):
            folder = root / "videos" / name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(videos_per_class):
                split = "val" if k < num_val else "train"
                relative = f"videos/{folder.name}/{split}_{k:03d}.mp4"
                lists[split].append(f"{relative} {label}\n")
                jobs.append((str(root / relative), motion, scene, num_frames, size, [seed, label, k]))
        workers = workers or min(8, os.cpu_count() or 1)
        if workers > 1 and not multiprocessing.current_process().daemon:   # daemons may not have children
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_make_clip, jobs, chunksize=4))
        else:
            for job in jobs:
                _make_clip(job)
        for split, lines in lists.items():
            (root / f"{split}.txt").write_text("".join(lines))
        (root / "labels.txt").write_text("".join(name + "\n" for name in class_names))
        marker.write_text(json.dumps(settings))


def preview(num_classes=10, frames=6, size=128, seed=0):
    """The first `num_classes` classes as the model sees them: one clip of 32 frames per class, `frames` of them
    evenly spaced in time, in a row with the class name under it -> (H, W, 3) uint8 (pictures.sheet)."""
    rows = []
    for name, motion, scene in CLASSES[:num_classes]:
        clip, _ = render_clip(motion, scene, num_frames=32, size=size, seed=seed)                # (32, S, S, 3)
        rows.append(clip[np.linspace(0, len(clip) - 1, frames).round().astype(int)])            # (frames, S, S, 3)
    return pictures.sheet(rows, [name for name, _, _ in CLASSES[:num_classes]])


def main(argv=None):
    p = runtime.argument_parser("synthetic.py", "Pictures of the embedded default's synthetic classes (the set "
                                "itself is rendered by train.py on first use).")
    p.add_argument("--preview", required=True, help="PNG file to write: one row of frames per class")
    p.add_argument("--classes", type=int, default=10, help=f"the first N classes (1..{len(CLASSES)})")
    p.add_argument("--frames", type=int, default=6, help="frames per row, evenly spaced over a 32-frame clip")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels (the set's own is 128)")
    p.add_argument("--seed", type=int, default=0, help="which clip of each class is drawn")
    args = p.parse_args(argv)
    runtime.check_values(args, dict(classes=(1, len(CLASSES)), frames=(1, 32), size=(16, 1024), seed=(0, 2**32 - 1)))
    if not args.preview.lower().endswith(".png"):
        runtime.fail(f"--preview {args.preview}: a .png file")
    runtime.check_out_file(args.preview, "--preview")
    pictures.write_png(args.preview, preview(args.classes, args.frames, args.size, args.seed))
    print(f"wrote {args.preview}")


if __name__ == "__main__":
    main()
