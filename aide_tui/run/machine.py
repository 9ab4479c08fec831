"""What the machine gives a node's script, probed once per run, so the prompts can say it.

A model that is told "numpy, pandas and scikit-learn are the usual ones"
writes for those, or imports something that is not there; told the real
packages with their versions, whether there is a GPU, how many cores and how
much memory, it sizes the solution to the machine.  The packages come from
the solution interpreter itself (the preload probe in launch.py, asked about
more names), and are kept in the run directory: a resumed run asks again only
when the interpreter or one of its module directories changed (installing or
removing a package changes a directory's modification time).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..project import write_atomic
from ..settings import Settings
from .launch import probe_modules

MACHINE_FILE = "machine.json"  # in the run directory

# Module names of the packages ML solutions reach for; only those installed are stated.
ML_MODULES = (
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "xgboost",
    "lightgbm",
    "catboost",
    "torch",
    "torchvision",
    "tensorflow",
    "keras",
    "jax",
    "transformers",
    "statsmodels",
    "polars",
    "pyarrow",
    "optuna",
    "imblearn",
    "category_encoders",
    "numba",
    "matplotlib",
)
NVIDIA_DEVICES = "/dev/nvidia[0-9]*"


@dataclass(frozen=True)
class InstalledPackages:
    """The ML packages the solution interpreter has, as (distribution, version)."""

    packages: tuple[tuple[str, str], ...]
    probed: bool = True  # False: the interpreter could not be asked

    def describe(self) -> str:
        """'numpy 2.1.3, pandas 2.2.3, scikit-learn 1.5.2'; '' only when unknown."""
        if not self.packages:
            return "none, only the standard library" if self.probed else ""
        return ", ".join(f"{dist} {version}".strip() for dist, version in self.packages)


def _stamp(python: str, path: tuple[str, ...] | list[str]) -> dict:
    """What must stay the same for a saved answer to still hold, read without starting a process."""

    def mtime(directory: str) -> int | None:
        try:
            return os.stat(directory).st_mtime_ns
        except OSError:
            return None

    return {
        "python": python,
        "executable": os.path.realpath(shutil.which(python) or python),
        "path": list(path),
        "mtimes": [mtime(d) for d in path],
    }


def installed_packages(python: str, run_dir: Path) -> InstalledPackages:
    """The ML packages `python` can import, from the run's saved answer if it still holds."""
    saved_file = run_dir / MACHINE_FILE
    try:
        saved = json.loads(saved_file.read_text(encoding="utf-8"))
        if saved["stamp"] == _stamp(python, saved["stamp"]["path"]):
            return InstalledPackages(tuple((str(d), str(v)) for d, v in saved["packages"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    probe = probe_modules(python, ML_MODULES)
    if probe is None:
        return InstalledPackages((), probed=False)
    found: dict[str, tuple[str, str]] = {}
    for _, dist, version in probe.found:  # torch and torchvision are two; sklearn is scikit-learn
        found.setdefault(dist.lower(), (dist, version))
    packages = tuple(found.values())
    write_atomic(saved_file, json.dumps({"stamp": _stamp(python, probe.path), "packages": packages}, indent=1) + "\n")
    return InstalledPackages(packages)


@dataclass(frozen=True)
class Machine:
    """What a node gets beyond its cores, memory and time (those are settings)."""

    packages: InstalledPackages
    gpus: float  # GPUs a node may use: visible devices here, or the Ray reservation


def probe_machine(settings: Settings, run_dir: Path) -> Machine:
    """Once per run: the solution interpreter's ML packages, and the GPUs a node can use."""
    python = settings.python or sys.executable
    gpus = settings.node_gpus if settings.executor == "ray" else visible_gpus()
    return Machine(installed_packages(python, run_dir), gpus)


def visible_gpus(environ: Mapping[str, str] | None = None, devices: str = NVIDIA_DEVICES) -> int:
    """NVIDIA GPUs a script started here could use: the device files (`/dev/nvidia0`, ...;
    the sandbox binds them), narrowed by CUDA_VISIBLE_DEVICES, which is passed on to the script."""
    found = len(glob.glob(devices))
    chosen = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if chosen is None or not found:
        return found
    ids = [part.strip() for part in chosen.split(",") if part.strip()]
    if ids and ids[0].startswith("-"):  # "-1": CUDA sees nothing
        return 0
    return min(found, len(ids))


__all__ = [
    "InstalledPackages",
    "Machine",
    "MACHINE_FILE",
    "ML_MODULES",
    "installed_packages",
    "probe_machine",
    "visible_gpus",
]
