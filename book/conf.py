"""Sphinx configuration of the course website (``make book``; ``book/build.py`` stages the sources).

Sphinx with myst-nb and the Sphinx Book Theme (the engine of Jupyter Book 1), not Jupyter Book 2
(mystmd, a Node.js tool): everything installs from PyPI into .venv with pinned versions
(``.[book]``), autodoc + numpydoc render kdlib's numpydoc docstrings as the API reference, myst-nb
renders the notebooks with the outputs of a papermill run (never re-executing them), and the theme
draws the Binder and Colab launch buttons on every notebook page. The output is a plain static folder.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdlib import launch  # noqa: E402  (the repository's name, for the launch buttons)

project = "kdlib"
author = "kdlib contributors"
copyright = "kdlib contributors"  # noqa: A001  (Sphinx's name)
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "**/*.kernel.log"]

# Notebooks: rendered with the outputs of their papermill run; cells tagged remove-cell (the launch
# badges and the Colab install cell: the theme's buttons replace them) are left out.
nb_execution_mode = "off"
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# API reference: the public names (__all__) of every kdlib module, with numpydoc's sections.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "sphinx_book_theme"
html_title = "kdlib: multimodal knowledge distillation"
html_theme_options = {
    "repository_url": f"https://github.com/{launch.REPOSITORY}",
    "repository_branch": launch.BRANCH,
    "path_to_docs": "",  # the staged sources mirror the repository: notebooks/NN_*.ipynb
    "use_repository_button": True,
    "launch_buttons": {
        "binderhub_url": "https://mybinder.org",
        "colab_url": "https://colab.research.google.com",
        "notebook_interface": "jupyterlab",
    },
}
