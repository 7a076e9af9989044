import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils._python_dispatch import TorchDispatchMode

from torchgeo_decur.losses import DeCURLoss

TERMS = ('common', 'unique', 'intra1', 'intra2')


def off_diagonal(x: Tensor) -> Tensor:
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def reference(
    z1_a: Tensor,
    z1_b: Tensor,
    z2_a: Tensor,
    z2_b: Tensor,
    common_dim: int,
    lambd: float = 0.0051,
    lambd_common: float | None = None,
    lambd_unique: float | None = None,
    lambd_intra1: float | None = None,
    lambd_intra2: float | None = None,
    intra: bool = True,
    decouple: bool = True,
) -> dict[str, Tensor]:
    """The paper's pseudocode, with full K x K correlation matrices."""
    n, k = z1_a.shape
    lc = lambd if lambd_common is None else lambd_common
    lu = lambd if lambd_unique is None else lambd_unique
    l1 = lambd if lambd_intra1 is None else lambd_intra1
    l2 = lambd if lambd_intra2 is None else lambd_intra2
    kc = common_dim if decouple else k
    bn = nn.BatchNorm1d(k, affine=False).to(z1_a.device, z1_a.dtype)
    bn.train()

    def bt(c: Tensor, lam: float) -> Tensor:
        on_diag = torch.diagonal(c).add(-1).pow(2).sum()
        return on_diag + lam * off_diagonal(c).pow(2).sum()

    c = bn(z1_a).T @ bn(z2_a) / n
    c_c = c[:kc, :kc]
    c_u = c[kc:, kc:]
    out = {'common': bt(c_c, lc), 'common_diag': torch.diagonal(c_c).mean()}
    out['offdiag'] = off_diagonal(c_c).pow(2).sum()
    if kc < k:
        on_diag_u = torch.diagonal(c_u).pow(2).sum()
        out['unique'] = on_diag_u + lu * off_diagonal(c_u).pow(2).sum()
        out['unique_diag'] = torch.diagonal(c_u).mean()
        out['unique_absdiag'] = torch.diagonal(c_u).abs().mean()
        out['offdiag'] = out['offdiag'] + off_diagonal(c_u).pow(2).sum()
    else:
        out['unique'] = out['unique_diag'] = torch.zeros(())
        out['unique_absdiag'] = torch.zeros(())
    if intra:
        out['intra1'] = bt(bn(z1_a).T @ bn(z1_b) / n, l1)
        out['intra2'] = bt(bn(z2_a).T @ bn(z2_b) / n, l2)
    else:
        out['intra1'] = out['intra2'] = torch.zeros(())
    out['total'] = sum(out[t] for t in TERMS)
    return out


