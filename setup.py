"""The packages of the folders this source tree has, under one namespace, `impasto`.

pyproject.toml holds everything else. This stays code because the API image copies no worker/
(and so never installs torch) and the worker image no api/: a fixed package list would fail
their builds on the missing folder.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).parent
# import name -> source folder: the folders stay at the top of the repo, installed under impasto
FOLDERS = {"impasto": "impasto", "impasto.api": "api", "impasto.worker": "worker", "impasto.shared": "shared"}
present = {name: folder for name, folder in FOLDERS.items() if (ROOT / folder / "__init__.py").is_file()}
packages = [
    package
    for name, folder in present.items()
    # namespace packages too: the data folders (static/, migrations/, samples/) are listed, as setuptools asks
    for package in [
        name,
        *(f"{name}.{sub}" for sub in find_namespace_packages(str(ROOT / folder), exclude=["*__pycache__*"])),
    ]
]

setup(package_dir=present, packages=packages)
