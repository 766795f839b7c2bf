"""Ship the top-level terraform/, ansible/ and templates/ folders inside the wheel.

They live at the repository's top level (where operators look for them); a wheel installed
from an index must still find them, so the build copies them to orchestrator/_shipped/.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = ("terraform", "ansible", "templates")


class BuildWithAssets(build_py):
    def run(self):
        super().run()
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "orchestrator" / "_shipped"
        for name in ASSETS:
            src = here / name
            if src.is_dir():
                shutil.copytree(src, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "__pycache__"))


setup(cmdclass={"build_py": BuildWithAssets})
