"""Draw the brand images: an electricity meter, its dial's needle a lightning bolt above the
energy register.

Run through `scripts/brand`. Sizes follow Home Assistant's brands rules: icon 256x256 (and
512x512 @2x), logo with the same height, all PNG with transparency. No red and no badge: Home
Assistant marks errors with those on the same tiles and pickers.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parents[1] / "custom_components" / "smart_energy_meter" / "brand"
TEAL = (0, 137, 123, 255)
AMBER = (255, 193, 7, 255)
WHITE = (255, 255, 255, 255)
INK = (38, 50, 56, 255)


def draw_icon(size: int) -> Image.Image:
    """The square icon, drawn at 4x and scaled down for smooth edges."""
    big = size * 4
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = big / 64  # drawing unit: the icon is designed on a 64x64 grid

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (x0 * u, y0 * u, x1 * u, y1 * u)

    d.rounded_rectangle(box(2, 2, 62, 62), radius=12 * u, fill=TEAL)
    # The meter's dial: an arc with a scale of ticks inside it.
    d.arc(box(9, 9, 55, 55), start=195, end=345, fill=WHITE, width=round(3.5 * u))
    for angle in (205, 237.5, 270, 302.5, 335):
        a = math.radians(angle)
        inner, outer = 14.5, 17.5
        d.line(
            [
                ((32 + inner * math.cos(a)) * u, (32 + inner * math.sin(a)) * u),
                ((32 + outer * math.cos(a)) * u, (32 + outer * math.sin(a)) * u),
            ],
            fill=WHITE,
            width=round(2.5 * u),
        )
    # The needle: a lightning bolt from the dial's hub up the scale.
    bolt = [(39, 12), (27, 29), (33, 29), (28, 40), (41, 23), (35, 23)]
    d.polygon([(x * u, y * u) for x, y in bolt], fill=AMBER)
    # The energy register below the dial: a counter window, its last digit turning (amber).
    d.rounded_rectangle(box(11, 43, 53, 57), radius=2.5 * u, fill=INK)
    font = ImageFont.load_default(size=round(11 * u))
    for i, digit in enumerate("0427"):
        centre = (17 + i * 10) * u, 50.3 * u
        colour = AMBER if i == 3 else WHITE
        d.text(centre, digit, font=font, fill=colour, anchor="mm")
    return img.resize((size, size), Image.Resampling.LANCZOS)


def draw_logo(height: int) -> Image.Image:
    """The icon followed by the name."""
    icon = draw_icon(height)
    font = ImageFont.load_default(size=int(height * 0.36))
    text = "Smart Energy Meter"
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    width = height + int(height * 0.15) + (right - left) + int(height * 0.1)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    img.paste(icon, (0, 0), icon)
    y = (height - (bottom - top)) // 2 - top
    ImageDraw.Draw(img).text((height + int(height * 0.15), y), text, font=font, fill=INK)
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    draw_icon(256).save(OUT / "icon.png", optimize=True)
    draw_icon(512).save(OUT / "icon@2x.png", optimize=True)
    draw_logo(128).save(OUT / "logo.png", optimize=True)
    draw_logo(256).save(OUT / "logo@2x.png", optimize=True)
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(OUT.parents[2]), Image.open(path).size)


if __name__ == "__main__":
    main()
