"""The user's extension modules (``hpt.imports``), imported in the driver and in every Ray worker.

Gates, demonstration losses, λ schedules and verifiers are found by name in registries that are
filled when a module is imported. A user's own module therefore has to be imported in every process
that reads a registry: the driver (start-up checks), the task runner (gates), the actor workers
(losses) and the reward workers (verifiers). The driver imports the list from the config and
publishes it in ``HPT_IMPORTS`` (its own environment, inherited by a local Ray cluster, and Ray's
``runtime_env`` for every worker); ``hpt.plugin``, which verl runs in every process during
``import verl``, imports the same list there.

An entry is a dotted module name (``my_pkg.gates``) or a path to a ``.py`` file. A dotted module the
driver finds only through its working directory (``python -m`` puts it on ``sys.path``; Ray workers
run elsewhere) is found in the workers too: the driver publishes the directory holding its top-level
package in ``HPT_IMPORT_PATHS``, which workers append to ``sys.path``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

logger = logging.getLogger(__name__)

ENV_VAR = "HPT_IMPORTS"
PATHS_ENV_VAR = "HPT_IMPORT_PATHS"
_SEPARATOR = os.pathsep  # ":" on Linux; module names and paths never contain it

_imported: dict[str, ModuleType] = {}


class ExtensionImportError(ImportError):
    """A module listed in ``hpt.imports`` could not be found or failed while importing."""


def _is_file(entry: str) -> bool:
    return entry.endswith(".py") or os.sep in entry


def normalise(entries: Iterable[str]) -> list[str]:
    """Entries as they will be imported everywhere: files as absolute paths (workers may run elsewhere)."""
    out = []
    for raw in entries:
        entry = str(raw).strip()
        if not entry:
            continue
        out.append(str(Path(entry).expanduser().resolve()) if _is_file(entry) else entry)
    return out


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    return f"hpt_user_{path.stem}_{digest}"


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ExtensionImportError(f"hpt.imports: file {str(path)!r} does not exist; fix the path or remove the entry")
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExtensionImportError(f"hpt.imports: {str(path)!r} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_one(entry: str) -> ModuleType:
    """Import one entry once per process; a clear ``ExtensionImportError`` when it cannot be."""
    if entry in _imported:
        return _imported[entry]
    try:
        module = _import_file(Path(entry)) if _is_file(entry) else importlib.import_module(entry)
    except ExtensionImportError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == entry or entry.startswith(f"{exc.name}."):
            raise ExtensionImportError(
                f"hpt.imports: no module named {entry!r}; install it or add its directory to PYTHONPATH "
                "(in every node's environment), or list the .py file's path instead"
            ) from exc
        raise ExtensionImportError(f"hpt.imports: importing {entry!r} failed: {exc}") from exc
    except Exception as exc:
        raise ExtensionImportError(f"hpt.imports: importing {entry!r} failed: {type(exc).__name__}: {exc}") from exc
    _imported[entry] = module
    logger.info("imported user extension %s", entry)
    return module


def import_all(entries: Iterable[str]) -> list[ModuleType]:
    """Import every entry, in order."""
    return [import_one(entry) for entry in normalise(entries)]


def search_paths(entries: Iterable[str]) -> list[str]:
    """Directories holding the top-level package of each imported dotted entry (where a worker must look)."""
    roots: list[str] = []
    for entry in normalise(entries):
        if _is_file(entry):
            continue
        top = sys.modules.get(entry.split(".")[0])
        file = getattr(top, "__file__", None)
        if file is None:  # a namespace package: no single directory to publish
            continue
        path = Path(file).resolve()
        root = str(path.parent.parent if path.name == "__init__.py" else path.parent)
        if root not in roots:
            roots.append(root)
    return roots


def encode(entries: Iterable[str]) -> str:
    """The ``HPT_IMPORTS`` value for a list of entries."""
    return _SEPARATOR.join(normalise(entries))


def from_env() -> list[str]:
    """The entries the driver published in ``HPT_IMPORTS`` (empty when unset)."""
    return [entry for entry in os.environ.get(ENV_VAR, "").split(_SEPARATOR) if entry]


def import_from_env() -> list[ModuleType]:
    """Import what ``HPT_IMPORTS`` lists (called by ``hpt.plugin`` in every process)."""
    for root in os.environ.get(PATHS_ENV_VAR, "").split(_SEPARATOR):
        if root and root not in sys.path:
            sys.path.append(root)  # after everything else: never shadows an installed package
    return import_all(from_env())
