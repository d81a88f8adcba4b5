"""What a Borealis licence says, as text: one source for every place that shows it.

`license_text` is the licence as published (name, URL, summary, use restrictions): the
LICENSE block of every Modelfile and what `ollama create` stores. `license_prompt` is
the same content laid out for a terminal, read before the first pull. Whether a licence
was accepted is the hub's business (`borealis_local.hub.licences`); this module only
writes text, so the Modelfile generator needs nothing from the download code.
"""

from __future__ import annotations

from borealis_local.catalog import License, Model

RESTRICTIONS_HEADING = "Use restrictions:"


def _restrictions(license: License, indent: str = "") -> list[str]:
    """The heading and the numbered restrictions, or nothing for an open licence."""
    if not license.restrictions:
        return []
    items = [f"{indent}{n}. {text}" for n, text in enumerate(license.restrictions, 1)]
    return [RESTRICTIONS_HEADING, *items]


def license_text(model: Model) -> str:
    """The LICENSE block: name, URL and use restrictions as published, nothing invented."""
    lic = model.license
    lines = [lic.name, lic.url, "", lic.summary]
    if lic.restrictions:
        lines += ["", *_restrictions(lic)]
    lines += ["", f"The licence itself is at {lic.url}; this summary does not replace it."]
    return "\n".join(lines)


def license_prompt(model: Model) -> str:
    """`license_text` as a person reads it at a terminal before the first pull: one
    sentence naming the model, licence and URL, then the summary and the restrictions,
    indented, without blank lines or the closing note (the URL is in the first line)."""
    lic = model.license
    lines = [f"{model.name} is licensed under {lic.name}: {lic.url}", lic.summary]
    return "\n".join(lines + _restrictions(lic, indent="  "))
