"""Training a restorer: the trainer, its resumable state, the one training pipeline and its command line.

``python -m coldlib.training --task blur --dataset mnist --steps 20000 --out runs/x`` trains from the shell
(``torchrun --nproc_per_node=N -m coldlib.training ...`` on N GPUs or CPU processes).
"""

from .run import PRESET_DATASET, describe_metrics, train_or_load, unet_preset_name
from .trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer", "train_or_load", "describe_metrics", "unet_preset_name", "PRESET_DATASET"]
