"""The length of a run and of its warm-up, in optimisation steps."""

from lightning import Trainer


def warmup_steps(
    trainer: Trainer | None, warmup_epochs: float
) -> tuple[int, int | None]:
    """The run's optimisation steps and those of its warm-up.

    The warm-up covers ``warmup_epochs / max_epochs`` of the run's steps, so a
    run cut short with ``max_steps`` keeps the shape of its schedule; it
    leaves at least the last step out of the warm-up.

    Args:
        trainer: The task's trainer, or None (no run: 1 step, no warm-up).
        warmup_epochs: Epochs of warm-up.

    Returns:
        Total steps and warm-up steps; the warm-up is None if the trainer's
        number of epochs is unlimited (it is a share of the epochs).
    """
    if trainer is None:
        return 1, 0
    total = max(1, int(trainer.estimated_stepping_batches))
    max_epochs = trainer.max_epochs
    if max_epochs is None or max_epochs <= 0:
        return total, None
    return total, min(total - 1, round(warmup_epochs / max_epochs * total))
