"""Pairing codes: a public nameplate that picks the window plus two secret words.

Entropy: the nameplate (1-99) only routes the joiner to the right window and is not
secret. The two words come from a fixed list of 256, drawn with :mod:`secrets`, so the
secret part holds 16 bits. SPAKE2 admits no offline guessing, and a window dies after
one failed exchange, so an attacker who races the real device wins with probability
1/65536 per window the user opens (the figure magic-wormhole accepts for its codes).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass

from wifisync.errors import UsageError

_WORD_TEXT = """
acid acorn actor adult agent alarm album alley amber anchor angle ankle apple apron arena
armor arrow atlas attic award bacon badge bagel baker bamboo banjo barn basil basin beach
beard beaver bench berry bison blade blanket blossom board bonus boot bottle bowl brain
branch brick bridge broom bucket buffalo bundle butter cabin cactus camel candle canoe
canyon carbon carpet carrot castle cattle cellar cement chalk cherry chess cider cinema
circus citrus clay cliff clock cloud clover coast cobra cocoa comet copper coral cotton
cougar crane crater crayon cricket crown crystal curtain daisy dancer denim desert diamond
dinner dolphin donkey dragon drum eagle elbow ember engine fabric falcon feather fence ferry
fiddle finch flame flute forest fossil fountain fox galaxy garden garlic ginger glacier goat
gravel guitar hammer harbor hazel helmet honey hornet igloo island ivory jacket jaguar jelly
jigsaw jungle kayak kettle kitten koala ladder lagoon lantern lemon lentil lilac lizard
lobster locket magnet mango maple marble meadow melon mirror mitten monkey mosaic muffin
mustard napkin nectar needle nickel noodle nutmeg oasis ocean olive onion orbit orchid otter
paddle panda parrot peach peanut pebble pelican pepper piano pickle pigeon pillow pilot pine
pirate planet plum pocket pony poppy potato puffin pumpkin puzzle quartz quilt rabbit radar
radish raven ribbon river robin rocket saddle salmon sandal scarf shadow shell silver sketch
sparrow spider sponge squid statue summit sunset swan tablet teapot thistle thunder tiger
timber tomato torch tractor trumpet tulip turtle umbrella valley velvet violin volcano wagon
walnut walrus whale willow window wizard yogurt zebra zipper
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())

WORD_COUNT = 2
NAMEPLATES = range(1, 100)
SECRET_BITS = WORD_COUNT * 8  # log2(len(WORDS)) == 8
_WORD_SET = frozenset(WORDS)


@dataclass(frozen=True, slots=True)
class PairingCode:
    """``NAMEPLATE-word-word``, e.g. ``42-maple-violin``."""

    nameplate: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return "-".join([str(self.nameplate), *self.words])

    @property
    def password(self) -> bytes:
        """What SPAKE2 is keyed with: the whole code, nameplate included."""
        return str(self).encode("ascii")

    @classmethod
    def generate(cls, taken_nameplates: Collection[int] = ()) -> PairingCode:
        """A fresh random code whose nameplate is not in use by another open window."""
        free = [n for n in NAMEPLATES if n not in taken_nameplates]
        if not free:
            raise UsageError("too many pairing windows are open")
        return cls(secrets.choice(free), tuple(secrets.choice(WORDS) for _ in range(WORD_COUNT)))

    @classmethod
    def parse(cls, text: str) -> PairingCode:
        """Read a code as typed: case and surrounding spaces do not matter, typos are caught."""
        parts = text.strip().lower().replace(" ", "-").split("-")
        parts = [p for p in parts if p]
        if len(parts) != 1 + WORD_COUNT or not parts[0].isdigit():
            raise UsageError(f"{text!r} is not a pairing code (it looks like 42-maple-violin)")
        nameplate = int(parts[0])
        if nameplate not in NAMEPLATES:
            raise UsageError(f"{text!r} is not a pairing code (the number is 1-99)")
        unknown = [w for w in parts[1:] if w not in _WORD_SET]
        if unknown:
            raise UsageError(f"{unknown[0]!r} is not a pairing-code word; check the spelling")
        return cls(nameplate, tuple(parts[1:]))
