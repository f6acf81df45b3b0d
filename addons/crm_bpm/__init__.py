from . import routes  # noqa: F401 (registers the modeler and card pages)
