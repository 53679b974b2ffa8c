"""Evaluating restorers and generators: pixel metrics, Fréchet distances, the MNIST feature network, and intervals."""

from .frechet import (
    FD_MNIST_CNN,
    FID_INCEPTION,
    INCEPTION_WEIGHTS_FILE,
    KINDS,
    FeatureStats,
    InceptionUnavailable,
    add_frechet_column,
    check_no_mixing,
    fd_column_name,
    feature_extractor,
    frechet_column,
    frechet_distance,
    inception_fid,
    mnist_cnn_features,
    mnist_fd,
)
from .intervals import (
    FD_N_BOOT,
    N_BOOT,
    Comparison,
    Interval,
    bootstrap_mean,
    bootstrap_rmse,
    compare,
    frechet_floor,
    frechet_interval,
    intervals_from_dict,
    intervals_to_dict,
    mnist_fd_interval,
    verdicts,
)
from .metrics import (
    EVAL_Z_SEED,
    SSIM_CONVENTION,
    RestorationResults,
    evaluate_restoration,
    format_frechet_table,
    format_table,
    metric_intervals,
    psnr,
    rmse,
    ssim,
)

__all__ = [
    "rmse", "psnr", "ssim", "SSIM_CONVENTION", "EVAL_Z_SEED", "evaluate_restoration", "format_table",
    "frechet_distance", "FeatureStats", "FD_MNIST_CNN", "FID_INCEPTION", "KINDS", "fd_column_name",
    "mnist_cnn_features", "mnist_fd", "inception_fid", "InceptionUnavailable", "INCEPTION_WEIGHTS_FILE",
    "feature_extractor", "frechet_column", "add_frechet_column", "check_no_mixing", "format_frechet_table",
    "Interval", "N_BOOT", "FD_N_BOOT", "bootstrap_mean", "bootstrap_rmse", "frechet_interval", "frechet_floor",
    "Comparison", "compare", "verdicts", "mnist_fd_interval", "intervals_to_dict", "intervals_from_dict", "metric_intervals", "RestorationResults",
]
