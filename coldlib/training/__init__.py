"""Training a restorer: the trainer, its resumable state, the one training pipeline and its command line.

``python -m coldlib.training --task blur --dataset mnist --steps 20000 --out runs/x`` trains from the shell
(``torchrun --nproc_per_node=N -m coldlib.training ...`` on N GPUs or CPU processes); :func:`train` is the same
pipeline from Python, and :func:`train_or_load` is what the lessons call.
"""

from .run import describe_metrics, train, train_or_load
from .trainer import NonFiniteLoss, TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer", "NonFiniteLoss", "train", "train_or_load", "describe_metrics"]
