"""Pictures of what the model sees: contact sheets of frames with a caption under each row, written as PNG.

Not part of the paper. `synthetic.py --preview` draws the embedded default's classes with it and `eval.py --video
--explain` the MRA windows that selected a video's top semantic units. No drawing package: text is a 3 x 5 pixel
bitmap font in numpy (capitals, digits, a little punctuation; anything else is drawn as '?'), and PyAV, which
reads the videos, writes the PNG.

    sheet(rows [(N, H, W, 3) uint8], captions [str], title) -> (height, width, 3) uint8
    write_png(path, image (H, W, 3) uint8)      (atomically: the old file or the new one, never a part)
    read_png(path) -> (H, W, 3) uint8;  find_text(image, text) -> (x, y) where the text is written, or None
"""
import av
import numpy as np

from runtime import atomic_write

# Each glyph is 5 rows of 3 pixels, row after row ("1" = ink); one blank column between letters.
GLYPHS = {
    "a": "010101111101101", "b": "110101110101110", "c": "011100100100011", "d": "110101101101110",
    "e": "111100110100111", "f": "111100110100100", "g": "011100101101011", "h": "101101111101101",
    "i": "111010010010111", "j": "001001001101010", "k": "101101110101101", "l": "100100100100111",
    "m": "101111101101101", "n": "110101101101101", "o": "010101101101010", "p": "110101110100100",
    "q": "010101101110011", "r": "110101110101101", "s": "011100010001110", "t": "111010010010010",
    "u": "101101101101111", "v": "101101101101010", "w": "101101111111101", "x": "101101010101101",
    "y": "101101010010010", "z": "111001010100111",
    "0": "111101101101111", "1": "010110010010111", "2": "110001010100111", "3": "110001010001110",
    "4": "101101111001001", "5": "111100110001110", "6": "011100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001110",
    " ": "000000000000000", "-": "000000111000000", ".": "000000000000010", ",": "000000000010100",
    ":": "000010000010000", "(": "001010010010001", ")": "100010010010100", "'": "010010000000000",
    "/": "001001010100100", "_": "000000000000111", "%": "101001010100101", "+": "000010111010000",
    "=": "000111000111000", "?": "110001010000010",
}
SCALE = 2            # each font pixel drawn as SCALE x SCALE: letters 6 x 10 pixels, 8 pixels apart
PAD = 4              # pixels between frames, around the sheet and around a caption line
LINE = 5 * SCALE + 2 * PAD   # height of a caption line
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)      # the text colour, and nothing else on a caption line has it


def text_mask(text):
    """Where a line of text puts ink: bool (5 * SCALE, (4 * len - 1) * SCALE), capitals for every letter."""
    glyphs = [np.array([c == "1" for c in GLYPHS.get(char, GLYPHS["?"])]).reshape(5, 3)
              for char in text.lower()]
    spaced = [np.pad(glyph, ((0, 0), (0, 1))) for glyph in glyphs]                 # (5, 4) each
    mask = np.concatenate(spaced, axis=1)[:, :-1] if spaced else np.zeros((5, 0), bool)   # (5, 4n - 1)
    return mask.repeat(SCALE, axis=0).repeat(SCALE, axis=1)


def draw_text(image, text, x, y, colour=INK):
    """Writes `text` into image (H, W, 3) with its top-left corner at (x, y); what falls outside is cut off."""
    mask = text_mask(text)[:max(0, image.shape[0] - y), :max(0, image.shape[1] - x)]
    image[y:y + mask.shape[0], x:x + mask.shape[1]][mask] = colour


def draw_box(image, box, colour, width=2):
    """The outline of box (x0, y0, x1, y1), half-open pixel bounds, `width` pixels thick inside the box."""
    x0, y0, x1, y1 = box
    image[y0:y0 + width, x0:x1] = colour
    image[y1 - width:y1, x0:x1] = colour
    image[y0:y1, x0:x0 + width] = colour
    image[y0:y1, x1 - width:x1] = colour


def text_width(text):
    return text_mask(text).shape[1]


def sheet(rows, captions, title=None):
    """One row of frames per entry of `rows` ((N, H, W, 3) uint8, every row the same H and W), each with its
    caption under it, and an optional title line at the top; a white sheet as wide as its widest line."""
    count, height, width = rows[0].shape[:3]
    lines = list(captions) + ([title] if title else [])
    sheet_width = max([count * (width + PAD) + PAD] + [text_width(line) + 2 * PAD for line in lines])
    top = LINE if title else 0
    image = np.empty((top + len(rows) * (height + LINE) + PAD, sheet_width, 3), np.uint8)   # (H', W', 3)
    image[:] = BACKGROUND
    if title:
        draw_text(image, title, PAD, PAD)
    for r, (frames, caption) in enumerate(zip(rows, captions)):
        y = top + PAD + r * (height + LINE)
        for c, frame in enumerate(frames):
            x = PAD + c * (width + PAD)
            image[y:y + height, x:x + width] = frame
        draw_text(image, caption, PAD, y + height + PAD)
    return image


def find_text(image, text):
    """Where `text` is written in image (H, W, 3) in INK: the (x, y) of its top-left corner, or None. Exact: the
    ink pixels of the line and no others within its extent (how tests read a picture back)."""
    mask = text_mask(text)                                                       # (h, w)
    ink = (image == INK).all(axis=-1)                                            # (H, W)
    first_y, first_x = np.argwhere(mask)[0]
    for y, x in np.argwhere(ink) - (first_y, first_x):
        window = ink[y:y + mask.shape[0], x:x + mask.shape[1]]
        if y >= 0 and x >= 0 and window.shape == mask.shape and (window == mask).all():
            return int(x), int(y)
    return None


def write_png(path, image):
    """image (H, W, 3) uint8 RGB -> a PNG file (lossless: the same pixels come back)."""
    height, width = image.shape[:2]
    with atomic_write(path) as file, av.open(file, "w", format="image2pipe") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())


def read_png(path):
    """A PNG file -> (H, W, 3) uint8 RGB (for tests and for looking at what was written)."""
    with av.open(str(path), format="png_pipe") as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")
