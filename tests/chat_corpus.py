"""A generated corpus of conversations for the template parity tests.

Deterministic (seeded). Half the conversations are in the shape Google's reference
Gemma 3 template defines (one optional leading system message, alternating turns,
trimmed contents); the rest are free-form: several system messages anywhere, runs of
one role, trailing assistant messages, padded, empty and long contents, Norwegian
text with æøå, and text that looks like template syntax.
"""

from __future__ import annotations

import random

TEXTS = [
    "Hei! Kan du hjelpe meg med å skrive en søknad?",
    "Kva er hovudstaden i Noreg?",
    "Hva betyr «dugnad»? Forklar kort.",
    "Skriv ein tittel og ei ingress til denne saka.",
    "Blåbærsyltetøy på brødskiva er best, sa Ærlige Øystein.",
    "Summarise the article in two sentences.",
    "Ja.",
    "Nei, det stemmer ikkje heilt.",
    "Svar bare med ett ord.",
    "Du er en hjelpsom assistent som svarer på bokmål.",
    "Du svarar alltid på nynorsk.",
    "Kilde [1]: Nasjonalbiblioteket ligger i Oslo og Mo i Rana.",
    "Tabell:\n| år | tal |\n|---|---|\n| 2024 | 12 |",
    "Kode: `for i in range(3): print(i)`",
    "Template-lookalikes: {{ .System }} {{- end }} {% if x %} {# c #} $system",
    'Quotes " and """ and \\n stay literal.',
    "Emoji 🇳🇴 and CJK 日本語 and combining å (a\u030a).",
    "<start_of_turn> in text is only text here",
    "Linje én\nLinje to\n\nAvsnitt tre",
    "Tabs\tand  double  spaces",
]

PADDINGS = ["", "", "", " ", "\n", "  \n\t", "\n\n"]


def _text(rng: random.Random, *, padded: bool) -> str:
    roll = rng.random()
    if roll < 0.06:
        text = ""
    elif roll < 0.12:
        # long content, a few thousand characters
        text = " ".join(rng.choice(TEXTS) for _ in range(rng.randint(40, 120)))
    else:
        text = rng.choice(TEXTS)
    if padded and text:
        text = rng.choice(PADDINGS) + text + rng.choice(PADDINGS)
    return text


def reference_shaped(rng: random.Random) -> list[dict]:
    """One optional leading system message, then user/assistant alternating."""
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": _text(rng, padded=False).strip()})
    turns = rng.randint(1, 7)
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": _text(rng, padded=False).strip()})
    return messages


def free_form(rng: random.Random) -> list[dict]:
    roles = ["system", "user", "user", "assistant", "assistant"]
    length = rng.randint(0, 10)
    return [
        {"role": rng.choice(roles), "content": _text(rng, padded=True)} for _ in range(length)
    ]


def corpus(size: int = 600, seed: int = 2026) -> list[list[dict]]:
    rng = random.Random(seed)
    return [reference_shaped(rng) if i % 2 else free_form(rng) for i in range(size)]


def in_reference_domain(messages: list[dict]) -> bool:
    """Whether Google's reference template defines the rendering: at most one system
    message, first; user/assistant strictly alternating from user; trimmed contents."""
    if not messages:
        return False
    rest = messages[1:] if messages[0]["role"] == "system" else messages
    if not rest:
        return False
    for i, message in enumerate(rest):
        if message["role"] != ("user" if i % 2 == 0 else "assistant"):
            return False
    return all(m["content"] == m["content"].strip() for m in messages)


def typed(messages: list[dict], rng: random.Random, *, images: bool) -> list[dict]:
    """The conversation with each content as a list of typed parts, as transformers and
    OpenAI-style clients send it: the text split into padded pieces (Google's template
    trims each piece), and, with `images`, image parts among a user's text."""
    result = []
    for message in messages:
        text = message["content"]
        count = max(0, min(len(text) - 1, rng.randint(0, 2)))
        cuts = sorted(rng.sample(range(1, len(text)), count)) if count else []
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        parts = [{"type": "text", "text": rng.choice(PADDINGS) + p} for p in pieces if p.strip()]
        if message["role"] == "user" and images:
            for _ in range(rng.randint(0, 2)):
                parts.insert(rng.randint(0, len(parts)), {"type": "image"})
        if message["role"] == "system" or not parts:
            # A system message renders by its first part's text, untrimmed.
            parts = [{"type": "text", "text": text}] + parts[1:]
        result.append({"role": message["role"], "content": parts})
    return result


def typed_corpus(size: int = 600, seed: int = 2027) -> list[list[dict]]:
    """Typed conversations in the shape Google's template defines, with images."""
    rng = random.Random(seed)
    return [typed(reference_shaped(rng), rng, images=True) for _ in range(size)]


def string_form(messages: list[dict]) -> list[dict]:
    """Each typed text content as the one string it renders as (trimmed parts joined)."""
    return [
        {"role": m["role"], "content": m["content"][0]["text"] if m["role"] == "system"
         else "".join(p["text"].strip() for p in m["content"] if p["type"] == "text")}
        for m in messages
    ]
