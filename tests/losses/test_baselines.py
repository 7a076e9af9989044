"""The baseline losses against plain computations of their papers' formulas."""

import math
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightly.loss import BarlowTwinsLoss, NTXentLoss, VICRegLoss
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from torchgeo_decur.losses import (
    CLIPLoss,
    CrossModalBarlowTwinsLoss,
    CrossSelfLoss,
    DeCURLoss,
)


def make_inputs(n: int, k: int, count: int = 2, seed: int = 0) -> list[Tensor]:
    """Embeddings with a shared component, offsets and scales."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, k, generator=g)
    return [
        (0.8 * base + torch.randn(n, k, generator=g)) * (1 + i) + i
        for i in range(count)
    ]


def assert_close(actual: Tensor, expected: Tensor, rtol: float = 1e-4) -> None:
    torch.testing.assert_close(
        actual.float(), expected.float().detach(), rtol=rtol, atol=1e-5
    )


# ---------------------------------------------------------------- references


def ref_barlow(z1: Tensor, z2: Tensor, lambd: float) -> dict[str, Tensor]:
    """Barlow Twins, Eq. 1, with the batch statistics written out."""
    n, k = z1.shape

    def standardise(z: Tensor) -> Tensor:
        mean = z.sum(0) / n
        var = ((z - mean) ** 2).sum(0) / n  # biased, as BatchNorm1d
        return (z - mean) / torch.sqrt(var + 1e-5)

    a, b = standardise(z1), standardise(z2)
    c = torch.zeros(k, k, dtype=z1.dtype)
    for i in range(k):
        for j in range(k):
            c[i, j] = (a[:, i] * b[:, j]).sum() / n
    on = sum((1 - c[i, i]) ** 2 for i in range(k))
    off = sum(c[i, j] ** 2 for i in range(k) for j in range(k) if i != j)
    return {
        'total': on + lambd * off,
        'on_diag': on,
        'off_diag': lambd * off,
        'diag_mean': torch.diagonal(c).mean(),
    }


def ref_clip(z1: Tensor, z2: Tensor, scale: Tensor) -> dict[str, Tensor]:
    """CLIP's symmetric cross-entropy from a hand-written logits matrix."""
    n = z1.shape[0]
    u = z1 / z1.pow(2).sum(1, keepdim=True).sqrt()
    v = z2 / z2.pow(2).sum(1, keepdim=True).sqrt()
    logits = torch.stack(
        [torch.stack([scale * (u[i] * v[j]).sum() for j in range(n)]) for i in range(n)]
    )
    # row i of logits: modality 1 sample i against every modality 2 sample
    l12 = sum(-logits[i, i] + torch.log(logits[i].exp().sum()) for i in range(n)) / n
    l21 = sum(-logits[j, j] + torch.log(logits[:, j].exp().sum()) for j in range(n)) / n
    return {'total': (l12 + l21) / 2, 'loss_12': l12, 'loss_21': l21}


def ref_ntxent(z1: Tensor, z2: Tensor, t: float) -> Tensor:
    """SimCLR's NT-Xent with explicit exp-sums over the 2N samples."""
    n = z1.shape[0]
    w = torch.cat([z1, z2])
    w = w / w.pow(2).sum(1, keepdim=True).sqrt()
    total = w.new_zeros(())
    for i in range(2 * n):
        p = (i + n) % (2 * n)  # the other modality (view) of sample i
        pos = torch.exp((w[i] * w[p]).sum() / t)
        denom = sum(torch.exp((w[i] * w[k]).sum() / t) for k in range(2 * n) if k != i)
        total = total - torch.log(pos / denom)
    return total / (2 * n)


def ref_vicreg(
    z1: Tensor,
    z2: Tensor,
    sim: float = 25.0,
    std: float = 25.0,
    cov: float = 1.0,
    eps: float = 1e-4,
) -> dict[str, Tensor]:
    """VICReg, Eq. 1-6, with variance and covariance written out."""
    n, k = z1.shape
    invariance = ((z1 - z2) ** 2).sum() / (n * k)

    def v(z: Tensor) -> Tensor:
        mean = z.sum(0) / n
        var = ((z - mean) ** 2).sum(0) / (n - 1)
        return torch.clamp(1 - torch.sqrt(var + eps), min=0).sum() / k

    def c(z: Tensor) -> Tensor:
        zc = z - z.sum(0) / n
        cv = zc.T @ zc / (n - 1)
        return (cv.pow(2).sum() - torch.diagonal(cv).pow(2).sum()) / k

    variance = (v(z1) + v(z2)) / 2
    covariance = c(z1) + c(z2)
    return {
        'total': sim * invariance + std * variance + cov * covariance,
        'invariance': invariance,
        'variance': variance,
        'covariance': covariance,
    }


# --------------------------------------------------------- value and terms


