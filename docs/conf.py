"""Sphinx configuration of the torchgeo-decur documentation.

Build with ``make docs`` (HTML into ``docs/_build/html``, warnings are errors,
nitpicky). Nothing is fetched at build time: there is no intersphinx, so
references to other projects' objects (torch, TorchGeo, Lightning, ...) cannot
resolve and are listed in ``nitpick_ignore_regex`` by package; references to
this package's own objects must resolve.
"""

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sphinx.ext import napoleon

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torchgeo_decur  # noqa: E402

# -- Project information ------------------------------------------------------

project = 'torchgeo-decur'
author = 'torchgeo-decur contributors'
copyright = 'torchgeo-decur contributors'
version = release = torchgeo_decur.__version__

# -- General configuration ----------------------------------------------------

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',  # Google-style docstrings, as TorchGeo's
    'sphinx.ext.mathjax',
    'myst_parser',  # the pages are Markdown
]

source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']

# Warnings are errors (``-W``) and every reference is checked (``-n``).
nitpicky = True

#: Objects of other projects: without intersphinx (the build must not need the
#: network) Sphinx cannot link them, so their references are not checked. One
#: entry per package; names of torchgeo_decur itself are always checked.
THIRD_PARTY = (
    'captum',
    'jsonargparse',
    'kornia',
    'lightly',
    'lightning',
    'matplotlib',
    'numpy',
    'rasterio',
    'segmentation_models_pytorch',
    'sklearn',
    'timm',
    'torch',
    'torchgeo',
    'torchmetrics',
    'torchvision',
)
nitpick_ignore_regex = [(r'py:.*', rf'{package}(\..*)?') for package in THIRD_PARTY]
nitpick_ignore_regex += [
    # the standard library (no intersphinx for Python either)
    (r'py:.*', r'(collections\.abc|os|pathlib|_?pickle|random|typing)(\..*)?'),
]
nitpick_ignore = [
    # TorchGeo's exception, as napoleon writes a ``Raises:`` entry
    ('py:exc', 'DatasetNotFoundError'),
    # private bases of the RGB-D datamodules: the subclasses document
    # everything a user passes or calls
    ('py:class', 'torchgeo_decur.datamodules.rgbd._RGBDPairDataModule'),
    ('py:class', 'torchgeo_decur.datamodules.rgbd._RGBDSegmentationDataModule'),
]

# -- autodoc and napoleon -----------------------------------------------------

autodoc_default_options = {
    'show-inheritance': True,
    'special-members': '__getitem__, __len__',
    'member-order': 'bysource',
}
autodoc_typehints = 'description'
autodoc_typehints_description_target = 'documented_params'
autodoc_class_signature = 'separated'
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- MyST ---------------------------------------------------------------------

myst_enable_extensions = ['colon_fence', 'dollarmath']
myst_heading_anchors = 3

# -- HTML ---------------------------------------------------------------------

html_theme = 'furo'
html_title = f'torchgeo-decur {release}'
html_static_path: list[str] = []
html_show_sourcelink = False


# -- References by defining module ---------------------------------------------
#
# The API reference lists each object once, under the name users import it by
# (``torchgeo_decur.models.convert_input_layer``); docstrings may name it where
# it is defined (``torchgeo_decur.models.weights.files.convert_input_layer``).
# autodoc records that second name for classes (``:canonical:``) but not for
# functions, data or modules. This resolves such a reference to the documented
# object that *is* the same Python object (modules: to the nearest documented
# package). A name that does not import, or an object documented nowhere,
# still fails the nitpicky build.


def _import(name: str) -> object | None:
    """The object a dotted name refers to, or None."""
    parts = name.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return None
            obj = getattr(obj, attr)
        return obj
    return None


def _contexts(node: Any) -> list[str]:
    """Where a name in *node* may be defined, innermost first.

    The documented class and module, and the object whose docstring holds the
    reference (``...:docstring of torchgeo_decur.x.y.f``) with its parents:
    a short name resolves as it would in the defining module.
    """
    contexts = [node.get('py:class'), node.get('py:module')]
    source = node.source or ''
    if 'docstring of ' in source:
        owner = source.rpartition('docstring of ')[2]
        while owner:
            contexts.append(owner)
            owner = owner.rpartition('.')[0]
    if node.get('py:module') and node.get('py:class'):
        contexts.insert(0, f'{node["py:module"]}.{node["py:class"]}')
    return [c for c in contexts if c and c.startswith('torchgeo_decur')]


def _find(target: str, contexts: list[str]) -> tuple[object | None, str]:
    """The object *target* names, absolute or relative to a context."""
    names = [target] if target.startswith('torchgeo_decur.') else []
    names += [f'{context}.{target}' for context in contexts]
    for name in names:
        obj = _import(name)
        if obj is not None:
            return obj, name
    return None, target


def _resolve_by_defining_module(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get('refdomain') != 'py':
        return None
    target = node.get('reftarget', '').removeprefix('.')
    obj, target = _find(target, _contexts(node))
    if obj is None:
        return None
    domain = env.get_domain('py')
    if isinstance(obj, ModuleType):
        name = target.rpartition('.')[0]
        while name and name not in domain.modules:
            name = name.rpartition('.')[0]
        if not name:
            return None
        return domain.resolve_xref(
            env, node['refdoc'], app.builder, 'mod', name, node, contnode
        )
    leaf = target.rpartition('.')[2]
    for name, entry in domain.objects.items():
        if name.rpartition('.')[2] != leaf or entry.aliased:
            continue
        if _import(name) is obj:
            return domain.resolve_xref(
                env,
                node['refdoc'],
                app.builder,
                node['reftype'],
                name,
                node,
                contnode,
            )
    return None


# -- Attribute docstrings -----------------------------------------------------
#
# Napoleon reads the first line of a data, attribute or property docstring as
# "type: description". This package annotates types and writes sentences
# there ("Labels of all pairs: ``{name: LongTensor}``"), so such docstrings
# are left as written.


def _napoleon_except_attributes(
    app: Any, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    if what not in ('data', 'attribute', 'property'):
        napoleon._process_docstring(app, what, name, obj, options, lines)


def setup(app: Any) -> None:
    """Connect the handlers above."""
    napoleons = [
        listener
        for listener in app.events.listeners['autodoc-process-docstring']
        if listener.handler is napoleon._process_docstring
    ]
    if len(napoleons) != 1:
        msg = 'conf.py: did not find napoleon among the docstring handlers'
        raise RuntimeError(msg)
    app.disconnect(napoleons[0].id)
    app.connect('autodoc-process-docstring', _napoleon_except_attributes)
    app.connect('missing-reference', _resolve_by_defining_module)
