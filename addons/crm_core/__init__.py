# This file is part of the CRM suite. The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from . import routes

__all__ = ['routes']