@pytest.mark.parametrize(('n', 'k'), [(6, 5), (16, 4), (4, 12)])
@pytest.mark.parametrize('lambd', [0.0051, 0.5])
def test_barlow_twins_matches_reference(n: int, k: int, lambd: float) -> None:
    z1, z2 = make_inputs(n, k, seed=n + k)
    loss_fn = CrossModalBarlowTwinsLoss(lambd)
    loss = loss_fn(z1, z2)
    expected = ref_barlow(z1.double(), z2.double(), lambd)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert_close(loss, expected['total'])
    assert set(loss_fn.terms) == {'on_diag', 'off_diag', 'diag_mean'}
    for key, value in loss_fn.terms.items():
        assert not value.requires_grad
        assert_close(value, expected[key])
    # lightly's loss, and DeCUR's loss with all dimensions common and no
    # intra-modal terms, compute the same
    assert_close(loss, BarlowTwinsLoss(lambda_param=lambd)(z1, z2))
    decur = DeCURLoss(k, lambd=lambd, intra=False, decouple=False)
    assert_close(loss, decur(z1, z1, z2, z2))


@pytest.mark.parametrize(('n', 'k'), [(5, 8), (8, 3)])
def test_clip_matches_reference(n: int, k: int) -> None:
    z1, z2 = make_inputs(n, k, seed=2 * n + k)
    loss_fn = CLIPLoss()
    assert math.isclose(loss_fn.temperature, 0.07, rel_tol=1e-6)
    loss = loss_fn(z1, z2)
    expected = ref_clip(z1.double(), z2.double(), torch.tensor(1 / 0.07).double())
    assert loss.dtype == torch.float32
    assert_close(loss, expected['total'])
    assert_close(loss_fn.terms['loss_12'], expected['loss_12'])
    assert_close(loss_fn.terms['loss_21'], expected['loss_21'])
    assert_close(loss_fn.terms['temperature'], torch.tensor(0.07))
    # the two directions differ: the loss is not CE over rows only
    assert not torch.allclose(loss_fn.terms['loss_12'], loss_fn.terms['loss_21'])


def test_clip_temperature_is_clamped_and_learnt() -> None:
    z1, z2 = make_inputs(6, 8, seed=3)
    loss_fn = CLIPLoss(temperature=0.07)
    with torch.no_grad():
        loss_fn.logit_scale.fill_(math.log(1000.0))  # beyond CLIP's 100
    loss = loss_fn(z1, z2)
    assert math.isclose(
        float(loss_fn.logit_scale.detach()), math.log(100.0), rel_tol=1e-6
    )
    assert math.isclose(loss_fn.temperature, 0.01, rel_tol=1e-5)
    assert_close(loss_fn.terms['temperature'], torch.tensor(0.01))
    assert_close(loss, ref_clip(z1, z2, torch.tensor(100.0))['total'])
    # below the bound the log inverse temperature gets the reference gradient
    loss_fn = CLIPLoss(temperature=0.2)
    loss_fn(z1, z2).backward()
    log_scale = torch.tensor(math.log(5.0), dtype=torch.float64, requires_grad=True)
    ref_clip(z1.double(), z2.double(), log_scale.exp())['total'].backward()
    grad = loss_fn.logit_scale.grad
    assert grad is not None and grad.abs() > 0
    assert log_scale.grad is not None
    assert_close(grad, log_scale.grad)
    # one SGD step moves the temperature
    optimizer = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
    optimizer.step()
    assert not math.isclose(loss_fn.temperature, 0.2)


@pytest.mark.parametrize('t', [0.1, 0.5, 1.0])
@pytest.mark.parametrize(('n', 'k'), [(5, 8), (8, 3)])
def test_ntxent_matches_reference(n: int, k: int, t: float) -> None:
    """lightly's NT-Xent, which the SimCLR baseline and CoMM use, is SimCLR's."""
    z1, z2 = make_inputs(n, k, seed=3 * n + k)
    loss = NTXentLoss(temperature=t)(z1, z2)
    assert_close(loss, ref_ntxent(z1.double(), z2.double(), t))


@pytest.mark.parametrize(('n', 'k'), [(6, 5), (16, 4), (3, 10)])
def test_vicreg_matches_reference(n: int, k: int) -> None:
    z1, z2 = make_inputs(n, k, seed=5 * n + k)
    """lightly's VICRegLoss, which the VICReg baseline uses, is VICReg's Eq. 6."""
    z1 = z1 * 0.3  # some dimensions below unit standard deviation
    expected = ref_vicreg(z1.double(), z2.double())
    assert expected['variance'] > 0
    assert_close(VICRegLoss()(z1, z2), expected['total'])
    loss = VICRegLoss(1.0, 2.0, 3.0)(z1, z2)
    assert_close(loss, ref_vicreg(z1.double(), z2.double(), 1.0, 2.0, 3.0)['total'])


