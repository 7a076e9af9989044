"""Write small checkpoints with torchgeo-decur 0.1 (run from a 0.1 checkout)."""

import sys
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule, Trainer, seed_everything
from torch.utils.data import DataLoader, Dataset

import torchgeo_decur
from torchgeo_decur.tasks import CoMMTask, DeCURTask, MultimodalSSLTask

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)


class Views(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {
            'image1': torch.rand(2, 2, 32, 32, generator=g),
            'image2': torch.rand(2, 13, 32, 32, generator=g),
        }


class Data(LightningDataModule):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(Views(), batch_size=4, drop_last=True)


ENC = {'model1': 'test_efficientnet', 'model2': 'test_efficientnet', 'modalities': ['s1', 's2c']}
tasks = {
    'decur': (DeCURTask(**ENC, projector_dims=[16, 16], common_dim=12), False),
    'barlow_cross': (MultimodalSSLTask('barlow_cross', **ENC, projector_dims=[16, 16]), True),
    'comm': (CoMMTask(**ENC, embed_dim=16, num_heads=2, projector_dims=[16, 8]), True),
}
for name, (task, weights_only) in tasks.items():
    seed_everything(0)
    trainer = Trainer(
        accelerator='cpu', max_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
    )
    trainer.fit(task, datamodule=Data())
    trainer.save_checkpoint(out / f'{name}.ckpt', weights_only=weights_only)
    print(name, torchgeo_decur.__version__, (out / f'{name}.ckpt').stat().st_size)
