"""tools/device_wheels.sh and tools/device_check.sh, the kit of the checks that need a CUDA GPU.

On a CPU-only machine the check must stop at once with a clear message (it never reports CUDA tests
that skipped as done); the wheels must be installable on a Python that has torch and no registry.
"""
import os
import subprocess
import sys
import zipfile

import pytest
import torch

from .conftest import REPO_ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script runs the real checks")
def test_device_check_stops_without_cuda_and_says_so(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, WHEELS=str(tmp_path / "none"), OUT=str(tmp_path / "out"))
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "device_check.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no CUDA device" in result.stdout
    environment = (tmp_path / "out" / "env.txt").read_text()
    assert "NO CUDA DEVICE" in environment and "detectron2" in environment


@pytest.mark.slow
def test_device_wheels_are_pure_or_for_the_named_python(tmp_path):
    """The kit for the running Python's version: detectron2 patched into a py3-none-any wheel that
    holds no compiled extension, every dependency the device image lacks, nothing for another Python."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    dest = tmp_path / "whl"
    subprocess.run(["bash", str(REPO_ROOT / "tools" / "device_wheels.sh"), str(dest), version], check=True)
    wheels = sorted(p.name for p in dest.glob("*.whl"))
    names = {w.split("-")[0].lower() for w in wheels}
    assert {"pb1_detectron2", "fvcore", "iopath", "yacs", "omegaconf", "hydra_core", "pycocotools"} <= names
    tag = f"cp{version.replace('.', '')}"
    assert all(w.endswith("-none-any.whl") or f"-{tag}-" in w for w in wheels), wheels
    detectron2 = next(dest.glob("pb1_detectron2-*.whl"))
    with zipfile.ZipFile(detectron2) as archive:
        files = archive.namelist()
    assert "detectron2/modeling/meta_arch/build.py" in files
    assert not [f for f in files if f.endswith((".so", ".pyd"))]