@pytest.mark.parametrize('cross_views', ['both', 'first'])
@pytest.mark.parametrize('ssl_scale', [1.0, 0.3])
def test_cross_self_matches_reference(cross_views: str, ssl_scale: float) -> None:
    z1_a, z1_b, z2_a, z2_b = make_inputs(5, 6, count=4, seed=7)
    loss_fn = CrossSelfLoss(0.1, ssl_scale, cross_views)  # type: ignore[arg-type]
    loss = loss_fn(z1_a, z1_b, z2_a, z2_b)
    zs = [z.double() for z in (z1_a, z1_b, z2_a, z2_b)]
    cross = ref_ntxent(zs[0], zs[2], 0.1)
    if cross_views == 'both':
        cross = (cross + ref_ntxent(zs[1], zs[3], 0.1)) / 2
    self1 = ref_ntxent(zs[0], zs[1], 0.1)
    self2 = ref_ntxent(zs[2], zs[3], 0.1)
    assert_close(loss, cross + ssl_scale * (self1 + self2) / 2)
    assert_close(loss_fn.terms['cross'], cross)
    assert_close(loss_fn.terms['self1'], self1)
    assert_close(loss_fn.terms['self2'], self2)


# --------------------------------------------------------------- gradients


def _two(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Tensor]:
    return lambda z: fn(z[0], z[1])


GRADIENT_CASES: dict[str, tuple[Callable[[], nn.Module], Callable[..., Tensor]]] = {
    'barlow': (
        lambda: CrossModalBarlowTwinsLoss(0.1),
        _two(lambda a, b: ref_barlow(a, b, 0.1)['total']),
    ),
    'clip': (
        lambda: CLIPLoss(0.1),
        _two(lambda a, b: ref_clip(a, b, torch.tensor(10.0).double())['total']),
    ),
    'cross_self': (
        lambda: CrossSelfLoss(0.2),
        lambda z: (
            (ref_ntxent(z[0], z[2], 0.2) + ref_ntxent(z[1], z[3], 0.2)) / 2
            + (ref_ntxent(z[0], z[1], 0.2) + ref_ntxent(z[2], z[3], 0.2)) / 2
        ),
    ),
}


@pytest.mark.parametrize('name', sorted(GRADIENT_CASES))
def test_gradients_match_reference(name: str) -> None:
    make, reference = GRADIENT_CASES[name]
    count = 4 if name == 'cross_self' else 2
    zs = [z.double().requires_grad_() for z in make_inputs(6, 5, count, seed=11)]
    make()(*zs).backward()  # float32 inside
    zs_ref = [z.detach().clone().requires_grad_() for z in zs]
    reference(zs_ref).backward()
    for z, ref in zip(zs, zs_ref, strict=True):
        assert z.grad is not None and ref.grad is not None
        assert z.grad.abs().sum() > 0
        torch.testing.assert_close(
            z.grad, ref.grad, rtol=1e-3, atol=1e-4 * ref.grad.abs().max().item()
        )


