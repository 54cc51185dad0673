"""fashiondiff: diffusion models on Fashion-MNIST, built one idea per notebook.

The package holds the stable versions of what the notebooks build, one module per topic, each importing only
from the rows above it:

    building blocks   data, patches, embeddings, attention, layers, schedule, sampling, devices, fastlinear,
                      checkpoint, provenance, plotting
    models            classifier, transformer, vae, unet, latent
    loops             diffusion (loss, samplers, generate), training, metrics, reports
    recipes           recipes: which models exist and how each is trained, measured and sampled
    pipelines         pipelines (weights on disk to images and scores), runs (a training run and its record)
    on top            cli, widgets
"""

__version__ = "0.1.0"
