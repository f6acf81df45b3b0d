"Web lead capture: POST /<db>/crm/leads with a per-site key"
import json
import threading
import unittest
import uuid
from base64 import urlsafe_b64encode
from urllib.parse import quote

from trytond import backend, config
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import RouteTestCase
from trytond.transaction import Transaction

from .tools import CrmSetup, create_user

SITE = 'https://www.example.com'


class CrmCaptureTestCase(RouteTestCase):
    "Test web lead capture"
    module = 'crm_core'

    @classmethod
    def setUpDatabase(cls):
        pool = Pool()
        Application = pool.get('res.user.application')
        Party = pool.get('party.party')
        Team = pool.get('crm.team')
        Country = pool.get('country.country')
        Campaign = pool.get('marketing.campaign')
        crm = CrmSetup()
        Team.write([crm.north], {'round_robin': True})
        Country.create([{'name': "France", 'code': 'FR'}])
        web = create_user('website', crm.company, name="Web Site")
        default_campaign = Campaign.from_name('always-on')
        site, other, rest = Application.create([{
                    'user': web.id,
                    'application': 'crm_lead_capture',
                    'crm_team': crm.north.id,
                    'crm_origins': f'{SITE}\nhttps://shop.example.com/\n',
                    'crm_campaign': default_campaign.id,
                    }, {
                    'user': web.id,
                    'application': 'crm_lead_capture',
                    'crm_team': crm.south.id,
                    'crm_origins': 'https://other.example.org',
                    'crm_success_url': 'https://other.example.org/thanks',
                    }, {
                    'user': crm.manager.id,
                    'application': 'rest',
                    }])
        cls.key, cls.other_key, cls.rest_key = (
            site.key, other.key, rest.key)
        cancelled, = Application.create([{
                    'user': web.id, 'application': 'crm_lead_capture'}])
        Application.cancel([cancelled])
        cls.cancelled_key = cancelled.key
        cls.members = sorted([crm.alice.id, crm.bob.id])
        cls.north, cls.south = crm.north.id, crm.south.id
        cls.company = crm.company.id
        cls.manager = crm.manager.id
        party, = Party.create([{
                    'name': "Acme Industries Ltd",
                    'contact_mechanisms': [('create', [{
                                    'type': 'email',
                                    'value': 'buyer@acme.example.com',
                                    }])],
                    }])
        cls.acme = party.id

    def post(self, data=None, key=None, headers=None, form=False, **kwargs):
        headers = dict(headers or {})
        key = self.key if key is None else key
        if key:
            headers.setdefault('Authorization', f'Bearer {key}')
        if form:
            kwargs['data'] = data
        elif data is not None:
            kwargs['data'] = json.dumps(data)
            kwargs['content_type'] = 'application/json'
        return self.client().post(
            f'/{self.db_name}/crm/leads', headers=headers, **kwargs)

    def lead(self, lead_id):
        with Transaction().start(self.db_name, 0, readonly=True):
            Lead = Pool().get('crm.lead')
            lead = Lead(lead_id)
            return {
                'name': lead.name,
                'team': lead.team.id if lead.team else None,
                'owner': lead.owner.id if lead.owner else None,
                'party': lead.party.id if lead.party else None,
                'contact_name': lead.contact_name,
                'company_name': lead.company_name,
                'email': lead.email,
                'phone': lead.phone,
                'campaign': (lead.marketing_campaign.name
                    if lead.marketing_campaign else None),
                'medium': (lead.marketing_medium.name
                    if lead.marketing_medium else None),
                'source': (lead.marketing_source.name
                    if lead.marketing_source else None),
                'create_uid': lead.create_uid.login,
                }

    def count_leads(self, **domain):
        with Transaction().start(self.db_name, 0, readonly=True):
            Lead = Pool().get('crm.lead')
            return Lead.search(
                [(k, '=', v) for k, v in domain.items()], count=True)

    def test_json_post_creates_lead(self):
        "A JSON post creates a raw lead of the key's team: 201 and its id"
        response = self.post({
                'contact_name': "Jane Doe",
                'company_name': "Doe Consulting",
                'email': " Jane.Doe@Example.COM ",
                'phone': "01 42 68 53 00",
                'country': 'fr',
                'message': "Please call me about a quote.",
                })
        self.assertEqual(response.status_code, 201, response.data)
        lead_id = response.json['id']
        self.assertTrue(response.headers['Location'].endswith(
                f'/{quote(self.db_name, safe="")}'
                f'/rest/model/crm.lead/{lead_id}'))
        lead = self.lead(lead_id)
        self.assertEqual(lead['team'], self.north)
        self.assertEqual(lead['email'], 'jane.doe@example.com')
        self.assertEqual(lead['phone'], '+33142685300')
        self.assertEqual(lead['contact_name'], "Jane Doe")
        self.assertIsNone(lead['party'])
        self.assertEqual(lead['name'], "Web form: Doe Consulting")
        self.assertEqual(lead['create_uid'], 'website')
        # Default campaign of the key when the form gives none
        self.assertEqual(lead['campaign'], 'always-on')

    def test_form_post(self):
        "A plain HTML form post (urlencoded or multipart) is accepted"
        for form in [
                {'contact_name': "Form Person", 'email': 'form@example.net',
                    'utm_source': 'newsletter'},
                ]:
            response = self.post(form, form=True)
            self.assertEqual(response.status_code, 201, response.data)
            self.assertEqual(
                self.lead(response.json['id'])['source'], 'newsletter')
        response = self.client().post(
            f'/{self.db_name}/crm/leads?key={self.key}',
            data={'contact_name': "Multi Part", 'email': 'mp@example.net'},
            content_type='multipart/form-data')
        self.assertEqual(response.status_code, 201, response.data)
        self.assertEqual(
            self.lead(response.json['id'])['email'], 'mp@example.net')

    def test_form_post_redirects_to_success_url(self):
        "A form post of a key with a success URL is redirected there"
        response = self.post(
            {'contact_name': "Thanks Page", 'email': 'thanks@example.net'},
            key=self.other_key, form=True)
        self.assertEqual(response.status_code, 303)
        self.assertEqual(
            response.headers['Location'], 'https://other.example.org/thanks')

    def test_invalid_fields_listed(self):
        "400 lists every field in error and creates nothing"
        before = self.count_leads()
        response = self.post({
                'email': 'not an email',
                'phone': '12',
                'utm_campaign': '<script>',
                'utm_medium': 'x' * 101,
                'favourite_colour': 'blue',
                'country': 'ZZ',
                'company_name': ['a', 'list'],
                })
        self.assertEqual(response.status_code, 400, response.data)
        self.assertEqual(response.json['error'], 'invalid')
        errors = {(e['field'], e['error']) for e in response.json['fields']}
        self.assertEqual(errors, {
                ('email', 'invalid'),
                ('phone', 'invalid'),
                ('utm_campaign', 'invalid'),
                ('utm_medium', 'too_long'),
                ('favourite_colour', 'unknown'),
                ('country', 'invalid'),
                ('company_name', 'invalid'),
                })
        self.assertTrue(all(e['message'] for e in response.json['fields']))
        self.assertEqual(self.count_leads(), before)

    def test_missing_contact(self):
        "A name without email nor phone is refused"
        response = self.post({'contact_name': "Nobody"})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            [(e['field'], e['error']) for e in response.json['fields']],
            [('email', 'required')])
        response = self.post(b'{not json', form=True,
            content_type='application/json')
        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json['fields'][0]['message'],
            "The body must be a JSON object or a form.")
        response = self.post(['a', 'list'])
        self.assertEqual(response.status_code, 400)
        response = self.post(b'plain', form=True, content_type='text/plain')
        self.assertEqual(response.status_code, 415)
        self.assertIn("application/json", response.json['message'])
        response = self.post({'contact_name': "K", 'email': 'k@example.net'},
            headers={'Idempotency-Key': 'x' * 256})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            response.json['fields'][0]['field'], 'Idempotency-Key')
        self.assertIn("255", response.json['fields'][0]['message'])

    def test_bad_key(self):
        "No key, an unknown, a cancelled or a REST key: 401"
        data = {'contact_name': "Eve", 'email': 'eve@example.net'}
        for key in ['', 'not-a-key', self.cancelled_key, self.rest_key]:
            with self.subTest(key=key):
                response = self.post(data, key=key)
                self.assertEqual(response.status_code, 401)
                self.assertIn('WWW-Authenticate', response.headers)
        self.assertEqual(self.count_leads(email='eve@example.net'), 0)

    def test_huge_body(self):
        "A body over 64 KiB is refused with 413"
        response = self.post(
            {'contact_name': "Big", 'email': 'big@example.net',
                'message': 'x' * 70000})
        self.assertEqual(response.status_code, 413)

    def test_idempotency_key(self):
        "A retried post with the same key creates one lead, same answer"
        data = {'contact_name': "Retry Rita", 'email': 'rita@example.net'}
        key = uuid.uuid4().hex
        first = self.post(data, headers={'Idempotency-Key': key})
        second = self.post(data, headers={'Idempotency-Key': key})
        self.assertEqual(first.status_code, 201)
        self.assertEqual(second.status_code, 201)
        self.assertEqual(first.json, second.json)
        self.assertEqual(first.headers['Location'], second.headers['Location'])
        self.assertEqual(second.headers.get('Idempotent-Replayed'), 'true')
        self.assertEqual(self.count_leads(email='rita@example.net'), 1)

        changed = self.post(
            {**data, 'phone': '+33142685300'},
            headers={'Idempotency-Key': key})
        self.assertEqual(changed.status_code, 422)
        # The key belongs to the application: another site may reuse it
        other = self.post(
            data, key=self.other_key, headers={'Idempotency-Key': key})
        self.assertEqual(other.status_code, 201)
        self.assertNotEqual(other.json, first.json)
        self.assertEqual(self.count_leads(email='rita@example.net'), 2)

    def test_cors_allowed_origin(self):
        "An allowed origin gets its preflight and the CORS headers"
        client = self.client()
        response = client.options(
            f'/{self.db_name}/crm/leads',
            headers={
                'Origin': 'https://shop.example.com',
                'Access-Control-Request-Method': 'POST',
                'Access-Control-Request-Headers':
                'authorization, content-type',
                })
        self.assertEqual(response.status_code, 204)
        self.assertEqual(
            response.headers['Access-Control-Allow-Origin'],
            'https://shop.example.com')
        self.assertIn('Authorization',
            response.headers['Access-Control-Allow-Headers'])
        self.assertIn('POST', response.headers['Access-Control-Allow-Methods'])

        response = self.post(
            {'contact_name': "Cors Carl", 'email': 'carl@example.net'},
            headers={'Origin': SITE})
        self.assertEqual(response.status_code, 201, response.data)
        self.assertEqual(
            response.headers['Access-Control-Allow-Origin'], SITE)
        self.assertIn('Location',
            response.headers['Access-Control-Expose-Headers'])

    def test_cors_refused_origin(self):
        "An origin not listed for the key gets 403 and no CORS header"
        response = self.client().options(
            f'/{self.db_name}/crm/leads?key={self.key}',
            headers={
                'Origin': 'https://other.example.org',
                'Access-Control-Request-Method': 'POST',
                })
        self.assertEqual(response.status_code, 403)
        self.assertNotIn('Access-Control-Allow-Origin', response.headers)
        response = self.client().options(
            f'/{self.db_name}/crm/leads',
            headers={'Origin': 'https://evil.example.net',
                'Access-Control-Request-Method': 'POST'})
        self.assertEqual(response.status_code, 403)
        self.assertIn("https://evil.example.net", response.json['message'])
        self.assertIn("not allowed", response.json['message'])

        response = self.post(
            {'contact_name': "Mallory", 'email': 'mallory@example.net'},
            headers={'Origin': 'https://other.example.org'})
        self.assertEqual(response.status_code, 403)
        self.assertNotIn('Access-Control-Allow-Origin', response.headers)
        self.assertEqual(self.count_leads(email='mallory@example.net'), 0)

    def test_duplicate_links_existing_party(self):
        "A contact matching an existing party is linked to it"
        response = self.post({
                'contact_name': "Bob Buyer",
                'company_name': "ACME Industries",
                'email': 'Buyer@Acme.example.com',
                })
        self.assertEqual(response.status_code, 201)
        lead = self.lead(response.json['id'])
        self.assertEqual(lead['party'], self.acme)
        # The raw contact data stays on the lead
        self.assertEqual(lead['contact_name'], "Bob Buyer")

        response = self.post({
                'contact_name': "Someone New",
                'email': 'new.person@unknown.example.org',
                })
        self.assertIsNone(self.lead(response.json['id'])['party'])

    def test_utm_creates_campaign_medium_source(self):
        "UTM names of the request become the lead's campaign, medium, source"
        response = self.post({
                'contact_name': "Utm Ursula", 'email': 'ursula@example.net',
                'utm_campaign': 'Spring-Sale 2026', 'utm_medium': 'cpc',
                'utm_source': 'google',
                })
        self.assertEqual(response.status_code, 201, response.data)
        lead = self.lead(response.json['id'])
        self.assertEqual(
            (lead['campaign'], lead['medium'], lead['source']),
            ('spring-sale 2026', 'cpc', 'google'))
        # The same names again reuse the records
        response = self.post({
                'contact_name': "Utm Victor", 'email': 'victor@example.net',
                'utm_campaign': 'spring-sale 2026', 'utm_medium': 'CPC',
                })
        with Transaction().start(self.db_name, 0, readonly=True):
            Campaign = Pool().get('marketing.campaign')
            self.assertEqual(Campaign.search(
                    [('name', '=', 'spring-sale 2026')], count=True), 1)

    def test_round_robin(self):
        "Leads of the key's team go to its members in turn"
        owners = []
        for i in range(4):
            response = self.post({
                    'contact_name': f"Robin {i}",
                    'email': f'robin{i}@example.net'})
            self.assertEqual(response.status_code, 201)
            owners.append(self.lead(response.json['id'])['owner'])
        self.assertEqual(sorted(owners[:2]), self.members)
        self.assertEqual(owners[2:], owners[:2])

    def test_rest_api_reads_leads(self):
        "trytond's REST API serves crm.lead with a 'rest' key (doc/api.rst)"
        response = self.post(
            {'contact_name': "Rest Rachel", 'email': 'rachel@example.net'})
        lead_id = response.json['id']
        headers = {'Authorization': f'Bearer {self.rest_key}'}
        response = self.client().get(
            f'/{self.db_name}/rest/model/crm.lead/{lead_id}',
            headers=headers, query_string=[('f', 'email'), ('f', 'name')])
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.json['email'], 'rachel@example.net')
        domain = urlsafe_b64encode(json.dumps(
                [['email', '=', 'rachel@example.net']]).encode()).decode()
        response = self.client().get(
            f'/{self.db_name}/rest/model/crm.lead', headers=headers,
            query_string=[('d', domain), ('f', 'stage.name')])
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.json[0]['id'], lead_id)
        self.assertEqual(response.json[0]['stage']['name'], "New")
        response = self.client().get(
            f'/{self.db_name}/rest/model/crm.lead/{lead_id}',
            headers={'Authorization': f'Bearer {self.key}'})
        self.assertEqual(response.status_code, 401)

        # A button, then a create with the company in the context
        response = self.client().post(
            f'/{self.db_name}/rest/model/crm.lead/{lead_id}/won',
            headers=headers)
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(self.count_leads(id=lead_id, state='won'), 1)
        context = urlsafe_b64encode(
            json.dumps({'company': self.company}).encode()).decode()
        response = self.client().post(
            f'/{self.db_name}/rest/model/crm.activity',
            headers={**headers, 'X-Tryton-Context': context},
            query_string=[('f', 'subject')],
            data=json.dumps({
                    'subject': "Call back", 'type': 'call',
                    'origin': f'crm.lead,{lead_id}',
                    'user': self.manager,
                    'start': {'__class__': 'datetime', 'year': 2026,
                        'month': 12, 'day': 2, 'hour': 9, 'minute': 0,
                        'second': 0, 'microsecond': 0},
                    }),
            content_type='application/json')
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.json['subject'], "Call back")

    def test_origins_validated(self):
        "An allowed origin with a path or another scheme is refused"
        with Transaction().start(self.db_name, 0) as transaction:
            Application = Pool().get('res.user.application')
            application = Application.check(self.key, 'crm_lead_capture')
            for value in ['https://www.example.com/contact', 'ftp://x.org',
                    'www.example.com']:
                with self.subTest(value=value):
                    application.crm_origins = value
                    with self.assertRaises(Exception):
                        application.save()
            transaction.rollback()

    def test_erase_forgets_idempotency_data(self):
        "Erasing the party erases what the idempotency rows keep"
        key = uuid.uuid4().hex
        response = self.post({
                'contact_name': "Erase Me", 'company_name': "Acme Industries",
                'email': 'buyer@acme.example.com'},
            headers={'Idempotency-Key': key})
        self.assertEqual(response.status_code, 201)
        with Transaction().start(self.db_name, 0) as transaction:
            pool = Pool()
            Party = pool.get('party.party')
            Request = pool.get('crm.lead.capture.request')
            Erase = pool.get('party.erase', type='wizard')
            request, = Request.search([('key', '=', key)])
            self.assertTrue(request.request_hash)
            Party.write([Party(self.acme)], {'active': False})
            session_id, _, _ = Erase.create()
            erase = Erase(session_id)
            erase.ask.party = Party(self.acme)
            with Transaction().set_context(active_test=False):
                lead = Pool().get('crm.lead')(response.json['id'])
                self.assertEqual(lead.party.id, self.acme)
            erase.transition_erase()
            values, = Request.read(
                [request.id], ['request_hash', 'response'])
            self.assertIsNone(values['request_hash'])
            self.assertIsNone(values['response'])
            transaction.rollback()


    @unittest.skipIf(backend.name != 'postgresql',
        "the batch thread needs a database shared between threads")
    def test_concurrent_posts_grouped(self):
        "Simultaneous posts go through the batch thread, each answered"
        if not config.has_section('crm'):
            config.add_section('crm')
            self.addCleanup(config.remove_section, 'crm')
        config.set('crm', 'capture_batch', 'True')
        self.addCleanup(config.set, 'crm', 'capture_batch', 'False')
        answers = {}

        def post(i):
            answers[i] = self.post({
                    'contact_name': f"Crowd {i}",
                    'email': f'crowd{i}@example.net',
                    'utm_source': 'crowd'})
        threads = [threading.Thread(target=post, args=(i,))
            for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual({a.status_code for a in answers.values()}, {201})
        ids = {a.json['id'] for a in answers.values()}
        self.assertEqual(len(ids), 12)
        for i, answer in answers.items():
            lead = self.lead(answer.json['id'])
            self.assertEqual(lead['email'], f'crowd{i}@example.net')
            self.assertEqual(lead['source'], 'crowd')

    def test_batch(self):
        "Posts processed together answer each its own result"
        from ..capture import process, request_hash
        data = {'contact_name': "Batch Bea", 'email': 'bea@example.net'}
        items = [
            {'key': self.key, 'data': {'contact_name': f"Batch {i}",
                    'email': f'batch{i}@example.net',
                    'utm_campaign': 'batch-campaign'}}
            for i in range(4)]
        items += [
            {'key': 'wrong', 'data': data},
            {'key': self.key, 'data': {'contact_name': "No contact"}},
            {'key': self.key, 'data': data, 'origin': 'https://evil.example',
                },
            {'key': self.key, 'data': data, 'idempotency_key': 'k1',
                'digest': request_hash(data)},
            {'key': self.key, 'data': data, 'idempotency_key': 'k1',
                'digest': request_hash(data)},
            {'key': self.key, 'data': {**data, 'phone': '+33142685300'},
                'idempotency_key': 'k1',
                'digest': request_hash({**data, 'phone': '+33142685300'})},
            ]
        with Transaction().start(self.db_name, 0) as transaction:
            pool = Pool()
            Lead = pool.get('crm.lead')
            Campaign = pool.get('marketing.campaign')
            results = process(items)
            self.assertEqual([r['status'] for r in results],
                [201] * 4 + [401, 400, 403, 201, 201, 422])
            ids = [r['body']['id'] for r in results[:4]]
            self.assertEqual(len(set(ids)), 4)
            self.assertEqual(results[7]['body'], results[8]['body'])
            self.assertTrue(results[8].get('replayed'))
            leads = Lead.browse(ids)
            owners = [l.owner.id for l in leads]
            self.assertEqual(sorted(owners[:2]), self.members)
            self.assertEqual(owners[2:], owners[:2])
            self.assertEqual(
                {l.marketing_campaign.name for l in leads},
                {'batch-campaign'})
            self.assertEqual(Campaign.search(
                    [('name', '=', 'batch-campaign')], count=True), 1)
            self.assertEqual(Lead.search(
                    [('email', '=', 'bea@example.net')], count=True), 1)
            transaction.rollback()

    def test_capture_request_access(self):
        "Only administrators read the idempotency rows"
        with Transaction().start(self.db_name, self.manager,
                context={'_check_access': True}, readonly=True):
            Request = Pool().get('crm.lead.capture.request')
            with self.assertRaises(AccessError):
                Request.search([])
        with Transaction().start(self.db_name, 1,
                context={'_check_access': True}, readonly=True):
            Request = Pool().get('crm.lead.capture.request')
            Request.search([])
