from . import routes, pages, ivr_routes  # noqa: F401 (the telephony API, pages, IVR steps)
