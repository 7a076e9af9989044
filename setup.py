"""Build hook: the wheel carries a copy of the top-level ``conf/``.

``conf/`` stays the source of the configs; building copies every YAML into
the built package as ``torchgeo_decur/conf`` (byte-identical), where
:mod:`torchgeo_decur.configs` finds them when the package is installed
without its clone. Everything else is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithConfigs(build_py):
    """``build_py`` that also copies ``conf/**/*.yaml`` into the package."""

    def run(self) -> None:
        """Build the package, then add the configs."""
        super().run()
        source = Path(__file__).parent / 'conf'
        target = Path(self.build_lib) / 'torchgeo_decur' / 'conf'
        for path in sorted(source.rglob('*.yaml')):
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


setup(cmdclass={'build_py': BuildWithConfigs})