@pytest.mark.parametrize('name', sorted(GRADIENT_CASES))
def test_float32_under_autocast(name: str) -> None:
    make, reference = GRADIENT_CASES[name]
    count = 4 if name == 'cross_self' else 2
    zs = [z.bfloat16().requires_grad_() for z in make_inputs(8, 6, count, seed=12)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = make()(*zs)
    assert loss.dtype == torch.float32
    assert_close(loss, reference([z.detach().double() for z in zs]), rtol=1e-5)
    loss.backward()
    for z in zs:
        assert z.grad is not None and z.grad.dtype == torch.bfloat16


def test_gather_distributed_without_init_is_noop() -> None:
    assert not dist.is_initialized()
    z1, z2 = make_inputs(6, 5)
    for make in (
        lambda g: CrossModalBarlowTwinsLoss(gather_distributed=g),
        lambda g: CLIPLoss(gather_distributed=g),
    ):
        assert_close(make(True)(z1, z2), make(False)(z1, z2), rtol=1e-7)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ('make', 'match'),
    [
        (lambda: CrossModalBarlowTwinsLoss(lambd=-1.0), 'lambd must be >= 0'),
        (lambda: CLIPLoss(temperature=0.0), 'temperature must be > 0'),
        (lambda: CLIPLoss(max_logit_scale=-1.0), 'max_logit_scale must be > 0'),
        (lambda: CLIPLoss(temperature=0.001), r'temperature must be >= 1 / max'),
        (lambda: CrossSelfLoss(temperature=-0.1), 'temperature must be > 0'),
        (lambda: CrossSelfLoss(temperature=0.0), 'temperature must be > 0'),
        (lambda: CrossSelfLoss(ssl_scale=-1.0), 'ssl_scale'),
        (lambda: CrossSelfLoss(cross_views='all'), 'cross_views'),  # type: ignore[arg-type]
    ],
)
def test_init_errors(make: Callable[[], nn.Module], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_call_errors() -> None:
    z1, z2 = make_inputs(4, 6)
    for loss_fn in (CrossModalBarlowTwinsLoss(), CLIPLoss()):
        with pytest.raises(ValueError, match='z2 has shape'):
            loss_fn(z1, z2[:3])
        with pytest.raises(ValueError, match='z1 must be 2D'):
            loss_fn(z1[0], z2[0])
    with pytest.raises(ValueError, match='batch size must be >= 2'):
        CrossModalBarlowTwinsLoss()(z1[:1], z2[:1])
    with pytest.raises(ValueError, match='z2_b has shape'):
        CrossSelfLoss()(z1, z1, z2, z2[:, :5])


# -------------------------------------------- two processes vs one batch


WORLD_SIZE = 2
N_GLOBAL = 8


class _Model(nn.Module):
    """Two linear encoders and a loss (CLIP's temperature is a parameter)."""

    def __init__(self, loss: nn.Module, count: int) -> None:
        super().__init__()
        self.enc1 = nn.Linear(6, 5)
        self.enc2 = nn.Linear(6, 5)
        self.loss = loss
        self.count = count

    def forward(self, x: Tensor) -> Tensor:
        # x: (4, N, 6) = modality 1 views a/b, modality 2 views a/b
        z1_a, z1_b, z2_a, z2_b = (
            self.enc1(x[0]),
            self.enc1(x[1]),
            self.enc2(x[2]),
            self.enc2(x[3]),
        )
        if self.count == 4:
            out: Tensor = self.loss(z1_a, z1_b, z2_a, z2_b)
        else:
            out = self.loss(z1_a, z2_a)
        return out


DDP_LOSSES: dict[str, tuple[Callable[[bool], nn.Module], int]] = {
    'barlow': (lambda g: CrossModalBarlowTwinsLoss(0.1, gather_distributed=g), 2),
    'clip': (lambda g: CLIPLoss(0.2, gather_distributed=g), 2),
    'ntxent': (lambda g: NTXentLoss(0.2, gather_distributed=g), 2),
    'vicreg': (lambda g: VICRegLoss(gather_distributed=g), 2),
    'cross_self': (lambda g: CrossSelfLoss(0.2, gather_distributed=g), 4),
}


def _run(x: Tensor, name: str, ddp: bool) -> dict[str, Tensor]:
    torch.manual_seed(1)
    make, count = DDP_LOSSES[name]
    model: nn.Module = _Model(make(ddp), count)
    if ddp:
        model = DistributedDataParallel(model)
    loss = model(x)
    loss.backward()
    out = {'loss': loss.detach()}
    for key, p in model.named_parameters():
        assert p.grad is not None
        out[key.removeprefix('module.')] = p.grad.clone()
    return out


def _data() -> Tensor:
    return torch.randn(4, N_GLOBAL, 6, generator=torch.Generator().manual_seed(0))


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD_SIZE,
    )
    try:
        n = N_GLOBAL // WORLD_SIZE
        x = _data()[:, rank * n : (rank + 1) * n]
        results = {name: _run(x, name, ddp=True) for name in DDP_LOSSES}
        torch.save(results, Path(out_dir) / f'rank{rank}.pt')
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


@pytest.mark.filterwarnings(
    'ignore:This process .* is multi-threaded:DeprecationWarning'
)
def test_ddp_matches_global_batch(tmp_path: Path) -> None:
    """Two processes gathering compute the loss and gradients of one batch.

    Each process's loss averages its own rows (Barlow Twins: the whole global
    loss), so the mean over processes is the global loss; DDP's averaged
    gradients are the global batch's, CLIP's temperature included.
    """
    # fork: the workers inherit the imports (spawning re-imports for seconds);
    # they run single-threaded, as DataLoader workers do
    method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
    context = mp.start_processes(
        _ddp_worker,
        args=(_free_port(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=False,
        start_method=method,
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail('the DDP workers did not finish within 120 s')
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(WORLD_SIZE)]
    for name in DDP_LOSSES:
        single = _run(_data(), name, ddp=False)
        mean_loss = sum(r[name]['loss'] for r in ranks) / WORLD_SIZE
        torch.testing.assert_close(mean_loss, single['loss'], rtol=1e-4, atol=1e-5)
        for rank in ranks:
            assert set(rank[name]) == set(single)
            for key, value in single.items():
                if key == 'loss':
                    continue
                torch.testing.assert_close(
                    rank[name][key], value, rtol=1e-4, atol=1e-5, msg=f'{name} {key}'
                )
    # Barlow Twins normalises with the global batch on every process
    torch.testing.assert_close(ranks[0]['barlow']['loss'], ranks[1]['barlow']['loss'])
