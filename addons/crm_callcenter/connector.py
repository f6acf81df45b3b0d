"""Click-to-dial: the connector makes the agent's phone call a number.
One small interface (originate) so that other telephony can be added:
Asterisk AMI/ARI, FreeSWITCH ESL or a cloud provider is a subclass with
its kind in CONNECTORS and its settings in the configuration."""
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request

from trytond.i18n import gettext

from .baresip import BaresipControl, BaresipError
from .exceptions import DialError

logger = logging.getLogger(__name__)
TIMEOUT = 5


class Connector:
    "Originate calls through one kind of telephony"
    kind = None

    def __init__(self, configuration):
        self.configuration = configuration

    def originate(self, agent, number):
        "Make the agent's phone call number; raise DialError when it fails"
        raise NotImplementedError


class BaresipConnector(Connector):
    """The agent's baresip phone dials, told through its ctrl_tcp port
    (the agent's Phone Control, host:port)"""
    kind = 'baresip'

    def originate(self, agent, number):
        host, _, port = (agent.phone_control or '').rpartition(':')
        if not host or not port.isdigit():
            raise DialError(gettext('crm_callcenter.msg_dial_no_control',
                    agent=agent.rec_name))
        domain = self.configuration.sip_domain
        uri = f'sip:{number}@{domain}' if domain else number
        try:
            with BaresipControl(host, int(port), timeout=TIMEOUT) as phone:
                answer = phone.command('dial', uri)
        except (OSError, BaresipError) as exception:
            logger.warning("dial %s from %s failed: %s", number,
                agent.extension, exception)
            raise DialError(gettext('crm_callcenter.msg_dial_failed',
                    number=number, error=str(exception))) from exception
        if not answer.get('ok'):
            raise DialError(gettext('crm_callcenter.msg_dial_failed',
                    number=number, error=answer.get('data') or '?'))


class WebhookConnector(Connector):
    """The PBX originates: a JSON POST {"extension", "number"} to its
    originate URL, signed like the events (X-CRM-Signature)"""
    kind = 'webhook'

    def originate(self, agent, number):
        url = self.configuration.originate_url
        secret = self.configuration.originate_secret or ''
        if not url:
            raise DialError(gettext('crm_callcenter.msg_dial_no_url'))
        body = json.dumps({'extension': agent.extension,
                'number': number}).encode()
        request = urllib.request.Request(url, data=body, method='POST',
            headers={
                'Content-Type': 'application/json',
                'X-CRM-Signature': 'sha256=' + hmac.new(secret.encode(),
                    body, hashlib.sha256).hexdigest(),
                })
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
        except (OSError, urllib.error.URLError) as exception:
            logger.warning("originate %s for %s failed: %s", number,
                agent.extension, exception)
            raise DialError(gettext('crm_callcenter.msg_dial_failed',
                    number=number, error=str(exception))) from exception


CONNECTORS = {c.kind: c for c in [BaresipConnector, WebhookConnector]}
