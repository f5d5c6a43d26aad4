"""The one training engine (issue 17): the recipe (``recipe``), its optimiser and schedule
(``optim``), the weight EMA (``ema``), the fit loop (``loop``), batched inference (``predict``) and
the run folder with resume and provenance (``runfolder``). See docs/architecture.md, "Training
engine"."""

from eegmamba.training.engine.loop import Engine, FitResult, TaskData
from eegmamba.training.engine.predict import map_batches, predict_logits, predict_proba
from eegmamba.training.engine.recipe import Recipe, load_recipe

__all__ = ["Engine", "FitResult", "TaskData", "Recipe", "load_recipe", "map_batches",
           "predict_logits", "predict_proba"]
