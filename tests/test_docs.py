"""The documentation: every code block is run or checked, and the site builds.

Each fenced block of the pages in ``docs/`` is

* ``python``: run, the blocks of a page in order in one namespace, with the
  torch hub cache holding stand-ins for the authors' files of the weights the
  pages load (nothing is downloaded);
* ``yaml``: parsed, and every ``class_path`` checked to import and to take
  the ``init_args`` given, every ``weights`` name to be in TorchGeo's
  registry.

An HTML comment on the line before a block changes that:

* ``<!-- docs-test: skip (reason) -->``: not run (it needs real data or
  weights); the reason is required;
* ``<!-- docs-test: file <path> -->``: the block is that file of the
  repository, verbatim (which another test runs: ``tests/example/``).

Bash blocks are not run; the ``conf/`` files they name must exist.
"""

import enum
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonargparse import ArgumentParser

from .conftest import ROOT

DOCS = ROOT / 'docs'
PAGES = sorted(p for p in DOCS.rglob('*.md') if '_build' not in p.parts)

#: A fenced block, with the docs-test marker on the line before it if any.
#: MyST directives (```{toctree}) have a language in braces and are skipped.
FENCE = re.compile(
    r'^(?:<!-- docs-test: (?P<marker>.*?) -->\n)?'
    r'```(?P<lang>[^\n`]*)\n(?P<code>.*?)^```[ \t]*$',
    re.S | re.M,
)


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    lang: str
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f'{self.page.relative_to(ROOT)}:{self.line}'


def blocks(page: Path, lang: str | None = None) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count('\n', 0, match.start('lang')) + 1
        block = Block(page, line, match['lang'].strip(), match['code'], match['marker'])
        if lang is None or block.lang == lang:
            found.append(block)
    return found


def page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


#: Pages with python blocks to run (marked blocks are skipped or are files).
PYTHON_PAGES = [p for p in PAGES if any(b.marker is None for b in blocks(p, 'python'))]
YAML_BLOCKS = [b for p in PAGES for b in blocks(p, 'yaml')]


def test_pages_exist() -> None:
    assert (DOCS / 'index.md').is_file()
    assert PYTHON_PAGES and YAML_BLOCKS


def test_markers() -> None:
    """Every marker is one of the two kinds; a skip says why."""
    for page in PAGES:
        for block in blocks(page):
            if block.marker is None:
                continue
            kind, _, rest = block.marker.partition(' ')
            assert kind in ('skip', 'file'), f'{block.where}: {block.marker!r}'
            if kind == 'skip':
                assert re.fullmatch(r'\(.+\)', rest.strip()), (
                    f'{block.where}: a skipped block needs a (reason)'
                )
            else:
                assert (ROOT / rest.strip()).is_file(), f'{block.where}: {rest}'


