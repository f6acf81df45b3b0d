from trytond.model import ModelSingleton, ModelSQL, ModelView, fields
from trytond.pyson import Eval

from .connector import CONNECTORS


class Configuration(ModelSingleton, ModelSQL, ModelView):
    __name__ = 'callcenter.configuration'
    __string__ = "Call Center Configuration"

    connector = fields.Selection([
            (None, "None (tel: links)"),
            ('baresip', "baresip Phones"),
            ('webhook', "PBX Originate URL"),
            ], "Click-to-Dial",
        help="How a click on a phone number makes the agent's phone call "
        "it; without one the number opens as a tel: link.")
    sip_domain = fields.Char("SIP Domain",
        states={'invisible': Eval('connector') != 'baresip'},
        help="The domain of the numbers the phones dial (sip:number@domain)."
        " Empty: the phone's own account domain.")
    originate_url = fields.Char("Originate URL",
        states={
            'invisible': Eval('connector') != 'webhook',
            'required': Eval('connector') == 'webhook',
            })
    originate_secret = fields.Char("Originate Secret", strip=False,
        states={'invisible': Eval('connector') != 'webhook'},
        help="The key of the X-CRM-Signature of the originate requests.")

    def get_connector(self):
        "The connector of the configuration, or None"
        if self.connector:
            return CONNECTORS[self.connector](self)
