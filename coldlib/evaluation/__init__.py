"""Evaluating restorers and generators: pixel metrics, Fréchet distances and the MNIST feature network."""

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
from .metrics import (
    EVAL_Z_SEED,
    SSIM_CONVENTION,
    evaluate_restoration,
    format_frechet_table,
    format_table,
    psnr,
    rmse,
    ssim,
)

__all__ = [
    "rmse", "psnr", "ssim", "SSIM_CONVENTION", "EVAL_Z_SEED", "evaluate_restoration", "format_table",
    "frechet_distance", "FeatureStats", "FD_MNIST_CNN", "FID_INCEPTION", "KINDS", "fd_column_name",
    "mnist_cnn_features", "mnist_fd", "inception_fid", "InceptionUnavailable", "INCEPTION_WEIGHTS_FILE",
    "feature_extractor", "frechet_column", "add_frechet_column", "check_no_mixing", "format_frechet_table",
]
