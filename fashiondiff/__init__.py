"""fashiondiff: diffusion models on Fashion-MNIST, built one idea per notebook.

The package holds the stable versions of what the notebooks build, one module per topic:
``data``, ``patches``, ``attention``, ``schedule``, ``checkpoint``, ``fastlinear``, ``plotting`` at the bottom;
``classifier``, ``transformer``, ``diffusion``, ``training``, ``metrics`` above them;
``recipes`` and ``pipelines`` (training recipes, bundled weights to images); ``cli`` and ``widgets`` on top.
"""

__version__ = "0.1.0"
