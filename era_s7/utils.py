"""What the notebooks import, `from era_s7 import utils`: exactly the names they use (`__all__`), each from the
module that owns it. Nothing is defined here."""
from .data import load_mnist
from .digits import classify, render_digit
from .machine import environment, select_device, set_threads
from .parameters import check_parameters
from .plots import (
    plot_augmentations,
    plot_confusion,
    plot_history,
    plot_misclassified,
    plot_runs,
    plot_samples,
    plot_your_digit,
)
from .receptive_field import format_receptive_field, receptive_field
from .recipes import run_hyperparameters
from .report import last_epochs_table, runs_table, variants_table
from .runs import figures_path, results_path, train, train_runs
from .summary import summary
from .training import predict

__all__ = ["check_parameters", "classify", "environment", "figures_path", "format_receptive_field",
           "last_epochs_table", "load_mnist", "plot_augmentations", "plot_confusion", "plot_history",
           "plot_misclassified", "plot_runs", "plot_samples", "plot_your_digit", "predict", "receptive_field",
           "render_digit", "results_path", "run_hyperparameters", "runs_table", "select_device", "set_threads",
           "summary", "train", "train_runs", "variants_table"]
