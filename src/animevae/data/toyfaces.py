"""Procedural cartoon anime faces: the built-in offline dataset (`--data builtin`).

Real anime-face datasets live on the Hub; this generator lets the quick start,
the tests and CI train and evaluate a VAE with no download at all. Faces are
drawn with PIL at 2x resolution and box-downsampled (cheap anti-aliasing), and
face i depends only on (seed, i), so any slice can be rendered independently.
"""

import colorsys

import numpy as np
from PIL import Image, ImageDraw

HAIR = [  # base hair colours, jittered per face
    (30, 28, 38),
    (70, 45, 35),
    (125, 80, 50),
    (240, 205, 110),
    (245, 140, 60),
    (200, 45, 55),
    (250, 150, 190),
    (150, 95, 205),
    (60, 105, 215),
    (130, 195, 240),
    (205, 210, 225),
    (70, 170, 110),
    (40, 160, 170),
]
SKIN = [(255, 232, 215), (252, 220, 198), (245, 205, 178), (230, 185, 150), (200, 150, 115), (160, 112, 80)]
SKIN_P = [0.3, 0.25, 0.2, 0.12, 0.08, 0.05]
BANGS = ("straight", "spiky", "swept", "parted")
BACK = ("short", "bob", "long", "twintails")
MOUTHS = ("line", "smile", "o", "cat")


def _mix(a, b, t):
    """Blend RGB tuples a -> b by t in [0, 1]."""
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b))


def _jitter(rng, c, amount=16):
    return tuple(int(v) for v in np.clip(np.array(c) + rng.integers(-amount, amount + 1, 3), 0, 255))


