"""Scrub settings from the command line and imgomop.toml [scrub]."""

from __future__ import annotations

import os
from pathlib import Path

from extractor.config import Config
from extractor.scrub.instance import ScrubSettings

PROFILES_DIR = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "pre-irb"
DEFAULT_PIXEL_SCRIPTS = (PROFILES_DIR / "demo-devices.script",)
ALLOWLIST = Path(__file__).resolve().parents[2] / "vocab" / "seeds" / "description_allowlist.csv"


class ScrubConfigError(ValueError):
    """A scrub setting that cannot be used; the message names it."""


def resolve_profile(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ScrubConfigError(f"{path}: profile file not found")
        return path.resolve()
    shipped = PROFILES_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ScrubConfigError(f"unknown profile {name_or_path!r}: use one of {names}, or a .toml file")
    return shipped


def _existing(paths: list[Path], what: str) -> tuple[str, ...]:
    for path in paths:
        if not path.is_file():
            raise ScrubConfigError(f"{path}: {what} not found")
    return tuple(str(p.resolve()) for p in paths)


def scrub_settings(
    config: Config,
    destination: str,
    profile: str | None,
    pixel_scripts: list[Path] | None,
    allow_scripts: list[Path] | None,
) -> ScrubSettings:
    section = config.extra.get("scrub", {})
    base = config.source_file.parent if config.source_file else Path.cwd()
    configured = lambda key: [base / p for p in section.get(key, [])]  # noqa: E731
    jitter = config.extra.get("deid", {}).get("jitter_days_max", 30)
    return ScrubSettings(
        profile_path=str(resolve_profile(profile or section.get("profile", DEFAULT_PROFILE))),
        destination=destination if destination.startswith("gs://") else str(Path(destination).resolve()),
        key=os.environ["IMGOMOP_DEID_KEY"],
        allowlist_path=str(ALLOWLIST),
        allow_scripts=_existing(allow_scripts or configured("allow_scripts"), "CTP filter script"),
        pixel_scripts=_existing(pixel_scripts or configured("pixel_scripts") or list(DEFAULT_PIXEL_SCRIPTS), "CTP pixel script"),
        jitter_days_max=int(jitter),
    )
