"""DeCUR for M >= 2 modalities and partial pairs, against a plain reference."""

import itertools
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from torchgeo_decur.losses import DeCURLoss

EPS = 1e-5
LAMBD = 0.0051


def normalise(z: Tensor) -> Tensor:
    return (z - z.mean(0)) / (z.var(0, unbiased=False) + EPS).sqrt()


def lbt(c: Tensor, target: float) -> Tensor:
    off = c - torch.diag(torch.diagonal(c))
    return (torch.diagonal(c) - target).pow(2).sum() + LAMBD * off.pow(2).sum()


def reference(
    zs: list[Tensor],
    common_dim: int,
    intra: bool = True,
    decouple: bool = True,
    present: Tensor | None = None,
    weights: list[float] | None = None,
) -> Tensor:
    """The paper's terms, written out in float64 with K x K matrices."""
    z = [t.double() for t in zs]
    m, (n, k) = len(z) // 2, z[0].shape
    mask = torch.ones(m, n, dtype=torch.bool) if present is None else present
    kc = common_dim if decouple else k
    total = torch.zeros((), dtype=torch.float64)
    for i in range(m) if intra else []:
        rows = mask[i]
        if rows.sum() >= 2:
            a, b = normalise(z[2 * i][rows]), normalise(z[2 * i + 1][rows])
            total = total + lbt(a.T @ b / int(rows.sum()), 1.0)
    pairs = list(itertools.combinations(range(m), 2))
    for w, (i, j) in zip(weights or [1.0] * len(pairs), pairs, strict=True):
        rows = mask[i] & mask[j]
        if rows.sum() < 2:
            continue
        c = normalise(z[2 * i][rows]).T @ normalise(z[2 * j][rows]) / int(rows.sum())
        total = total + w * lbt(c[:kc, :kc], 1.0)
        if kc < k:
            total = total + w * lbt(c[kc:, kc:], 0.0)
    return total


def embeddings(m: int, n: int, k: int, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, k, generator=g)
    return [base + 0.7 * torch.randn(n, k, generator=g) for _ in range(2 * m)]


