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
    evaluate_frechet,
    fd_column_name,
    feature_extractor,
    format_frechet_table,
    frechet_column,
    frechet_distance,
    inception_fid,
    mnist_cnn_features,
    mnist_fd,
)
from .metrics import COLUMNS, PAPER_TABLES, evaluate_restoration, format_table, psnr, rmse, ssim, to_unit

__all__ = [
    "to_unit", "rmse", "psnr", "ssim", "evaluate_restoration", "format_table", "COLUMNS", "PAPER_TABLES",
    "frechet_distance", "FeatureStats", "FD_MNIST_CNN", "FID_INCEPTION", "KINDS", "fd_column_name",
    "mnist_cnn_features", "mnist_fd", "inception_fid", "InceptionUnavailable", "INCEPTION_WEIGHTS_FILE",
    "feature_extractor", "frechet_column", "add_frechet_column", "evaluate_frechet", "check_no_mixing",
    "format_frechet_table",
]
