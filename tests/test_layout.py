"""The shape of the package: the core never imports the lab, no import cycle,
no private names across modules, the weight layers in one direction."""

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / 'torchgeo_decur'

#: Private names one module may import from another, and why.
PRIVATE_ALLOWED: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts).removesuffix('.__init__')


def imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every import of a file; name '' for ``import m``."""
    me = module_name(path)
    package = me if path.name == '__init__.py' else me.rpartition('.')[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, '') for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')[: len(package.split('.')) - node.level + 1]
            target = node.module or ''
            if node.level:
                target = '.'.join([*base, *([node.module] if node.module else [])])
            found += [(target, alias.name) for alias in node.names]
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob('*.py'))}


def internal_edges() -> dict[str, set[str]]:
    """Module -> package modules it imports (``from m import x`` names m.x
    where that is a module), without package ``__init__`` re-exports."""
    inits = {m for m, p in MODULES.items() if p.name == '__init__.py'}
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        if module in inits:
            continue
        for target, name in imports(path):
            full = f'{target}.{name}' if name else target
            hit = full if full in MODULES else target
            if hit in MODULES and hit not in inits and hit != module:
                edges.setdefault(module, set()).add(hit)
    return edges


def test_core_never_imports_the_lab() -> None:
    offenders = [
        f'{module} imports {target}'
        for module, path in MODULES.items()
        if not module.startswith('torchgeo_decur.lab')
        and module != 'torchgeo_decur.cli'
        for target, name in imports(path)
        if f'{target}.{name}'.startswith('torchgeo_decur.lab')
    ]
    assert offenders == []
    # and at run time: importing every core package loads nothing of the lab
    core = [
        'torchgeo_decur.' + p
        for p in ('datasets', 'datamodules', 'transforms', 'losses', 'models')
    ]
    core += ['torchgeo_decur.tasks', 'torchgeo_decur.explain', 'torchgeo_decur.export']
    code = (
        f'import sys; import {", ".join(core)}; '
        "lab = [m for m in sys.modules if m.startswith('torchgeo_decur.lab')]; "
        'assert not lab, lab'
    )
    result = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_import_cycle() -> None:
    edges = internal_edges()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, ' -> '.join([*visiting, module])
        visiting.append(module)
        for target in sorted(edges.get(module, ())):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)


def test_private_names_stay_in_their_module() -> None:
    found = {
        f'{module} <- {target}.{name}'
        for module, path in MODULES.items()
        for target, name in imports(path)
        if name.startswith('_')
        and not name.startswith('__')
        and target.startswith('torchgeo_decur')
        and target != module
    }
    assert found <= PRIVATE_ALLOWED, found - PRIVATE_ALLOWED


def test_weight_layers_have_one_direction() -> None:
    """table <- files <- enums: the data knows nothing, the file reader
    knows the data but not the enums."""
    edges = internal_edges()
    weights = 'torchgeo_decur.models.weights'
    assert not {e for e in edges.get(f'{weights}.table', ()) if 'torchgeo_decur' in e}
    assert f'{weights}.enums' not in edges.get(f'{weights}.files', set())
    assert f'{weights}.table' in edges[f'{weights}.files']
    assert {f'{weights}.files', f'{weights}.table'} <= edges[f'{weights}.enums']
