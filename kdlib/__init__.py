"""kdlib: multimodal (EEG + EOG) knowledge distillation for emotion recognition.

A small teaching library behind the notebooks in ``notebooks/``. Data flows one way::

    files -> Recording -> WindowSet -> folds -> models -> results -> plots / statistics

See ``README.md`` for the two commands, ``notebooks/`` for the story and ``ARCHITECTURE.md`` for
the map (the rooms, the import rule, the training loop).
"""

__version__ = "0.1.0"
