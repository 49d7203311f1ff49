"""Electrode sites: the allow-list and the placements that are never allowed (L23, HZ-08).

A site name is ``<region>-<side>``. Both pads of a channel sit on the same region and side:
a pair across the body (left ↔ right) could carry current across the trunk. This module is
pure data and checks; it never decides amplitudes.
"""

from __future__ import annotations

__all__ = ["ALLOWED_REGIONS", "FORBIDDEN_WORDS", "SIDES", "allowed_sites", "check_channel_sites"]

#: Regions a consumer program may use (docs/safety-basis.md §6.4; lower back is TENS-only, see
#: program).
ALLOWED_REGIONS: tuple[str, ...] = (
    "calf",
    "thigh-front",
    "thigh-back",
    "foot",
    "gluteal",
    "lower-back",
    "forearm",
    "upper-arm",
    "shoulder",
)
SIDES: tuple[str, ...] = ("left", "right")

#: Words that name a forbidden placement, with the reason given to the user (L23).
FORBIDDEN_WORDS: dict[str, str] = {
    "head": "transcerebral current (L23)",
    "temple": "transcerebral current (L23)",
    "face": "transcerebral current (L23)",
    "eye": "stimulation of the eyes (L23)",
    "mouth": "laryngeal or pharyngeal spasm (L23)",
    "neck": "laryngeal spasm or the carotid sinus reflex (L23)",
    "throat": "laryngeal spasm (L23)",
    "carotid": "the carotid sinus reflex (L23)",
    "chest": "a current path across the heart (L23)",
    "thorax": "a current path across the heart (L23)",
    "heart": "a current path across the heart (L23)",
    "breast": "a current path across the heart (L23)",
    "upper-back": "a chest and upper back path across the heart (L23)",
    "abdomen": "the abdomen or a pregnant uterus (L23, docs/safety-basis.md §6.1)",
}


def allowed_sites() -> list[str]:
    """Every allowed site name, e.g. ``calf-left``."""
    return [f"{region}-{side}" for region in ALLOWED_REGIONS for side in SIDES]


def _check_site(site: str) -> tuple[str, str]:
    for word, reason in FORBIDDEN_WORDS.items():
        if word in site:
            raise ValueError(f"site '{site}' is never allowed: {reason}")
    region, _, side = site.rpartition("-")
    if region not in ALLOWED_REGIONS or side not in SIDES:
        raise ValueError(
            f"site '{site}' is not on the allow-list; use one of {', '.join(allowed_sites())}"
        )
    return region, side


def check_channel_sites(site: str, return_site: str | None) -> None:
    """Check one channel's pad sites.

    Raises:
        ValueError: a site is forbidden or unknown, or the two pads cross the body or regions.
    """
    region, side = _check_site(site)
    if return_site is None:
        return
    other_region, other_side = _check_site(return_site)
    if other_side != side:
        raise ValueError(
            f"pads on '{site}' and '{return_site}' cross the body; both pads of a channel "
            "must be on the same side (L23)"
        )
    if other_region != region:
        raise ValueError(
            f"pads on '{site}' and '{return_site}' are on different regions; both pads of a "
            "channel go on the same muscle or region (L23)"
        )
