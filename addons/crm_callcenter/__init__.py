from . import routes  # noqa: F401 (the CTI event and routing API)