def _hsv(h, s, v):
    return tuple(int(255 * x) for x in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _ellipse(d, x, y, rx, ry, fill, **kw):
    d.ellipse([x - rx, y - ry, x + rx, y + ry], fill=fill, **kw)


def _background(rng, S):
    c1 = _hsv(rng.random(), rng.uniform(0.08, 0.35), rng.uniform(0.8, 1.0))
    if rng.random() < 0.4:
        return Image.new("RGB", (S, S), c1)
    c2 = _hsv(rng.random(), rng.uniform(0.08, 0.35), rng.uniform(0.75, 1.0))
    t = np.linspace(0.0, 1.0, S)[:, None, None]
    column = ((1 - t) * np.array(c1) + t * np.array(c2)).astype(np.uint8)  # (S, 1, 3)
    return Image.fromarray(column).resize((S, S), Image.NEAREST)


def _face_outline(cx, cy, R, chin):
    """Round cranium on top, jaw tapering to a soft chin `chin*R` below the centre."""
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x, y = np.sin(t), -np.cos(t)
    low = y > 0
    x[low] *= 1 - 0.3 * y[low] ** 2  # narrow the jaw
    y[low] *= chin
    return list(zip(cx + R * x, cy + R * y))


def _bangs(rng, style, cx, cy, R):
    """Polygon of the fringe: the top of the hair cap plus a strand-shaped lower edge."""
    a = np.radians(np.linspace(180, 360, 16))
    pts = list(zip(cx + 1.18 * R * np.cos(a), cy - 0.05 * R + 1.2 * R * np.sin(a)))
    y0 = cy - rng.uniform(0.05, 0.25) * R
    k = {"straight": rng.integers(7, 11), "spiky": rng.integers(5, 8), "swept": rng.integers(5, 7), "parted": 2 * rng.integers(2, 4)}[style]
    sweep = rng.choice([-1, 1])
    tip, notch = {"straight": (0.04, 0.06), "spiky": (0.12, 0.4), "swept": (0.08, 0.3), "parted": (0.1, 0.25)}[style]
    edges = np.linspace(1.18, -1.18, k + 1)  # right to left, in units of R
    for j in range(k + 1):
        for x, depth in ((edges[j], -notch), ((edges[j] + edges[min(j + 1, k)]) / 2, tip)):
            if depth > 0 and j == k:
                break
            base = y0
            if style == "swept":
                base = y0 + sweep * x * 0.3 * R
                x = x + (sweep * 0.12 if depth > 0 else 0)
            elif style == "parted":
                base = y0 - 0.6 * R * max(0.0, 1 - abs(x) / 0.9) ** 1.5
            jit = rng.uniform(0.7, 1.3) if style in ("spiky", "swept") else 1.0
            pts.append((cx + x * R, base + depth * jit * R))
    return pts


def _eye(d, rng, ex, ey, ew, eh, side, iris, lash, look):
    """One big anime eye; side=-1 for the eye on the image's left (outer corner left)."""
    _ellipse(d, ex, ey, ew, eh, (255, 255, 255))
    ix, iy, iw, ih = ex + look * ew, ey + 0.1 * eh, 0.72 * ew, 0.86 * eh
    _ellipse(d, ix, iy, iw, ih, _mix(iris, (0, 0, 0), 0.55))
    _ellipse(d, ix, iy + 0.05 * ih, 0.85 * iw, 0.88 * ih, iris)
    _ellipse(d, ix, iy + 0.45 * ih, 0.6 * iw, 0.4 * ih, _mix(iris, (255, 255, 255), 0.4))
    _ellipse(d, ix, iy + 0.05 * ih, 0.38 * iw, 0.42 * ih, _mix(iris, (10, 5, 20), 0.8))
    _ellipse(d, ix - 0.32 * iw, iy - 0.38 * ih, 0.32 * iw, 0.28 * ih, (255, 255, 255))
    if rng.random() < 0.7:
        _ellipse(d, ix + 0.35 * iw, iy + 0.4 * ih, 0.14 * iw, 0.12 * ih, (255, 255, 255))
    lw = max(2, int(0.28 * eh))  # thick upper lash line with a flick at the outer corner
    d.arc([ex - 1.1 * ew, ey - 1.08 * eh, ex + 1.1 * ew, ey + 1.1 * eh], 190, 350, fill=lash, width=lw)
    ox = ex + side * 1.08 * ew
    d.polygon([(ox, ey - 0.5 * eh), (ox + side * 0.35 * ew, ey - 0.85 * eh), (ox - side * 0.1 * ew, ey - 0.1 * eh)], fill=lash)
    d.arc([ex - 0.8 * ew, ey - eh, ex + 0.8 * ew, ey + 1.05 * eh], 60, 120, fill=lash, width=max(1, lw // 3))


def _mouth(d, style, mx, my, R, line):
    w = 0.11 * R
    if style == "line":
        d.arc([mx - w, my - 0.12 * R, mx + w, my + 0.04 * R], 30, 150, fill=line, width=max(1, int(0.04 * R)))
    elif style == "smile":
        d.chord([mx - 1.2 * w, my - 0.1 * R, mx + 1.2 * w, my + 0.14 * R], 0, 180, fill=(150, 40, 50))
        d.chord([mx - 0.7 * w, my - 0.02 * R, mx + 0.7 * w, my + 0.13 * R], 20, 160, fill=(240, 120, 130))
    elif style == "o":
        _ellipse(d, mx, my + 0.02 * R, 0.45 * w, 0.55 * w, (150, 40, 50))
    else:  # cat mouth ":3"
        lw = max(1, int(0.035 * R))
        d.arc([mx - w, my - 0.06 * R, mx, my + 0.06 * R], 0, 180, fill=line, width=lw)
        d.arc([mx, my - 0.06 * R, mx + w, my + 0.06 * R], 0, 180, fill=line, width=lw)


def render_face(index: int, seed: int = 0, size: int = 96) -> np.ndarray:
    """Render face number `index` of the stream `seed` as a (size, size, 3) uint8 RGB array."""
    rng = np.random.default_rng([seed, index])
    S = 2 * size  # draw at 2x, downsample for anti-aliasing
    u = S / 100  # design units: the canvas is 100 x 100
    img = _background(rng, S)
    d = ImageDraw.Draw(img)
    cx, cy = (50 + rng.uniform(-3, 3)) * u, (47 + rng.uniform(-2.5, 2.5)) * u
    R = 27 * u * rng.uniform(0.92, 1.06)

    hair = _jitter(rng, HAIR[rng.integers(len(HAIR))])
    hair_dark, hair_light = _mix(hair, (25, 10, 35), 0.45), _mix(hair, (255, 255, 255), 0.45)
    skin = _jitter(rng, SKIN[rng.choice(len(SKIN), p=SKIN_P)], 6)
    skin_dark = _mix(skin, (120, 50, 50), 0.25)
    cloth = _hsv(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.95))
    back, bangs, mouth = BACK[rng.integers(4)], BANGS[rng.integers(4)], MOUTHS[rng.integers(4)]
    hw = max(1, int(0.6 * u))  # outline width

    # hair behind the head
    if back == "twintails":
        for s in (-1, 1):
            _ellipse(d, cx + s * 1.3 * R, cy + 0.7 * R, 0.38 * R, 1.2 * R, hair, outline=hair_dark, width=hw)
    length = {"short": 0.4, "bob": 1.0, "long": 2.4, "twintails": 0.3}[back] * R
    xs = np.linspace(-1.25, 1.25, 9) * R
    bottom = [(cx + x, cy + length + (0.1 * R if j % 2 else 0)) for j, x in enumerate(xs)]
    d.polygon([(cx - 1.18 * R, cy - 0.1 * R), (cx + 1.18 * R, cy - 0.1 * R)] + bottom[::-1], fill=hair, outline=hair_dark, width=hw)
    _ellipse(d, cx, cy - 0.05 * R, 1.18 * R, 1.2 * R, hair, outline=hair_dark, width=hw)

    # neck, shoulders, face
    d.rectangle([cx - 0.28 * R, cy + 0.6 * R, cx + 0.28 * R, S], fill=skin_dark)
    _ellipse(d, cx, cy + 2.45 * R, 1.5 * R, 0.85 * R, cloth)
    d.polygon([(cx - 0.28 * R, cy + 1.62 * R), (cx + 0.28 * R, cy + 1.62 * R), (cx, cy + 1.95 * R)], fill=skin_dark)
    d.polygon(_face_outline(cx, cy, R, rng.uniform(1.15, 1.3)), fill=skin, outline=skin_dark, width=hw)

    # eyes, brows, blush, nose, mouth
    ey, edx = cy + rng.uniform(0.15, 0.28) * R, rng.uniform(0.4, 0.47) * R
    ew, eh = rng.uniform(0.18, 0.22) * R, rng.uniform(0.24, 0.3) * R
    iris = _hsv(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.55, 0.95))
    lash = _mix(hair_dark, (20, 10, 25), 0.6)
    look = rng.uniform(-0.12, 0.12)
    for s in (-1, 1):
        _eye(d, rng, cx + s * edx, ey, ew, eh, s, iris, lash, look)
    if rng.random() < 0.5:
        blush = _mix(skin, (255, 110, 130), 0.45)
        for s in (-1, 1):
            _ellipse(d, cx + s * edx * 1.05, ey + 0.5 * R, 0.15 * R, 0.06 * R, blush)
    d.line([(cx, cy + 0.58 * R), (cx + 0.03 * R, cy + 0.62 * R)], fill=skin_dark, width=hw)
    _mouth(d, mouth, cx, cy + rng.uniform(0.82, 0.92) * R, R, _mix(skin, (90, 30, 30), 0.7))

    # side locks, fringe, hair shine, brows, ahoge, hair clip
    lock = rng.uniform(0.5, 1.3) * R
    for s in (-1, 1):
        d.polygon(
            [(cx + s * 1.1 * R, cy - 0.7 * R), (cx + s * 0.72 * R, cy - 0.7 * R), (cx + s * 0.86 * R, cy + lock), (cx + s * 1.12 * R, cy + lock - 0.25 * R)],
            fill=hair,
            outline=hair_dark,
            width=hw,
        )
    d.polygon(_bangs(rng, bangs, cx, cy, R), fill=hair, outline=hair_dark, width=hw)
    for a0 in (205, 300):
        d.arc([cx - 0.95 * R, cy - 0.95 * R, cx + 0.95 * R, cy + 0.75 * R], a0, a0 + 35, fill=hair_light, width=max(2, int(1.2 * u)))
    if rng.random() < 0.6:
        for s in (-1, 1):
            x = cx + s * edx
            d.arc([x - ew, ey - 1.75 * eh, x + ew, ey - 0.9 * eh], 210, 330, fill=hair_dark, width=hw)
    top = cy - 1.25 * R
    if rng.random() < 0.25:
        s = rng.choice([-1, 1])
        d.polygon(
            [(cx - s * 0.08 * R, top + 0.05 * R), (cx + s * 0.15 * R, top - 0.35 * R), (cx + s * 0.3 * R, top - 0.3 * R), (cx + s * 0.12 * R, top + 0.05 * R)],
            fill=hair,
            outline=hair_dark,
        )
    if rng.random() < 0.3:
        x, y = cx + rng.choice([-1, 1]) * 0.7 * R, cy - 0.65 * R
        d.rectangle([x - 0.16 * R, y - 0.05 * R, x + 0.16 * R, y + 0.05 * R], fill=_hsv(rng.random(), 0.7, 0.95))
    return np.asarray(img.reduce(2))


def render_faces(n: int, seed: int = 0, size: int = 96, start: int = 0) -> np.ndarray:
    """Render faces start..start+n-1 of stream `seed` as an (n, size, size, 3) uint8 array."""
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = render_face(start + i, seed, size)
    return out
