"""fashiondiff: diffusion models on Fashion-MNIST, built one idea per notebook.

The package holds the stable versions of what the notebooks build, one module per topic. Each row imports only from
the rows above it and from earlier modules of its own row:

    building blocks   data, stats, patches, embeddings, attention, layers, schedule, guidance, devices, precision,
                      fastlinear, provenance, plotting
    processes         diffusion (loss, the DDPM/DDIM loop), flow (loss, the ODE loop), solvers (Heun and
                      DPM-Solver++ in sigma, for both)
    samplers          sampling (the table of samplers, SamplingConfig), checkpoint
    models            classifier, vae, unet, transformer, latent, toy (part 3's 2-D mixture)
    loops             generation (the Generator interface, generate), training, metrics, reports, distill (a
                      teacher's trajectories and the few-step student's loss), editing (SDEdit, inpainting,
                      inversion, classifier guidance on a given image)
    recipes           recipes: which models exist and how each is trained, measured and sampled
    pipelines         pipelines (weights on disk to images and scores), runs (a training run and its record)
    on top            cli, widgets, check (the lessons' self-checks)
"""

__version__ = "0.1.0"
