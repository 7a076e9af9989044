"""The learning benchmarks run end to end at their ``--quick`` sizes."""

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / 'benchmarks'


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f'benchmark_{name}', BENCHMARKS / f'{name}.py'
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def trifeature() -> ModuleType:
    return _load('trifeature')


def test_trifeature_quick(
    trifeature: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trifeature.main(['--quick', '--out', str(tmp_path)]) == 0
    with (tmp_path / 'trifeature.csv').open() as f:
        rows = list(csv.DictReader(f))
    methods = [r['method'] for r in rows]
    oracles = ['Oracle: one-hot, late', 'Oracle: + joint']
    expected = list(trifeature.DEFAULT_METHODS)
    assert methods == oracles + expected
    late, joint = rows[:2]  # known factors: all of R and U; S only jointly
    assert float(late['R']) == float(joint['U1']) == 1.0
    assert float(joint['S']) > 0.9 > 0.7 > float(late['S'])
    for row in rows:
        for column in trifeature.COLUMNS:  # balanced accuracies and S's AUROC
            assert 0.0 <= float(row[column]) <= 1.0
    assert (tmp_path / 'trifeature.png').stat().st_size > 0
    out = capsys.readouterr().out
    assert '| method | R | U1 | U2 | S | S_auroc |' in out
    assert '| chance | 10 | 10 | 10 | 50 | 50 |' in out
    assert all(f'| {m} |' in out for m in methods)


def test_trifeature_combines_runs_of_one_seed_each(
    trifeature: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One process per seed, then one table: the mean and spread over the files."""
    header = ['method', 'seed', *trifeature.COLUMNS, 'seconds']
    paths = []
    for seed, r in ((0, 0.5), (1, 0.7)):
        path = tmp_path / f'seed{seed}.csv'
        rows = [['DeCUR', str(seed), str(r), '0.2', '0.3', '0.5', '0.5', '60']]
        path.write_text('\n'.join(','.join(x) for x in [header, *rows]) + '\n')
        paths.append(path)
    out = tmp_path / 'all'
    assert trifeature.main(['--combine', *map(str, paths), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert '| DeCUR | 60.0 ± 14.1 | 20.0 ± 0.0 |' in printed
    assert '2 seed(s)' in printed and '2.0 min of training' in printed
    with (out / 'trifeature.csv').open() as f:
        assert [r['seed'] for r in csv.DictReader(f)] == ['0', '1']
    assert (out / 'trifeature.png').stat().st_size > 0
    with pytest.raises(ValueError, match='more than one file'):
        trifeature.read_rows([paths[0], paths[0]])


def test_trifeature_methods_subset(trifeature: ModuleType) -> None:
    args = trifeature.parse(['--quick', '--methods', 'Nope'])
    with pytest.raises(ValueError, match='unknown methods'):
        trifeature.run(args)


def test_trifeature_summary_and_table(trifeature: ModuleType) -> None:
    rows = [
        {
            'method': 'A',
            'seed': s,
            'R': r,
            'U1': 0.1,
            'U2': 0.2,
            'S': 0.5,
            'S_auroc': 0.6,
        }
        for s, r in enumerate([0.9, 1.0])
    ]
    summary = trifeature.summarise(rows)
    mean, spread = summary['A']['R']
    assert mean == pytest.approx(95.0)
    assert spread == pytest.approx(7.0710678, rel=1e-6)
    assert '| A | 95.0 ± 7.1 | 10.0 ± 0.0 | 20.0 ± 0.0 | 50.0 ± 0.0 | 60.0 ± 0.0 |' in (
        trifeature.table(summary)
    )


def test_barlow_gram_form_against_lightly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both Barlow Twins give one value; ours is the faster one at any size
    where N < K (here N=32, K=512: the K x K matrix already dominates)."""
    barlow = _load('barlow')
    args = ['barlow.py', '--n', '32', '--k', '512', '--repeats', '3']
    monkeypatch.setattr(sys, 'argv', args)
    assert barlow.main() == 0


def test_comm_step_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The timing itself is checked by running the script, not here (noise)."""
    assert _load('comm_step').main(['--repeats', '1']) in (0, 1)
    out = capsys.readouterr().out
    assert 'CoMM, fusion 64' in out and 'CoMM, fusion 512' in out and 'x DeCUR' in out


def test_trifeature_rows_are_bit_identical_for_a_seed(
    trifeature: ModuleType, tmp_path: Path
) -> None:
    rows = []
    for run in ('a', 'b'):
        args = ['--quick', '--methods', 'DeCUR', 'CoMM', '--seed-offset', '3']
        assert trifeature.main([*args, '--out', str(tmp_path / run)]) == 0
        with (tmp_path / run / 'trifeature.csv').open() as f:
            rows.append(
                [
                    {k: v for k, v in r.items() if k != 'seconds'}
                    for r in csv.DictReader(f)
                ]
            )
    assert rows[0] == rows[1]
    assert {r['seed'] for r in rows[0]} == {'3'}


def test_trifeature_learnability_check_runs(
    trifeature: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check itself needs ~1500 steps (see docs/baselines.md); here it runs."""
    assert trifeature.main(['--quick', '--learnability', '3']) in (0, 1)
    out = capsys.readouterr().out
    assert 'supervised, held-out combinations: shape' in out and 'texture1' in out


def test_trifeature_without_synergy_pretrains_once(
    trifeature: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--no-synergy`` skips the biased pretraining; S stays empty, not 0."""
    biased = []
    pretrain = trifeature.pretrain

    def counting(*args: object, **kwargs: object) -> object:
        biased.append(kwargs['biased'])
        return pretrain(*args, **kwargs)

    monkeypatch.setattr(trifeature, 'pretrain', counting)
    args = ['--quick', '--no-synergy', '--methods', 'DeCUR', '--out', str(tmp_path)]
    assert trifeature.main(args) == 0
    assert biased == [False]
    with (tmp_path / 'trifeature.csv').open() as f:
        (row,) = csv.DictReader(f)
    assert row['S'] == row['S_auroc'] == 'nan' and 0 <= float(row['R']) <= 1
    assert '| n/a | n/a |' in capsys.readouterr().out
    out = tmp_path / 'again'
    combine = ['--combine', str(tmp_path / 'trifeature.csv'), '--out', str(out)]
    assert trifeature.main(combine) == 0
    assert '| n/a | n/a |' in capsys.readouterr().out


def test_trifeature_logs_every_loss_term(
    trifeature: ModuleType, tmp_path: Path
) -> None:
    """``--log-dir`` keeps each pretraining's loss terms, one folder per run."""
    logs = tmp_path / 'logs'
    args = ['--quick', '--methods', 'DeCUR', 'Cross BT', '--log-dir', str(logs)]
    assert trifeature.main([*args, '--log-every', '1', '--out', str(tmp_path)]) == 0
    for run in ('seed0_unbiased', 'seed0_biased'):
        with (logs / 'DeCUR' / run / 'metrics.csv').open() as f:
            rows = list(csv.DictReader(f))
        assert [int(r['step']) for r in rows] == [0, 1]  # --quick: 2 steps
        terms = {'train_loss', 'train_loss_common', 'train_loss_unique'}
        terms |= {'train_loss_intra1', 'train_loss_intra2'}
        assert terms <= set(rows[0]) and all(float(r['train_loss']) > 0 for r in rows)
    assert (logs / 'Cross_BT' / 'seed0_biased' / 'metrics.csv').is_file()


def test_trifeature_other_methods(trifeature: ModuleType, tmp_path: Path) -> None:
    """The methods a default run leaves out still train and are scored."""
    others = ['Single BT', 'SimCLR-cross', 'VICReg-cross']
    args = ['--quick', '--out', str(tmp_path), '--methods', *others]
    assert trifeature.main(args) == 0
    with (tmp_path / 'trifeature.csv').open() as f:
        assert [r['method'] for r in csv.DictReader(f)] == others


def test_monitor_overhead_runs(capsys: pytest.CaptureFixture[str]) -> None:
    monitors = _load('monitors')
    args = ['--n', '16', '--k', '64', '--repeats', '2', '--every', '2']
    status = monitors.main([*args, '--max-overhead', '100'])
    out = capsys.readouterr().out
    assert status == 0 and 'amortised at every=2' in out and 'PASS' in out
    assert monitors.main([*args, '--max-overhead', '0']) == 1  # nothing is free


def test_common_share_estimates_on_known_subspaces() -> None:
    """Two feature sets sharing 8 of 32 directions: the canonical correlations
    find 8 (and random pairings none), so the significant share is 8/32."""
    common_share = _load('common_share')
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((2000, 8))
    mix_x, _ = np.linalg.qr(rng.standard_normal((32, 32)))  # rotations
    mix_y, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    x = np.hstack([shared, rng.standard_normal((2000, 24))]) @ mix_x
    y = np.hstack([shared, rng.standard_normal((2000, 24))]) @ mix_y
    rho = common_share.canonical_correlations(x, y)
    assert len(rho) == 32 and np.all(np.diff(rho) <= 1e-12)
    assert rho[7] > 0.99 > 0.3 > rho[8]  # chance level about sqrt(24 / 2000)
    shares = common_share.pair_shares(x, y, seed=0)
    assert shares['significant'] == pytest.approx(8 / 32)
    assert shares['rho_gt_0.5'] == pytest.approx(8 / 32)
    assert common_share.snap(0.3) == 0.25 and common_share.snap(0.8) == 0.75


def test_verify_cmx_maps_every_name() -> None:
    """benchmarks/verify_cmx.py names each of our CMX tensors as CMX does
    (the comparison itself needs a CMX checkout)."""
    import timm

    from torchgeo_decur.models.cmx import CMXSegmentationModel

    verify = _load('verify_cmx')
    encoders = [timm.create_model('mit_b0', num_classes=0) for _ in range(2)]
    keys = list(CMXSegmentationModel(encoders, num_classes=3).state_dict())
    names = [verify.cmx_name(k) for k in keys]
    assert len(set(names)) == len(names)
    expected = [
        ('encoders.0.block1.0.attn.q.weight', 'backbone.block1.0.attn.q.weight'),
        (
            'encoders.1.patch_embed2.proj.weight',
            'backbone.extra_patch_embed2.proj.weight',
        ),
        ('encoders.1.norm4.bias', 'backbone.extra_norm4.bias'),
        (
            'rectify.2.channel_mlp.0.weight',
            'backbone.FRMs.2.channel_weights.mlp.0.weight',
        ),
        ('fuse.1.attention.kv2.weight', 'backbone.FFMs.1.cross.cross_attn.kv2.weight'),
        (
            'fuse.0.embed.4.running_var',
            'backbone.FFMs.0.channel_emb.channel_embed.4.running_var',
        ),
        ('fuse.3.norm.weight', 'backbone.FFMs.3.channel_emb.norm.weight'),
        ('decoder.mlp_stage.0.linear.weight', 'decode_head.linear_c4.proj.weight'),
        ('decoder.fuse_stage.1.running_mean', 'decode_head.linear_fuse.1.running_mean'),
        ('head.1.bias', 'decode_head.linear_pred.bias'),
    ]
    for ours, theirs in expected:
        assert verify.cmx_name(ours) == theirs


def test_demo_mineral_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/demo_mineral.py end to end on a few small locations, with
    the haze switched off for the data and restored afterwards."""
    from torchgeo_decur.lab import world

    bench = _load('demo_mineral')
    haze = world._S2_HAZE
    args = ['--root', str(tmp_path / 'd'), '--locations', '16', '--size', '40']
    args += ['--steps', '2', '--seeds', '0', '--without', 'haze']
    assert bench.main([*args, '--methods', 'Random init']) == 0
    assert world._S2_HAZE == haze
    out = capsys.readouterr().out
    assert 'without haze' in out and 'supervised convnet_small, seed 0' in out
    assert 'band statistics probe' in out and 'Random init: land_cover' in out
    assert (tmp_path / 'd' / 'without.json').read_text() == '["haze"]'
    with bench.world_without(['haze', 'gain']):
        assert world._S2_HAZE == 0 and world._S2_BAND_JITTER == 0
    assert world._S2_HAZE == haze
    with pytest.raises(
        ValueError, match=r"without \['haze'\], not without \['clouds'\]"
    ):
        bench.main([*args[:-1], 'clouds'])


def test_transfer_random_encoders_follow_the_encoders_mapping() -> None:
    """The baseline matches a task configured with ``encoders`` (no model1)."""
    from torchgeo_decur.tasks import DeCURTask

    transfer = _load('transfer')
    small = {'model': 'convnet_small', 'model_kwargs': {'widths': [4, 8, 8, 16]}}
    task = DeCURTask(
        modalities=['s1', 's2c'],
        encoders={'s1': small, 's2c': {**small, 'in_channels': 13}},
        projector_dims=[16, 16],
    )
    random = transfer.random_encoders(task)
    for mine, trained in zip(random, task.encoders.values(), strict=True):
        shapes = {k: v.shape for k, v in trained.state_dict().items()}
        assert {k: v.shape for k, v in mine.state_dict().items()} == shapes
    assert random[1].state_dict()['stages.0.0.weight'].shape[1] == 13
