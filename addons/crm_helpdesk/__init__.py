from . import routes  # noqa: F401 (the status page and webhook errors)
