"""InsPose: instance-aware networks for single-stage multi-person pose estimation, on detectron2.

torch, torchvision and detectron2 are installed by `make setup` (see README.md): detectron2 is not
on the package registry under its own name, so it is not listed in install_requires.
"""
from setuptools import find_packages, setup

setup(
    name="inspose",
    version="0.1.0",
    description="InsPose: single-stage multi-person pose estimation with dynamic KP-Nets (detectron2)",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["inspose", "inspose.*"]),
    install_requires=["numpy", "opencv-python", "pycocotools", "fvcore", "tqdm"],
)
