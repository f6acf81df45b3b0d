#!/usr/bin/env python3
"""Web lead capture throughput: JSON posts to POST /<db>/crm/leads over
loopback, from client threads of this process with keep-alive connections,
served by two trytond processes. Target: 150 leads/s."""
import http.client
import json
import os
import random
import threading
import time
from urllib.parse import quote

import benchlib
from benchlib import check

TARGET = 150
SERVERS = 2
# Concurrent visitors per trytond process (each a keep-alive connection)
CLIENTS_PER_SERVER = int(os.environ.get('CRM_BENCH_CLIENTS', 8))
KNOWN_PARTIES = 500
# Names of people and companies are made of these: varied like real ones
SYLLABLES = ['ka', 'lo', 'mi', 'ra', 'ven', 'tor', 'sel', 'dun', 'bri',
    'an', 'ex', 'ol', 'tri', 'sa', 'nor', 'vik', 'el', 'zu', 'per', 'gal']


def setup(name, parties):
    """Company, teams (the first one with round robin), a web site user
    with a lead capture key, and parties with an email that some posts
    reuse (they get linked). Return the key and the known emails."""
    from trytond.pool import Pool
    sales = benchlib.setup_sales(name)
    benchlib.insert_parties(name, parties, sales['admin'])
    with benchlib.transaction(
            name, sales['admin'], {'company': sales['company']}) as tx:
        pool = Pool()
        User = pool.get('res.user')
        Team = pool.get('crm.team')
        Application = pool.get('res.user.application')
        Party = pool.get('party.party')
        Team.write([Team(sales['teams'][0])], {'round_robin': True})
        web, = User.create([{
                    'login': 'bench_website', 'name': "Bench Web Site",
                    'company': sales['company'],
                    'companies': [('add', [sales['company']])],
                    }])
        application, = Application.create([{
                    'user': web.id, 'application': 'crm_lead_capture',
                    'crm_team': sales['teams'][0],
                    'crm_origins': 'https://www.example.com',
                    }])
        emails = [f'known{i}@customer{i}.example.com'
            for i in range(KNOWN_PARTIES)]
        Party.create([{
                    'name': f"Known Customer {i} Ltd",
                    'contact_mechanisms': [('create', [{
                                    'type': 'email', 'value': email}])],
                    } for i, email in enumerate(emails)])
        key = application.key
        tx.commit()
    benchlib.analyze(name)
    return key, emails


class Client(threading.Thread):
    "Posts leads on one keep-alive connection until the deadline"

    def __init__(self, number, port, path, key, emails, start, stop):
        super().__init__(daemon=True)
        self.number, self.port, self.path = number, port, path
        self.headers = {
            'Authorization': f'Bearer {key}',
            'Content-Type': 'application/json',
            'Origin': 'https://www.example.com',
            }
        self.emails = emails
        self.start_at, self.stop_at = start, stop
        self.created, self.errors, self.latencies = 0, {}, []
        self.samples = {}
        self.random = random.Random(number)

    def word(self):
        return ''.join(self.random.choice(SYLLABLES)
            for _ in range(self.random.randint(2, 4))).title()

    def body(self, i):
        rnd = self.random
        if rnd.random() < 0.1:
            email = rnd.choice(self.emails)
        else:
            email = f'visitor{self.number}.{i}@site{i % 97}.example.org'
        return json.dumps({
                'contact_name': f"{self.word()} {self.word()}",
                'company_name': f"{self.word()} {self.word()} GmbH",
                'email': email,
                'phone': f'+4930{self.number:02d}{i:06d}',
                'message': "Please send me an offer.",
                'utm_campaign': rnd.choice(['spring', 'summer', 'brand']),
                'utm_medium': rnd.choice(['cpc', 'email', 'social']),
                'utm_source': rnd.choice(['google', 'newsletter']),
                })

    def run(self):
        connection = http.client.HTTPConnection(
            '127.0.0.1', self.port, timeout=30)
        while time.monotonic() < self.start_at:
            time.sleep(0.001)
        i = 0
        while time.monotonic() < self.stop_at:
            i += 1
            started = time.monotonic()
            try:
                connection.request(
                    'POST', self.path, body=self.body(i),
                    headers=self.headers)
                response = connection.getresponse()
                data = response.read()
                status = response.status
                if status != 201:
                    self.samples.setdefault(status, data[:300])
                if response.getheader('Connection', '').lower() == 'close':
                    connection.close()
            except (OSError, http.client.HTTPException) as exception:
                status = type(exception).__name__
                connection.close()
            if status == 201:
                self.created += 1
                self.latencies.append(time.monotonic() - started)
            else:
                self.errors[status] = self.errors.get(status, 0) + 1
        connection.close()


def post_leads(name, servers, key, emails, seconds):
    path = f'/{quote(name)}/crm/leads'
    start = time.monotonic() + 0.5
    stop = start + seconds
    clients = [
        Client(i, servers[i % len(servers)][1], path, key, emails,
            start, stop)
        for i in range(len(servers) * CLIENTS_PER_SERVER)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    created = sum(c.created for c in clients)
    errors = {}
    for client in clients:
        for status, count in client.errors.items():
            errors[status] = errors.get(status, 0) + count
    latencies = sorted(l for c in clients for l in c.latencies)
    for client in clients:
        for status, sample in client.samples.items():
            benchlib.log(f"answer {status}: {sample!r}")
    return created, errors, latencies


def count_leads(name):
    from trytond.transaction import Transaction
    with benchlib.transaction(name, readonly=True):
        cursor = Transaction().connection.cursor()
        cursor.execute('SELECT COUNT(*), COUNT(party), COUNT(owner) '
            'FROM crm_lead')
        return cursor.fetchone()


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        seconds=(30, 5), parties=(20_000, 1_000))
    with benchlib.bench_database(keep=options.keep) as name:
        key, emails = setup(name, options.parties)
        benchlib.release(name)
        servers = benchlib.start_servers(
            name, SERVERS, probe='/crm/leads')
        try:
            benchlib.log("warm-up: 5 s")
            post_leads(name, servers, key, emails, 5)
            before, _, _ = count_leads(name)
            benchlib.log(f"posting for {options.seconds} s with "
                f"{len(servers) * CLIENTS_PER_SERVER} keep-alive clients "
                f"on {len(servers)} trytond processes")
            created, errors, latencies = post_leads(
                name, servers, key, emails, options.seconds)
        finally:
            benchlib.stop_servers(servers)
        total, linked, owned = count_leads(name)
        rate = created / options.seconds
        benchlib.log(f"created {created} leads ({rate:.0f}/s), "
            f"errors {errors or 'none'}")
        if latencies:
            benchlib.log("latency median %.1f ms, p95 %.1f ms" % (
                    1000 * latencies[len(latencies) // 2],
                    1000 * latencies[int(len(latencies) * 0.95)]))
        benchlib.log(f"database: {total} leads, {linked} linked to a "
            f"party, {owned} with an owner (round robin)")
        check(total - before == created, (total, before, created))
        benchlib.release(name)
    benchlib.print_figures([('lead_capture_per_s', rate, 'leads/s')])
    if rate < TARGET:
        benchlib.log(f"below the target of {TARGET} leads/s")


if __name__ == '__main__':
    main()
