"""Training models like the target: recipes, the ensemble trainer and its cache."""

from unmeasured.training.cache import OutputCache
from unmeasured.training.ensemble import (
    BACKENDS,
    ENGINES,
    TrainingReport,
    train_ensemble,
    train_stacked,
)
from unmeasured.training.recipes import (
    CNNRecipe,
    LogisticRecipe,
    MLPRecipe,
    Recipe,
    SklearnRecipe,
    TorchRecipe,
    batch_schedule,
    load_recipe,
)

__all__ = [
    "BACKENDS",
    "ENGINES",
    "CNNRecipe",
    "LogisticRecipe",
    "MLPRecipe",
    "OutputCache",
    "Recipe",
    "SklearnRecipe",
    "TorchRecipe",
    "TrainingReport",
    "batch_schedule",
    "load_recipe",
    "train_ensemble",
    "train_stacked",
]
