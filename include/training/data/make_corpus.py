"""Generate ``corpus.txt``: the demo training text, written by this script and nothing else.

Why generated: the project must train offline (no hub, no downloads) and ship no third-party text whose licence
would need checking. Short templated stories have a small vocabulary and a regular grammar, so a tiny model
(hidden 128, 2 layers) learns visible structure from them in a minute on a CPU. The output is deterministic
(seeded), so regenerating it gives the same bytes: ``python include/training/data/make_corpus.py``.
"""

from __future__ import annotations

import random
from pathlib import Path

SEED = 8
STORIES = 1000
NAMES = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lena", "Milo", "Nora"]
ANIMALS = ["cat", "dog", "fox", "owl", "bear", "duck", "frog", "mouse", "rabbit", "turtle"]
PLACES = ["the park", "the forest", "the river", "the garden", "the hill", "the beach", "the farm", "the town"]
THINGS = ["a red ball", "a blue kite", "a small boat", "a shiny stone", "a big box", "a green hat", "an old map"]
FEELINGS = ["happy", "sad", "brave", "tired", "curious", "scared", "proud", "calm"]
ACTIONS = ["run", "sing", "jump", "read", "swim", "dance", "draw", "play"]
WEATHER = ["sunny", "rainy", "windy", "cold", "warm", "quiet"]


def story(rng: random.Random) -> str:
    """One short story: a fixed arc (meet, want, problem, help, end) with random fillers."""
    name, friend = rng.sample(NAMES, 2)
    animal, other = rng.sample(ANIMALS, 2)
    place, thing = rng.choice(PLACES), rng.choice(THINGS)
    feeling, action, weather = rng.choice(FEELINGS), rng.choice(ACTIONS), rng.choice(WEATHER)
    lines = [
        f"Once upon a time, there was a little {animal} named {name}.",
        f"{name} liked to {action} in {place}.",
        f"One {weather} day, {name} found {thing}.",
        f"{name} felt {feeling} and wanted to show it to {friend} the {other}.",
        rng.choice(
            [
                f"But {thing} was stuck under a tree, and {name} could not reach it.",
                f"But the path to {place} was long, and {name} got lost.",
                f"But {friend} was busy and did not want to {action}.",
            ]
        ),
        f'"Can you help me?" asked {name}. "Yes, I can," said {friend}.',
        f"Together they went to {place} and had a lot of fun.",
        rng.choice(
            [
                f"At the end of the day, {name} was {rng.choice(FEELINGS)} and went home to sleep.",
                f"From that day on, {name} and {friend} were best friends.",
                f"{name} learned that it is good to ask for help.",
            ]
        ),
    ]
    return " ".join(lines)


def main() -> None:
    rng = random.Random(SEED)
    text = "\n".join(story(rng) for _ in range(STORIES)) + "\n"
    out = Path(__file__).with_name("corpus.txt")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text.encode())} bytes, {STORIES} stories)")


if __name__ == "__main__":
    main()