@pytest.mark.parametrize('m', [2, 3, 4])
@pytest.mark.parametrize(('n', 'k'), [(8, 24), (32, 12)])  # Gram form, K x K form
@pytest.mark.parametrize(
    ('intra', 'decouple'), [(True, True), (False, True), (True, False)]
)
def test_against_the_reference(
    m: int, n: int, k: int, intra: bool, decouple: bool
) -> None:
    zs = embeddings(m, n, k)
    loss = DeCURLoss(common_dim=k * 3 // 4, intra=intra, decouple=decouple)(*zs)
    expected = reference(zs, k * 3 // 4, intra, decouple)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-4)


def test_two_modalities_are_eq_6_either_way() -> None:
    zs = embeddings(2, 16, 32)
    fn = DeCURLoss(common_dim=24)
    fast = fn(*zs)
    terms = dict(fn.terms)
    present = torch.ones(2, 16, dtype=torch.bool)  # the general path
    general = fn(*zs, present=present)
    torch.testing.assert_close(general, fast, rtol=1e-5, atol=1e-5)
    for key, value in terms.items():
        torch.testing.assert_close(fn.terms[key], value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.double(), reference(zs, 24), rtol=1e-4, atol=1e-4)


def test_partial_pairs_equal_their_complete_sub_batches() -> None:
    m, n, k, kc = 3, 12, 16, 12
    zs = embeddings(m, n, k, seed=1)
    present = torch.ones(m, n, dtype=torch.bool)
    present[1, :4] = False  # locations 0-3 lack modality 2
    present[2, 9:] = False  # locations 9-11 lack modality 3
    fn = DeCURLoss(common_dim=kc, pair_weights=[1.0, 0.5, 2.0])
    loss = fn(*zs, present=present)
    expected = reference(zs, kc, present=present, weights=[1.0, 0.5, 2.0])
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-4)
    # the pair (1, 2) term is the complete sub-batch's two-modality loss
    rows = present[0] & present[1]
    alone = DeCURLoss(common_dim=kc, intra=False)
    both = alone(*(z[rows] for z in zs[:4]))
    pair = DeCURLoss(common_dim=kc, intra=False, pair_weights=[1.0, 0.0, 0.0])
    torch.testing.assert_close(pair(*zs, present=present), both, rtol=1e-5, atol=1e-5)
    # a location without a modality gets no gradient from that modality
    zs = [z.clone().requires_grad_() for z in zs]
    fn(*zs, present=present).backward()
    assert zs[2].grad is not None and zs[2].grad[:4].abs().max() == 0
    assert zs[4].grad is not None and zs[4].grad[9:].abs().max() == 0
    assert zs[0].grad is not None and zs[0].grad[:4].abs().max() > 0


def test_terms_of_many_modalities() -> None:
    fn = DeCURLoss(common_dim=6)
    fn(*embeddings(3, 10, 8))
    assert set(fn.terms) == {
        'common',
        'unique',
        'intra1',
        'intra2',
        'intra3',
        'common_diag',
        'unique_diag',
        'unique_absdiag',
        'offdiag',
    }
    assert 0 < float(fn.terms['common_diag']) <= 1


def test_bad_input() -> None:
    zs = embeddings(3, 6, 8)
    with pytest.raises(ValueError, match=r'M >= 2 modalities .* got 2 embeddings'):
        DeCURLoss(common_dim=4)(*zs[:2])
    with pytest.raises(ValueError, match='got 5 embeddings'):
        DeCURLoss(common_dim=4)(*zs[:5])
    with pytest.raises(
        ValueError, match=r'present must have shape \(M, N\) = \(3, 6\)'
    ):
        DeCURLoss(common_dim=4)(*zs, present=torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'official'.* two modalities only, got 3"):
        DeCURLoss(common_dim=4, weighting='official')(*zs)
    with pytest.raises(
        ValueError, match='pair_weights has 2 weights, 3 modalities have 3'
    ):
        DeCURLoss(common_dim=4, pair_weights=[1.0, 1.0])(*zs)
    with pytest.raises(ValueError, match='pair_weights must be >= 0'):
        DeCURLoss(common_dim=4, pair_weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match=r'common_dim must be in \[1, 8\]'):
        DeCURLoss(common_dim=9)(*zs)


def _present_mask(n: int) -> Tensor:
    present = torch.ones(3, n, dtype=torch.bool)
    present[1, ::3] = False
    present[2, 1::4] = False
    return present


def _ddp_worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2
    )
    try:
        torch.set_num_threads(1)
        n = 16
        local = slice(rank * n // 2, (rank + 1) * n // 2)
        zs = [z[local].clone().requires_grad_() for z in embeddings(3, n, 12)]
        fn = DeCURLoss(common_dim=9, gather_distributed=True)
        loss = fn(*zs, present=_present_mask(n)[:, local])
        loss.backward()
        grads = [z.grad for z in zs]
        torch.save({'loss': loss.detach(), 'grads': grads}, Path(out) / f'{rank}.pt')
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_for_three_modalities(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = int(s.getsockname()[1])
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    zs = [z.clone().requires_grad_() for z in embeddings(3, 16, 12)]
    single = DeCURLoss(common_dim=9)(*zs, present=_present_mask(16))
    single.backward()
    for rank in range(2):
        out = torch.load(tmp_path / f'{rank}.pt')
        torch.testing.assert_close(out['loss'], single.detach(), rtol=1e-5, atol=1e-5)
        for z, grad in zip(zs, out['grads'], strict=True):
            # each rank's gradient is summed over the ranks (lightly's gather):
            # DDP's averaging of parameter gradients brings it back to one
            expected = 2 * z.grad[rank * 8 : (rank + 1) * 8]
            torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
