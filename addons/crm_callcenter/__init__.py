from . import routes, pages  # noqa: F401 (the telephony API, the pages)
