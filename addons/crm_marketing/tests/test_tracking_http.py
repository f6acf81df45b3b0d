"""An email campaign's opens, clicks and unsubscribe through the real
routes of marketing_automation and web_shortener, over HTTP, with the
emails received by a real SMTP server"""
import email
import http.client
import re
import unittest
from email.policy import default as default_policy
from urllib.parse import urlsplit

from trytond.config import config
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, RouteTestCase
from trytond.transaction import Transaction
from trytond.url import http_base

from crm_core.tests.tools import (
    create_party, create_user, serve_http, served_database_skip_reason,
    smtp_server)

BODY = ('<html><body><p>Hello ${record.party.name}</p>'
    '<p><a href="https://example.com/offer">Our offer</a></p>'
    '<p><a href="unsubscribe">Unsubscribe</a></p></body></html>')


@unittest.skipIf(served_database_skip_reason(), served_database_skip_reason())
class TrackingHttpTestCase(RouteTestCase):
    "Test tracking and unsubscribe over HTTP"
    module = 'crm_marketing'

    @classmethod
    def setUpDatabase(cls):
        pool = Pool()
        Segment = pool.get('crm.segment')
        Campaign = pool.get('marketing.campaign')
        company = create_company()
        user = create_user('tracking_owner', company)
        with set_company(company):
            create_party("Anna", emails=['anna@example.com'],
                owner=user.id)
            segment, = Segment.create([{'name': "Anna's",
                        'owners': [('add', [user.id])]}])
            campaign, = Campaign.create([{'name': "Tracked",
                        'type': 'email', 'segment': segment.id,
                        'variants': [('create', [{'name': 'a',
                                        'subject': "Hello",
                                        'body': BODY}])]}])
        cls.company = company.id
        cls.campaign = campaign.id

    def setUp(self):
        super().setUp()
        self.url = serve_http(self)
        for section, option in [('marketing', 'automation_base'),
                ('web', 'shortener_base')]:
            if not config.has_section(section):
                config.add_section(section)
            # Unset, the modules use http_base(): the same afterwards
            self.addCleanup(config.set, section, option,
                config.get(section, option) or http_base())
            config.set(section, option, self.url)
        self.smtp = smtp_server(self)

    def transaction(self):
        return Transaction().start(DB_NAME, 0,
            context={'company': self.company})

    def member(self):
        Member = Pool().get('marketing.campaign.member')
        member, = Member.search([('campaign', '=', self.campaign)])
        return member

    def get(self, url):
        "GET url without following redirects: (status, Location)"
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port,
            timeout=20)
        try:
            connection.request('GET', parts.path + (
                    '?' + parts.query if parts.query else ''))
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader('Location')
        finally:
            connection.close()

    def test_open_click_unsubscribe(self):
        """The received email's pixel and link record the open and the
        click on the member; its List-Unsubscribe address unsubscribes
        the reader from every later campaign"""
        with self.transaction():
            pool = Pool()
            Campaign = pool.get('marketing.campaign')
            RecordActivity = pool.get('marketing.automation.record.activity')
            Campaign.run([Campaign(self.campaign)])
            RecordActivity.do(RecordActivity.search(
                    [('state', '=', 'waiting')]))
        # Sent at commit
        mail, = [email.message_from_bytes(m.original_content,
                policy=default_policy) for m in self.smtp.messages]
        self.assertEqual(mail['To'], 'Anna <anna@example.com>')
        body = mail.get_body(('html',)).get_content()
        links = re.findall(r'(?:href|src)="([^"]+)"', body)
        shortened = [l for l in links if l.startswith(self.url + '/s/')]
        self.assertEqual(len(shortened), 2)
        click, pixel = shortened

        status, location = self.get(pixel)
        self.assertIn(status, {301, 302})
        self.assertEqual(urlsplit(location).path, '/m/empty.gif')
        with self.transaction():
            member = self.member()
            self.assertEqual(member.status, 'opened')
            self.assertIsNone(member.clicked)

        status, location = self.get(click)
        # The campaign's UTM tag: a lead captured there carries it
        self.assertEqual((status, location),
            (301, 'https://example.com/offer?utm_campaign=tracked'))
        with self.transaction():
            self.assertEqual(self.member().status, 'clicked')

        unsubscribe = mail['List-Unsubscribe'].strip('<>')
        status, _ = self.get(unsubscribe)
        self.assertEqual(status, 200)
        with self.transaction():
            Consent = Pool().get('marketing.consent')
            self.assertEqual(self.member().status, 'unsubscribed')
            self.assertEqual(Consent.blocked(['anna@example.com']),
                {'anna@example.com'})
