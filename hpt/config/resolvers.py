"""OmegaConf resolvers hpt's yaml uses; registered before Hydra composes the config."""

from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def package_path(relative: str) -> str:
    """Absolute path of a file shipped inside the installed ``hpt`` package (e.g. a reward module)."""
    path = PACKAGE_DIR / relative
    if not path.exists():
        raise FileNotFoundError(f"hpt ships no file {relative!r} (looked for {path})")
    return str(path)


def register() -> None:
    if not OmegaConf.has_resolver("hpt_path"):
        OmegaConf.register_new_resolver("hpt_path", package_path)
