"""Regenerate the demo product page's images and web font (storefront_widget/demo_assets/); not run by make.

The files are committed, so nobody needs this to run the demo. To regenerate them:
    python -m venv /tmp/gen && /tmp/gen/bin/pip install pillow fonttools brotli
    /tmp/gen/bin/python scripts/demo-assets.py
Images are drawn, not downloaded, with enough grain that they weigh what a real product photo does (40-90 kB).
The font is DejaVu Serif Bold from Debian's fonts-dejavu-core, cut to Latin-1 as WOFF2 (its licence is beside it).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from fontTools import subset
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent.parent / "storefront_widget" / "demo_assets"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf")
LICENCE = Path("/usr/share/doc/fonts-dejavu-core/copyright")
PRODUCTS = [  # file, background, body, size
    ("mug-front", (236, 228, 214), (59, 130, 246), 1000),
    ("mug-side", (230, 222, 205), (37, 99, 235), 1000),
    ("mug-top", (240, 233, 220), (29, 78, 216), 1000),
    ("tote", (244, 236, 220), (217, 119, 6), 600),
    ("towel", (232, 240, 232), (34, 197, 94), 600),
    ("candle", (246, 232, 228), (239, 68, 68), 600),
    ("board", (240, 230, 215), (234, 88, 12), 600),
]


def photo(background: tuple[int, int, int], body: tuple[int, int, int], size: int, seed: int) -> Image.Image:
    """A lit object on a backdrop, with film grain so it compresses like a photograph."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for y in range(size):  # a soft vertical light falloff
        shade = int(18 * y / size)
        draw.line([(0, y), (size, y)], fill=tuple(max(0, c - shade) for c in background))
    s = size / 1000
    draw.ellipse([250 * s, 760 * s, 750 * s, 840 * s], fill=tuple(c - 40 for c in background))  # shadow
    draw.rounded_rectangle([300 * s, 300 * s, 700 * s, 800 * s], radius=int(60 * s), fill=body)
    draw.ellipse([640 * s, 420 * s, 820 * s, 640 * s], outline=body, width=int(40 * s))
    draw.rectangle([330 * s, 330 * s, 380 * s, 760 * s], fill=tuple(min(255, c + 60) for c in body))  # highlight
    image = image.filter(ImageFilter.GaussianBlur(radius=3 * s))
    grain = Image.merge("RGB", [Image.effect_noise((size, size), 60) for _ in range(3)])
    image = Image.blend(image, grain, 0.12)
    return image.rotate(rng.uniform(-3, 3), fillcolor=background)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for index, (name, background, body, size) in enumerate(PRODUCTS):
        photo(background, body, size, index).save(OUT / f"{name}.webp", "WEBP", quality=80, method=6)
    options = subset.Options()
    options.flavor = "woff2"
    options.layout_features = ["kern", "liga"]
    font = subset.load_font(str(FONT), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=range(0x20, 0x100))
    subsetter.subset(font)
    subset.save_font(font, str(OUT / "display-serif.woff2"), options)
    shutil.copy(LICENCE, OUT / "display-serif.LICENSE.txt")
    for path in sorted(OUT.iterdir()):
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