def test_file_blocks_are_the_files() -> None:
    """Blocks marked ``file`` are those files, verbatim (tests/example/)."""
    marked = [
        b for p in PAGES for b in blocks(p) if (b.marker or '').startswith('file')
    ]
    assert marked
    for block in marked:
        path = ROOT / block.marker.partition(' ')[2].strip()
        assert block.code == path.read_text(), f'{block.where} differs from {path}'


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('page', PYTHON_PAGES, ids=page_id)
def test_python_blocks_run(
    page: Path, hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # whatever an example writes lands here
    namespace: dict[str, Any] = {'__name__': '__docs__'}
    ran = 0
    for block in blocks(page, 'python'):
        if block.marker is not None:
            continue
        code = compile(block.code, block.where, 'exec')
        exec(code, namespace)  # the documentation's own examples
        ran += 1
    assert ran


def _class_path_specs(node: object) -> list[dict[str, Any]]:
    """Every mapping with a ``class_path`` in a parsed YAML document."""
    found = []
    if isinstance(node, dict):
        if 'class_path' in node:
            found.append(node)
        for value in node.values():
            found += _class_path_specs(value)
    elif isinstance(node, list):
        for value in node:
            found += _class_path_specs(value)
    return found


def _import(path: str) -> Any:
    module, _, name = path.rpartition('.')
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize('block', YAML_BLOCKS, ids=lambda b: b.where)
def test_yaml_blocks_are_valid(block: Block) -> None:
    from torchgeo.models import get_weight

    import torchgeo_decur  # noqa: F401 - registers the weight names

    config = yaml.safe_load(block.code)
    assert isinstance(config, dict), block.where
    if block.marker is not None:
        return  # the file itself is run by its own test
    specs = _class_path_specs(config)
    assert specs, f'{block.where}: no class_path to check'
    for spec in specs:
        cls = _import(spec['class_path'])
        params = _init_arguments(cls)
        for key, value in (spec.get('init_args') or {}).items():
            assert params is None or key in params, (
                f'{block.where}: {spec["class_path"]} takes no {key!r}'
            )
            if key == 'weights' and isinstance(value, str) and '/' not in value:
                assert get_weight(value) is not None


def _init_arguments(cls: type) -> set[str] | None:
    """The arguments LightningCLI takes for a class (those its ``**kwargs``
    pass to a base included); None if it cannot tell them all."""
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return set(params)
    parser = ArgumentParser()
    parser.add_class_arguments(cls, 'init', fail_untyped=False)
    found = {a.dest.split('.')[1] for a in parser._actions if '.' in a.dest}
    return found if found > set(params) - {'kwargs'} else None


def test_conf_files_named_in_docs_exist() -> None:
    """Every ``conf/...yaml`` the pages or the README name exists."""
    texts = {p: p.read_text() for p in [*PAGES, ROOT / 'README.md']}
    for path, text in texts.items():
        for name in re.findall(r'conf/[\w/.-]+?\.yaml', text):
            assert (ROOT / name).is_file(), f'{path.relative_to(ROOT)}: {name}'


def test_readme_links_exist() -> None:
    """The README's links into the repository (the docs pages) exist."""
    text = (ROOT / 'README.md').read_text()
    links = re.findall(r'\]\(([^)#:]+)(?:#[^)]*)?\)', text)
    assert any(link.startswith('docs/') for link in links)
    for link in links:
        assert (ROOT / link).exists(), link


def test_configs_page_lists_every_config() -> None:
    text = (DOCS / 'configs.md').read_text()
    for config in sorted((ROOT / 'conf').rglob('*.yaml')):
        assert f'`{config.relative_to(ROOT)}`' in text, config


def test_weights_page_lists_every_entry() -> None:
    import torchgeo_decur.models as models
    from torchgeo_decur.models.weights import REGISTRY

    text = (DOCS / 'weights.md').read_text()
    for enum_cls in REGISTRY.values():
        assert getattr(models, enum_cls.__name__) is enum_cls
        for name in enum_cls.__members__:
            assert f'`{enum_cls.__name__}.{name}`' in text, name


def public_modules() -> list[str]:
    """``torchgeo_decur`` and its submodules without a private part."""
    package = importlib.import_module('torchgeo_decur')
    names = ['torchgeo_decur']
    for info in pkgutil.walk_packages(package.__path__, 'torchgeo_decur.'):
        if not any(part.startswith('_') for part in info.name.split('.')):
            names.append(info.name)
    return names


def test_api_pages_cover_every_package() -> None:
    """Each top-level module has its page with an automodule of it."""
    api = DOCS / 'api'
    for name in public_modules():
        if name.count('.') != 1 or name == 'torchgeo_decur.cli':
            continue
        page = api / f'{name.split(".")[1]}.md'
        assert page.is_file(), f'no API page for {name}'
        assert f'.. automodule:: {name}\n   :members:' in page.read_text(), name


def _documented(inventory: dict[str, Any]) -> dict[int, str]:
    """The Python objects (modules included) the site documents, by id."""
    objects: dict[int, str] = {}
    for kind, entries in inventory.items():
        if not kind.startswith('py:'):
            continue
        for name in entries:
            if kind == 'py:module':
                objects[id(importlib.import_module(name))] = name
                continue
            try:
                module, _, attr = name.rpartition('.')
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError, ValueError):
                continue
            objects[id(obj)] = name
    return objects


def test_sphinx_build(tmp_path: Path) -> None:
    """``sphinx-build -W -n`` succeeds and documents every public name.

    Takes about 30 s of CPU (most of it importing the package and its
    dependencies for autodoc; writing the HTML is a few seconds).
    """
    for module in ('sphinx', 'myst_parser', 'furo'):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[docs]'")
    out = tmp_path / 'html'
    cmd = [
        sys.executable,
        '-m',
        'sphinx',
        '-b',
        'html',
        '-W',
        '--keep-going',
        '-n',
        '-q',
        '-d',
        str(tmp_path / 'doctrees'),
        str(DOCS),
        str(out),
    ]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-5000:]
    print(f'sphinx-build: {elapsed:.1f} s')

    # every name of every public module's __all__ is documented, under that
    # module or under a package that re-exports it
    from sphinx.util.inventory import InventoryFile

    with (out / 'objects.inv').open('rb') as f:
        inventory = InventoryFile.load(f, '', lambda *parts: '/'.join(parts))
    documented = _documented(inventory)
    missing = []
    for name in public_modules():
        module = importlib.import_module(name)
        for attr in getattr(module, '__all__', ()):
            if not hasattr(module, attr):
                missing.append(f'{name}.{attr} (named in __all__, not defined)')
                continue
            obj = getattr(module, attr)
            if isinstance(obj, int | float | str | bool | enum.Enum):
                continue  # constants: no identity to compare
            if id(obj) not in documented:
                missing.append(f'{name}.{attr}')
    assert missing == [], f'not in the API reference: {missing}'
