"""Draw the brand images: a meter dial whose needle is a lightning bolt, with a theft mark.

Run through `scripts/brand`. Sizes follow Home Assistant's brands rules: icon 256x256 (and
512x512 @2x), logo with the same height, all PNG with transparency.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parents[1] / "custom_components" / "smart_energy_meter" / "brand"
TEAL = (0, 137, 123, 255)
AMBER = (255, 193, 7, 255)
RED = (229, 57, 53, 255)
WHITE = (255, 255, 255, 255)
INK = (38, 50, 56, 255)


def draw_icon(size: int) -> Image.Image:
    """The square icon, drawn at 4x and scaled down for smooth edges."""
    big = size * 4
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = big / 64  # drawing unit: the icon is designed on a 64x64 grid
    d.rounded_rectangle((2 * u, 2 * u, 62 * u, 62 * u), radius=12 * u, fill=TEAL)
    # The meter's dial: an arc with ticks.
    d.arc((10 * u, 12 * u, 54 * u, 56 * u), start=200, end=340, fill=WHITE, width=int(4 * u))
    # The lightning bolt.
    bolt = [(35, 14), (22, 36), (31, 36), (27, 52), (42, 28), (33, 28), (38, 14)]
    d.polygon([(x * u, y * u) for x, y in bolt], fill=AMBER)
    # The theft indicator: a red dot with an exclamation mark.
    d.ellipse((44 * u, 40 * u, 60 * u, 56 * u), fill=RED, outline=WHITE, width=int(1.5 * u))
    d.rectangle((51 * u, 43 * u, 53 * u, 50 * u), fill=WHITE)
    d.rectangle((51 * u, 52 * u, 53 * u, 54 * u), fill=WHITE)
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
