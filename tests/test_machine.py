"""The machine facts the prompts state: the solution interpreter's ML packages with versions,
probed once per run and kept in the run directory until the interpreter changes."""

from __future__ import annotations

import importlib.metadata
import json
import stat
import sys
from pathlib import Path

from aide_tui.run.launch import probe_modules
from aide_tui.run.machine import MACHINE_FILE, installed_packages, visible_gpus


def counting_python(tmp_path: Path) -> tuple[str, Path, Path]:
    """An interpreter that logs each start, with an extra module directory on its path."""
    calls, extra = tmp_path / "calls", tmp_path / "extra"
    extra.mkdir()
    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho started >> "{calls}"\nPYTHONPATH="{extra}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), calls, extra


def starts(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_packages_are_named_by_distribution_with_the_installed_version(tmp_path):
    found = dict(installed_packages(sys.executable, tmp_path).packages)
    assert found["numpy"] == importlib.metadata.version("numpy")
    assert found["scikit-learn"] == importlib.metadata.version("scikit-learn")  # the module is sklearn
    assert "sklearn" not in found and "torch-not-installed" not in found
    described = installed_packages(sys.executable, tmp_path).describe()
    assert f"scikit-learn {importlib.metadata.version('scikit-learn')}" in described


def test_a_resumed_run_reuses_the_answer_until_the_interpreter_changes(tmp_path):
    python, calls, extra = counting_python(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = installed_packages(python, run_dir)
    assert starts(calls) == 1 and (run_dir / MACHINE_FILE).exists()

    probe_modules.cache_clear()  # a new process: only the run directory remembers
    assert installed_packages(python, run_dir) == first
    assert starts(calls) == 1

    (extra / "newpkg").mkdir()  # a package installed where the interpreter looks
    probe_modules.cache_clear()
    assert installed_packages(python, run_dir) == first
    assert starts(calls) == 2
    saved = json.loads((run_dir / MACHINE_FILE).read_text())
    assert str(extra) in saved["stamp"]["path"]


def test_an_interpreter_that_cannot_be_asked_is_said_to_be_unknown(tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    packages = installed_packages(str(broken), tmp_path)
    assert not packages.probed and packages.describe() == ""  # the prompt then says they could not be listed
    assert not (tmp_path / MACHINE_FILE).exists()  # nothing saved: the next run asks again


def test_gpus_are_the_device_files_narrowed_by_cuda_visible_devices(tmp_path):
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    devices = str(tmp_path / "nvidia[0-9]*")
    assert visible_gpus({}, devices) == 2
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1"}, devices) == 1
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2"}, devices) == 2
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}, devices) == 0
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, devices) == 0
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0"}, str(tmp_path / "none[0-9]*")) == 0


def test_an_interpreter_without_any_ml_package_says_so(tmp_path):
    bare = tmp_path / "python"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S -I "$@"\n')  # no site-packages: the stdlib only
    bare.chmod(0o755)
    packages = installed_packages(str(bare), tmp_path)
    assert packages.probed and packages.packages == ()
    assert packages.describe() == "none, only the standard library"
