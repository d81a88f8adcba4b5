"""Licence acceptance before a download.

A licence with use restrictions (NB-License, the full models) is shown with its
restrictions and must be accepted once, at a terminal or with --accept-license; the
acceptance is remembered in $XDG_CACHE_HOME/borealis-local/licenses.json. Licences
without restrictions need no acceptance. The text shown is `borealis_local.licences`.
"""

from __future__ import annotations

from collections.abc import Callable

from borealis_local.catalog import License, Model
from borealis_local.errors import LicenseNotAcceptedError
from borealis_local.hub.state import load_state, now, save_state

LICENSES_FILE = "licenses.json"


def _license_key(license: License) -> str:
    # Name and URL: a licence that moves or is renamed is asked again.
    return f"{license.name} <{license.url}>"


def license_accepted(license: License) -> bool:
    return _license_key(license) in load_state(LICENSES_FILE)


def accept_license(license: License) -> None:
    accepted = load_state(LICENSES_FILE)
    accepted[_license_key(license)] = {"accepted_at": now()}
    save_state(LICENSES_FILE, accepted)


def require_license(
    model: Model, *, accept: bool = False, ask: Callable[[Model], bool] | None = None
) -> None:
    """Return once the model's licence is accepted: earlier, now by `accept`, or by `ask`
    (a question at a terminal). Licences without use restrictions need no acceptance."""
    license = model.license
    if not license.restrictions or license_accepted(license):
        return
    if accept or (ask is not None and ask(model)):
        accept_license(license)
        return
    if ask is not None:
        raise LicenseNotAcceptedError(
            f"you did not accept {license.name}, so nothing was downloaded"
        )
    restrictions = " ".join(f"({n}) {text}" for n, text in enumerate(license.restrictions, 1))
    raise LicenseNotAcceptedError(
        f"{model.name} is under {license.name} ({license.url}), which restricts its use: "
        f"{restrictions} Read it, then run again with --accept-license (there is no "
        "terminal here to ask in); it is asked once"
    )
