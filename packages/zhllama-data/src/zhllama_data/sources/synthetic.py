"""`synthetic`: an offline corpus of simple Simplified-Chinese children's stories.

Story i of a source is `generate_story(seed + i)`: a fresh `random.Random(seed + i)` casts two
characters (name, kind, pronoun), picks places, objects and feelings, then fills an opening, a
plot and an ending from `synthetic_plots`. Each story depends only on its own number, so any
story can be regenerated alone, sources with overlapping ranges agree, and the output is the same
on every machine and Python version (only `choice`, `sample` and `random` are used, whose
results Python keeps stable for a given seed).

The stories are the data of `just demo` and of most tests: a tiny Llama trained on them should
learn their structure (从前… → a problem → dialogue in “” → a resolution → 从那以后…).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from zhllama.errors import ZhllamaError

from zhllama_data.sources import synthetic_plots as P
from zhllama_data.sources import synthetic_words as W

_KIDS = {"小女孩": W.GIRL_NAMES, "小男孩": W.BOY_NAMES}


@dataclass
class SyntheticConfig:
    num_stories: int = 50_000
    seed: int = 0


def _character(rng: random.Random, taken: set[str]) -> dict[str, str]:
    kind, measure, move, water = rng.choice(W.CREATURES)
    if kind in _KIDS:
        pron = "她" if kind == "小女孩" else "他"
        pool = _KIDS[kind]
    else:
        pron = rng.choice("他她")
        # Most animals get a pet name (跳跳, 毛毛); some a child's name of their gender.
        human = W.GIRL_NAMES if pron == "她" else W.BOY_NAMES
        pool = W.PET_NAMES if rng.random() < 0.6 else human
    name = rng.choice(pool)
    while name in taken:
        name = rng.choice(pool)
    taken.add(name)
    return {"name": name, "kind": kind, "m": measure, "move": move, "p": pron, "water": water}


def _cast(rng: random.Random) -> dict[str, str]:
    """Every slot a template may use, drawn once per story so the story stays consistent."""
    taken: set[str] = set()
    a, b = _character(rng, taken), _character(rng, taken)
    obj, objm = rng.choice(W.OBJECTS)
    wish, wish_done = rng.choice(W.WISHES)
    spot, spot2, spot3 = rng.sample(W.SPOTS, 3)
    home = rng.choice(W.WATER_HOMES if a["water"] else W.LAND_HOMES)
    v = {
        "A": a["name"],
        "Ak": a["kind"],
        "Am": a["m"],
        "Amove": a["move"],
        "Ap": a["p"],
        "B": b["name"],
        "Bk": b["kind"],
        "Bm": b["m"],
        "Bmove": b["move"],
        "Bp": b["p"],
        "they": "她们" if a["p"] == b["p"] == "她" else "他们",
        "fam": rng.choice(W.FAMILY),
        "home": home,
        "dest": rng.choice(W.DESTINATIONS),
        "spot": spot,
        "spot2": spot2,
        "spot3": spot3,
        "shelter": rng.choice(W.SHELTERS),
        "obj": obj,
        "objm": objm,
        "color": rng.choice(W.COLORS),
        "food": rng.choice(W.FOODS),
        "food_c": rng.choice(W.FOOD_CONTAINERS),
        "drink": rng.choice(W.DRINKS),
        "adj": rng.choice(W.ADJECTIVES),
        "looks": rng.choice(W.LOOKS),
        "hobby": rng.choice(W.HOBBIES),
        "season": rng.choice(W.SEASON_TIMES),
        "weather": rng.choice(W.WEATHER),
        "storm": rng.choice(W.STORMS),
        "pos": rng.choice(W.POS_FEELINGS),
        "neg": rng.choice(W.NEG_FEELINGS),
        "posadv": rng.choice(W.POS_ADVERBS),
        "negadv": rng.choice(W.NEG_ADVERBS),
        "say": rng.choice(W.SPEAK_VERBS),
        "ask": rng.choice(W.ASK_VERBS),
        "wish": wish,
        "wish_done": wish_done,
        "fail": rng.choice(W.FAILS),
        "advice": rng.choice(W.ADVICE),
        "gift": rng.choice(W.GIFTS),
        "contest": rng.choice(W.CONTESTS),
    }
    v["build"], v["build_fall"] = rng.choice(W.BUILDS)
    # Slots that are templates themselves (they name the characters) are filled first.
    trouble, fix = rng.choice(W.TROUBLES)
    v["trouble"], v["fix"] = trouble.format(**v), fix.format(**v)
    fear, scene, brave = rng.choice(W.FEARS)
    v["fear"], v["fear_scene"], v["fear_brave"] = fear, scene.format(**v), brave.format(**v)
    return v


def _steps(rng: random.Random, plot: tuple[tuple, ...]) -> list[str]:
    out = []
    for step in plot:
        if isinstance(step[0], float):
            if rng.random() < step[0]:
                out.append(rng.choice(step[1:]))
        else:
            out.append(rng.choice(step))
    return out


def generate_story(number: int) -> str:
    """The story with this number: the same text on every call and every machine."""
    rng = random.Random(number)
    v = _cast(rng)
    plot, morals = rng.choice(P.PLOTS)
    v["moral"] = W.MORALS[rng.choice(morals)]

    intro = [rng.choice(P.OPENERS), *rng.sample(P.TRAITS, rng.choice((0, 1, 1, 2)))]
    body = [rng.choice(P.SCENES), *_steps(rng, plot)]
    ending = [rng.choice(P.CLOSERS)]
    if rng.random() < 0.5:
        ending.insert(rng.choice((0, 1)), rng.choice(P.MORAL_LINES))
    # Paragraphs: who the hero is / what happened / how it ended.
    template = "\n".join("".join(part) for part in (intro, body, ending))
    return template.format(**v)


class SyntheticSource:
    """Stories `seed`, `seed + 1`, … `seed + num_stories - 1`."""

    name = "synthetic"

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()
        if self.config.num_stories < 0:
            raise ZhllamaError(f"num_stories must be 0 or more, not {self.config.num_stories}")

    def __len__(self) -> int:
        return self.config.num_stories

    def story(self, i: int) -> str:
        return generate_story(self.config.seed + i)

    def stories(self) -> Iterator[str]:
        for i in range(self.config.num_stories):
            yield generate_story(self.config.seed + i)
