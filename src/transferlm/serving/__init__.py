"""`transferlm serve`: an HTTP API over saved models, with dynamic batching and a web page.

models.py (what a model can do: tokenize, embed, classify, tag, generate, prompt; loading any source),
batching.py (token-budget dynamic batching on one compute thread; continuous batching of
generation), metrics.py (Prometheus text),
app.py (the FastAPI app: endpoints, limits, errors, server-sent events), static/ (the page at
`/`: plain HTML, CSS and one script, no build step). cli/serve.py starts it under uvicorn.
"""

from .app import ServeOptions, create_app
from .batching import BatchOptions, Batcher, GenerationBatcher, plan_passes
from .models import ModelLoadError, ServedModel, load_model, parse_model_spec

__all__ = ["ServeOptions", "create_app", "BatchOptions", "Batcher", "GenerationBatcher", "plan_passes",
           "ModelLoadError", "ServedModel", "load_model", "parse_model_spec"]