def make_inputs(n: int, k: int, seed: int = 0, corr: float = 0.7) -> list[Tensor]:
    """Four embeddings with a shared component, so all terms are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, k, generator=g)
    return [
        (corr * base + torch.randn(n, k, generator=g)) * (1 + i) + i for i in range(4)
    ]


def assert_close(actual: Tensor, expected: Tensor, rtol: float = 1e-4) -> None:
    torch.testing.assert_close(
        actual.float(), expected.float().detach(), rtol=rtol, atol=1e-5
    )


# N < K uses Gram matrices, N >= K builds the K x K matrices
SIZES = [(6, 16), (12, 40), (32, 8), (16, 16)]


def common_dims(k: int) -> list[int]:
    return [1, k // 3 + 1, k - 1, k]


CASES = [(n, k, kc) for n, k in SIZES for kc in common_dims(k)]


@pytest.mark.parametrize(('n', 'k', 'kc'), CASES)
def test_matches_reference(n: int, k: int, kc: int) -> None:
    zs = make_inputs(n, k, seed=n + k + kc)
    loss_fn = DeCURLoss(kc)
    loss = loss_fn(*zs)
    expected = reference(*zs, common_dim=kc)
    assert loss.dtype == torch.float32
    assert loss.dim() == 0
    assert_close(loss, expected['total'])
    assert set(loss_fn.terms) == {
        *TERMS,
        'common_diag',
        'unique_diag',
        'unique_absdiag',
        'offdiag',
    }
    for key, value in loss_fn.terms.items():
        assert not value.requires_grad
        assert_close(value, expected[key])


@pytest.mark.parametrize(('n', 'k', 'kc'), CASES)
def test_gradients_match_reference(n: int, k: int, kc: int) -> None:
    zs = [z.double().requires_grad_() for z in make_inputs(n, k, seed=3 * n + k)]
    # float32 maths inside, compare to the float64 reference
    DeCURLoss(kc)(*zs).backward()
    grads = [z.grad for z in zs]
    zs_ref = [z.detach().clone().requires_grad_() for z in zs]
    reference(*zs_ref, common_dim=kc)['total'].backward()
    for g, z in zip(grads, zs_ref, strict=True):
        assert g is not None
        assert z.grad is not None
        torch.testing.assert_close(
            g.double(), z.grad, rtol=1e-3, atol=1e-4 * z.grad.abs().max().item()
        )


@pytest.mark.parametrize('kc', [1792, 64])
def test_large_k_matches_reference(kc: int) -> None:
    # Cancellation check of the Gram path (block Grams by difference)
    n, k = 64, 2048
    zs = make_inputs(n, k, seed=1, corr=3.0)
    loss_fn = DeCURLoss(kc)
    loss = loss_fn(*zs)
    expected = reference(*[z.double() for z in zs], common_dim=kc)
    assert_close(loss, expected['total'], rtol=1e-5)
    for key in TERMS:
        assert_close(loss_fn.terms[key], expected[key], rtol=1e-5)


class _ShapeRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


@pytest.mark.parametrize('intra', [True, False])
def test_no_k_by_k_matrix_when_n_lt_k(intra: bool) -> None:
    n, k = 8, 64
    zs = [z.requires_grad_() for z in make_inputs(n, k)]
    recorder = _ShapeRecorder()
    with recorder:
        DeCURLoss(40, intra=intra)(*zs).backward()
    assert recorder.max_numel < k * k // 4
    # ... whereas the K x K path does build them (the check can fail)
    recorder = _ShapeRecorder()
    with recorder:
        reference(*zs, common_dim=40)['total'].backward()
    assert recorder.max_numel >= k * k // 2


@pytest.mark.parametrize(('n', 'k'), [(6, 16), (32, 8)])
def test_no_intra(n: int, k: int) -> None:
    zs = make_inputs(n, k, seed=5)
    loss_fn = DeCURLoss(5, intra=False)
    loss = loss_fn(*zs)
    expected = reference(*zs, common_dim=5)
    assert_close(loss, expected['common'] + expected['unique'])
    assert loss_fn.terms['intra1'] == 0
    assert loss_fn.terms['intra2'] == 0
    assert_close(loss, reference(*zs, common_dim=5, intra=False)['total'])
    # the b views are not used at all
    zs_b = [zs[0], torch.randn(n, k), zs[2], torch.randn(n, k)]
    assert_close(loss_fn(*zs_b), loss, rtol=1e-6)


@pytest.mark.parametrize(('n', 'k'), [(6, 16), (32, 8)])
def test_no_decouple(n: int, k: int) -> None:
    zs = make_inputs(n, k, seed=6)
    loss_fn = DeCURLoss(3, decouple=False)
    loss = loss_fn(*zs)
    # cross-modal Barlow Twins on all dims + intra-modal terms
    full = reference(*zs, common_dim=k)
    assert_close(loss, full['total'])
    assert_close(loss, reference(*zs, common_dim=3, decouple=False)['total'])
    assert loss_fn.terms['unique'] == 0
    assert_close(loss_fn.terms['common'], full['common'])
    # common_dim is ignored, even beyond K
    assert_close(DeCURLoss(1, decouple=False)(*zs), loss, rtol=1e-6)
    assert_close(DeCURLoss(10 * k, decouple=False)(*zs), loss, rtol=1e-6)
    # and it differs from the decoupled loss
    assert not torch.allclose(DeCURLoss(3)(*zs), loss)


@pytest.mark.parametrize(('n', 'k'), [(6, 16), (32, 8)])
@pytest.mark.parametrize(
    'name', ['lambd_common', 'lambd_unique', 'lambd_intra1', 'lambd_intra2']
)
def test_separate_lambdas(n: int, k: int, name: str) -> None:
    zs = make_inputs(n, k, seed=7)
    kc = 5
    base_fn = DeCURLoss(kc, lambd=0.01)
    base_fn(*zs)
    base = dict(base_fn.terms)
    # an explicit lambda equal to lambd changes nothing
    same_fn = DeCURLoss(kc, lambd=0.01, **{name: 0.01})
    same_fn(*zs)
    for key in TERMS:
        assert_close(same_fn.terms[key], base[key], rtol=1e-6)
    changed_fn = DeCURLoss(kc, lambd=0.01, **{name: 0.5})
    loss = changed_fn(*zs)
    changed_term = {
        'lambd_common': 'common',
        'lambd_unique': 'unique',
        'lambd_intra1': 'intra1',
        'lambd_intra2': 'intra2',
    }[name]
    for key in TERMS:
        if key == changed_term:
            assert changed_fn.terms[key] > base[key]
            assert not torch.allclose(changed_fn.terms[key], base[key], rtol=0.01)
        else:
            assert_close(changed_fn.terms[key], base[key], rtol=1e-6)
    expected = reference(*zs, common_dim=kc, lambd=0.01, **{name: 0.5})
    assert_close(loss, expected['total'])
    assert_close(changed_fn.terms[changed_term], expected[changed_term])


def test_lambd_zero() -> None:
    zs = make_inputs(6, 16)
    loss_fn = DeCURLoss(4, lambd=0.0)
    loss_fn(*zs)
    expected = reference(*zs, common_dim=4, lambd=0.0)
    for key in TERMS:
        assert_close(loss_fn.terms[key], expected[key])


@pytest.mark.parametrize(('n', 'k'), [(8, 128), (64, 16)])
def test_float32_under_autocast(n: int, k: int) -> None:
    zs = [z.bfloat16().requires_grad_() for z in make_inputs(n, k, seed=8)]
    loss_fn = DeCURLoss(k // 2, lambd=0.5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = loss_fn(*zs)
    assert loss.dtype == torch.float32
    zs64 = [z.detach().double() for z in zs]
    expected = reference(*zs64, common_dim=k // 2, lambd=0.5)
    assert_close(loss, expected['total'], rtol=1e-5)
    for key in TERMS:
        assert loss_fn.terms[key].dtype == torch.float32
        assert_close(loss_fn.terms[key], expected[key], rtol=1e-5)
    loss.backward()
    for z in zs:
        assert z.grad is not None
        assert z.grad.dtype == torch.bfloat16


def test_identity_sanity() -> None:
    n, k = 10, 16
    z = make_inputs(n, k)[0]
    loss_fn = DeCURLoss(k)
    loss = loss_fn(z, z, z, z)
    bn = nn.BatchNorm1d(k, affine=False)
    c = bn(z).T @ bn(z) / n
    off = off_diagonal(c).pow(2).sum()
    # only the off-diagonal parts remain, in the common and both intra terms
    assert_close(loss, 3 * 0.0051 * off)
    for key in ('common', 'intra1', 'intra2'):
        assert_close(loss_fn.terms[key], 0.0051 * off)
    assert loss_fn.terms['unique'] == 0
    assert_close(loss_fn.terms['common_diag'], torch.tensor(1.0))
    # with lambd=0 the loss vanishes
    assert DeCURLoss(k, lambd=0.0)(z, z, z, z) < 1e-6


def test_unique_target_zero() -> None:
    # independent modalities: unique dims are already decorrelated, common not
    n, k = 512, 8
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(n, k, generator=g)
    z2 = torch.randn(n, k, generator=g)
    loss_fn = DeCURLoss(4, lambd=0.0, intra=False)
    loss_fn(z1, z1, z2, z2)
    assert loss_fn.terms['unique'] < 0.05
    assert loss_fn.terms['common'] > 3.5
    assert abs(loss_fn.terms['unique_diag']) < 0.1


def test_gather_distributed_without_init_is_noop() -> None:
    zs = make_inputs(6, 16)
    assert not dist.is_initialized()
    assert_close(
        DeCURLoss(4, gather_distributed=True)(*zs), DeCURLoss(4)(*zs), rtol=1e-7
    )


def authors_loss(
    z1_1: Tensor, z1_2: Tensor, z2_1: Tensor, z2_2: Tensor, dim_common: int
) -> Tensor:
    """The weighting of the authors' released code (models/decur.py and
    pretrain_mm.py), written out on one process with K x K matrices."""
    n, k = z1_1.shape
    lambd = 0.0051
    bn = nn.BatchNorm1d(k, affine=False).to(z1_1.dtype).train()

    def bt_loss_single(a: Tensor, b: Tensor) -> Tensor:
        c = bn(a).T @ bn(b) / n
        on_diag = torch.diagonal(c).add(-1).pow(2).sum()
        return on_diag + lambd * off_diagonal(c).pow(2).sum()

    def bt_loss_cross(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        c = bn(a).T @ bn(b) / n
        c_c, c_u = c[:dim_common, :dim_common], c[dim_common:, dim_common:]
        loss_c = (
            torch.diagonal(c_c).add(-1).pow(2).sum()
            + lambd * off_diagonal(c_c).pow(2).sum()
        )
        loss_u = (
            torch.diagonal(c_u).pow(2).sum() + lambd * off_diagonal(c_u).pow(2).sum()
        )
        return loss_c, loss_u

    loss1 = bt_loss_single(z1_1, z1_2)
    loss2 = bt_loss_single(z2_1, z2_2)
    loss12_c, loss12_u = bt_loss_cross(z1_1, z2_1)
    loss12 = (loss12_c + loss12_u) / 2.0
    return (loss1 + loss2 + loss12) / 3


@pytest.mark.parametrize(('n', 'k', 'kc'), [(6, 16, 12), (32, 8, 6), (12, 40, 30)])
def test_official_weighting_matches_authors_code(n: int, k: int, kc: int) -> None:
    zs = [z.double() for z in make_inputs(n, k, seed=7 * n + k)]
    official = DeCURLoss(kc, weighting='official')(*zs)
    assert_close(official, authors_loss(*zs, dim_common=kc).float())
    # the same terms as the paper's Eq. 6, combined differently
    loss_fn = DeCURLoss(kc)
    paper = loss_fn(*zs)
    t = loss_fn.terms
    assert_close(paper, t['common'] + t['unique'] + t['intra1'] + t['intra2'])
    assert not torch.allclose(paper, official)
    # without the intra-modal terms: (L_c + L_u) / 2
    no_intra = DeCURLoss(kc, intra=False, weighting='official')(*zs)
    assert_close(no_intra, (t['common'] + t['unique']) / 2)


def test_official_weighting_gradients() -> None:
    zs = [z.double().requires_grad_() for z in make_inputs(8, 24, seed=5)]
    DeCURLoss(18, weighting='official')(*zs).backward()
    zs_ref = [z.detach().clone().requires_grad_() for z in zs]
    authors_loss(*zs_ref, dim_common=18).backward()
    for z, ref in zip(zs, zs_ref, strict=True):
        assert z.grad is not None and ref.grad is not None
        torch.testing.assert_close(
            z.grad, ref.grad, rtol=1e-3, atol=1e-4 * ref.grad.abs().max().item()
        )


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'common_dim': 0}, 'common_dim'),
        ({'common_dim': -3}, 'common_dim'),
        ({'common_dim': 2, 'lambd': -1.0}, 'lambd'),
        ({'common_dim': 2, 'lambd_common': -1.0}, 'lambd_common'),
        ({'common_dim': 2, 'lambd_unique': -1.0}, 'lambd_unique'),
        ({'common_dim': 2, 'lambd_intra1': -1.0}, 'lambd_intra1'),
        ({'common_dim': 2, 'lambd_intra2': -1.0}, 'lambd_intra2'),
        ({'common_dim': 2, 'eps': -1.0}, 'eps'),
        ({'common_dim': 2, 'weighting': 'sum'}, "weighting must be 'paper'"),
    ],
)
def test_init_errors(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeCURLoss(**kwargs)  # type: ignore[arg-type]


def test_call_errors() -> None:
    zs = make_inputs(4, 8)
    with pytest.raises(ValueError, match='common_dim'):
        DeCURLoss(9)(*zs)
    loss_fn = DeCURLoss(4)
    loss_fn.common_dim = 0
    with pytest.raises(ValueError, match='common_dim'):
        loss_fn(*zs)
    with pytest.raises(ValueError, match='batch size'):
        DeCURLoss(4)(*[z[:1] for z in zs])
    for i, name in enumerate(['z1_a', 'z1_b', 'z2_a', 'z2_b']):
        bad = list(zs)
        bad[i] = zs[i][:3]
        with pytest.raises(ValueError, match=name):
            DeCURLoss(4)(*bad)
        bad[i] = zs[i][:, :7]
        with pytest.raises(ValueError, match=name):
            DeCURLoss(4)(*bad)
        bad[i] = zs[i].unsqueeze(0)
        with pytest.raises(ValueError, match=f'{name} must be 2D'):
            DeCURLoss(4)(*bad)
    # not-2D is also caught for 1D inputs of otherwise matching sizes
    with pytest.raises(ValueError, match='z1_a must be 2D'):
        DeCURLoss(1)(*[z[0] for z in zs])


class _TwoEncoders(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.enc1 = nn.Linear(8, k)
        self.enc2 = nn.Linear(8, k)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # x: (4, N, 8) = modality 1 views a/b, modality 2 views a/b
        return self.enc1(x[0]), self.enc1(x[1]), self.enc2(x[2]), self.enc2(x[3])


# (global batch, embedding size, common_dim, intra): Gram path and K x K path
DDP_CONFIGS = [(8, 16, 10, True), (24, 8, 5, True), (8, 16, 10, False)]
WORLD_SIZE = 2


def _data(n_global: int) -> Tensor:
    return torch.randn(4, n_global, 8, generator=torch.Generator().manual_seed(0))


def _run(
    x: Tensor, k: int, kc: int, intra: bool, gather: bool, ddp: bool
) -> dict[str, Tensor]:
    torch.manual_seed(1)
    model: nn.Module = _TwoEncoders(k)
    if ddp:
        model = DistributedDataParallel(model)
    loss_fn = DeCURLoss(kc, intra=intra, gather_distributed=gather)
    loss = loss_fn(*model(x))
    loss.backward()
    out = {'loss': loss.detach()}
    for name, p in model.named_parameters():
        assert p.grad is not None
        out[name.removeprefix('module.')] = p.grad.clone()
    return out


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD_SIZE,
    )
    try:
        torch.set_num_threads(1)
        results = []
        for n_global, k, kc, intra in DDP_CONFIGS:
            n_local = n_global // WORLD_SIZE
            x = _data(n_global)[:, rank * n_local : (rank + 1) * n_local]
            results.append(
                {
                    gather: _run(x, k, kc, intra, gather, ddp=True)
                    for gather in (True, False)
                }
            )
        torch.save(results, Path(out_dir) / f'rank{rank}.pt')
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def test_ddp_matches_global_batch(tmp_path: Path) -> None:
    mp.spawn(
        _ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True
    )
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(WORLD_SIZE)]
    for i, (n_global, k, kc, intra) in enumerate(DDP_CONFIGS):
        single = _run(_data(n_global), k, kc, intra, gather=False, ddp=False)
        for rank in ranks:
            gathered = rank[i][True]
            assert set(gathered) == set(single)
            for key, value in single.items():
                torch.testing.assert_close(gathered[key], value, rtol=1e-4, atol=1e-5)
            # without gathering, each rank sees only its half of the batch
            assert not torch.allclose(rank[i][False]['loss'], single['loss'])
        assert not torch.allclose(
            ranks[0][i][False]['loss'], ranks[1][i][False]['loss']
        )
