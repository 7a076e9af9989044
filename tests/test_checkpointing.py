"""Outputs that are whole or absent, and folders checked before the work."""

import os
from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel

from torchgeo_decur.checkpointing import (
    RunCheckpoint,
    link_to_checkpoint,
    live_checkpoint,
    remove_orphans,
    staged_files,
    writable_folder,
)


def test_staged_files_all_or_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / 'out' / 'a.pth', tmp_path / 'out' / 'b.json'
    with staged_files([a, b]) as temporary:
        temporary[a].write_bytes(b'weights')
        temporary[b].write_text('{}')
        assert not a.exists()  # nothing visible until the block ends
    assert a.read_bytes() == b'weights' and b.read_text() == '{}'
    assert sorted(p.name for p in a.parent.iterdir()) == ['a.pth', 'b.json']
    with pytest.raises(OSError, match='disk full'):
        with staged_files([a, b]) as temporary:
            temporary[a].write_bytes(b'new weights')
            raise OSError('disk full')
    assert a.read_bytes() == b'weights'  # the earlier files are untouched
    assert sorted(p.name for p in a.parent.iterdir()) == ['a.pth', 'b.json']


def test_writable_folder(tmp_path: Path) -> None:
    assert writable_folder(tmp_path / 'new' / 'deep').is_dir()
    (tmp_path / 'file').write_text('')
    with pytest.raises(FileExistsError, match='not a folder'):
        writable_folder(tmp_path / 'file')
    with pytest.raises(PermissionError, match=r'cannot write to the output folder'):
        writable_folder(tmp_path / 'file' / 'out')


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write to read-only folders')
def test_writable_folder_read_only(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match='cannot write'):
            writable_folder(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_remove_orphans(tmp_path: Path) -> None:
    (tmp_path / 'last.ckpt').write_bytes(b'whole')
    (tmp_path / '.last.ckpt.k3j2').write_bytes(b'half')
    assert remove_orphans(tmp_path) == [tmp_path / '.last.ckpt.k3j2']
    assert [p.name for p in tmp_path.iterdir()] == ['last.ckpt']
    assert remove_orphans(tmp_path / 'missing') == []
    (tmp_path / '.last.ckpt.77.link').symlink_to('gone.ckpt')  # a killed relink
    assert remove_orphans(tmp_path) == [tmp_path / '.last.ckpt.77.link']
    assert [p.name for p in tmp_path.iterdir()] == ['last.ckpt']


def test_link_to_checkpoint(tmp_path: Path) -> None:
    first, second = tmp_path / 'epoch=0.ckpt', tmp_path / 'epoch=1.ckpt'
    first.write_bytes(b'first')
    second.write_bytes(b'second')
    last = tmp_path / 'last.ckpt'
    last.write_bytes(b'an old copy')  # a last.ckpt of save_last=True is replaced
    link_to_checkpoint(first, last)
    assert last.is_symlink() and os.readlink(last) == 'epoch=0.ckpt'  # relative
    link_to_checkpoint(second, last)
    assert last.read_bytes() == b'second'
    assert first.read_bytes() == b'first'  # the old target is left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'epoch=0.ckpt',
        'epoch=1.ckpt',
        'last.ckpt',
    ]


def test_live_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / 'last.ckpt'
    last.symlink_to('epoch=0.ckpt')  # its checkpoint was removed, then a kill
    assert live_checkpoint(last) is None  # nothing to stand in for it
    older, newer = tmp_path / 'epoch=0-step=3.ckpt', tmp_path / 'epoch=0-step=4.ckpt'
    older.write_bytes(b'3')
    newer.write_bytes(b'4')
    os.utime(older, (1, 1))
    (tmp_path / '.epoch=0-step=5.ckpt.tmp').write_bytes(b'half')  # never chosen
    assert live_checkpoint(last) == str(newer)
    assert live_checkpoint(older) == str(older)


def test_run_checkpoint_links_last(tmp_path: Path) -> None:
    trainer = Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=0,
        accelerator='cpu',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[RunCheckpoint(dirpath=tmp_path, save_last='link')],
    )
    trainer.fit(BoringModel())
    last = tmp_path / 'last.ckpt'
    assert last.is_symlink() and last.resolve() == tmp_path / 'epoch=1-step=4.ckpt'
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ['epoch=1-step=4.ckpt', 'last.ckpt']  # one copy on disk
    last.unlink()  # killed after the old checkpoint's removal, before the relink
    last.symlink_to('epoch=0-step=2.ckpt')
    found = RunCheckpoint(dirpath=tmp_path)._find_last_checkpoints(trainer)
    assert found == {str(tmp_path / 'epoch=1-step=4.ckpt')}


def test_run_checkpoint_checks_its_folder_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    task = BoringModel()
    trainer = Trainer(
        max_steps=1,
        accelerator='cpu',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[RunCheckpoint(dirpath=blocker / 'ckpts')],
    )
    with pytest.raises(PermissionError, match='cannot write to the output folder'):
        trainer.fit(task)
    assert task.global_step == 0  # not a step was trained
