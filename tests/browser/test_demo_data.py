"""The demo data (scripts/demo_data.py) on the browser tests' database:
what a salesperson would recognise, and nothing created twice."""
import base64
import json
import re
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_demo_data(crm_server):
    result = subprocess.run(
        [sys.executable, str(ROOT / 'scripts' / 'demo_data.py'),
            '-d', crm_server.db],
        env=crm_server.env, cwd=ROOT, capture_output=True, text=True,
        check=True)
    created = int(re.search(r'\((\d+) records created', result.stdout)[1])
    counts = dict(
        (label.strip(), int(count)) for label, count in re.findall(
            r'^ +(\S.*?) +(\d+)$', result.stdout, re.MULTILINE))
    return created, counts


def test_demo_data_idempotent_and_complete(crm_server):
    created, counts = load_demo_data(crm_server)
    again, counts_again = load_demo_data(crm_server)
    assert (created, again) == (0, 0)
    assert counts == counts_again
    assert counts['users'] == 4
    assert counts['teams'] == 2
    assert counts['parties'] >= 60
    assert counts['products'] >= 15
    assert counts['leads'] + counts['opportunities'] >= 200
    assert min(counts['open'], counts['won'], counts['lost']) > 0
    assert counts['planned'] > 0 and counts['done'] > 0
    # typed in twice on purpose: both sides of each pair are suspects
    assert counts['suspected duplicates'] >= 6
    assert counts['lead capture keys'] == 1


def test_demo_data_helpdesk(crm_server):
    """Support teams on office hours with their SLA policies and canned
    responses, and tickets in every stage (crm_helpdesk)"""
    created, counts = load_demo_data(crm_server)
    assert created == 0
    # dora, and bob and carol who also answer tickets
    assert counts['support agents'] == 3
    assert counts['support teams'] == 2
    assert counts['SLA policies'] >= 3
    assert counts['canned responses'] >= 4
    assert counts['tickets'] >= 40
    for stage in ['new', 'in progress', 'waiting on customer', 'solved',
            'cancelled']:
        assert counts[stage] > 0, stage
    assert counts['at risk'] > 0 and counts['breached'] > 0
    assert counts['rated'] > 0
    assert counts['merged'] == 1
    assert counts['ticket messages'] > counts['tickets']
    assert counts['internal notes'] > 0


def demo_rpc(crm_server, login, password):
    """A JSON-RPC session of login on the served database (as non-browser
    clients open one): call(method, *params)"""
    url = f'{crm_server.url}/{crm_server.db}/rpc/'
    headers = {'Content-Type': 'application/json'}

    def call(method, *params):
        request = urllib.request.Request(url, method='POST', headers=headers,
            data=json.dumps({'id': 1, 'method': method,
                    'params': list(params)}).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert 'error' not in answer, (method, answer['error'])
        return answer['result']
    user_id, token, *_ = call(
        'common.db.login', login, {'password': password}, 'en')
    headers['Authorization'] = 'Session ' + base64.b64encode(
        f'{login}:{user_id}:{token}'.encode()).decode()
    return call


def test_demo_data_marketing(crm_server):
    """The marketing user mia, segments, consent, scoring rules, and
    campaigns done (with results and ROI), running and planned
    (crm_marketing)"""
    created, counts = load_demo_data(crm_server)
    assert created == 0
    assert counts['marketing users'] == 1
    assert counts['segments'] >= 5 and counts['static lists'] >= 1
    for status in ['planned', 'running', 'done']:
        assert counts[f'campaigns {status}'] >= 1, status
    assert 0 < counts['clicked'] < counts['reached'] <= (
        counts['campaign members'])
    assert counts['unsubscribed'] >= 1 and counts['bounced'] >= 1
    assert counts['consents'] >= 6 and counts['suppressed addresses'] >= 1
    assert counts['scoring rules'] >= 4
    assert counts['scored leads'] > 0 and counts['qualified leads'] > 0
    assert counts['best ROI %'] > 0

    # The same as mia sees it (her demo password works)
    call = demo_rpc(crm_server, 'mia', 'crm-demo-2026')
    segments = {s['name']: s for s in call('model.crm.segment.search_read',
            [], 0, None, None, ['name', 'kind', 'member_count'], {})}
    for name in ["German customers", "Prospects without activity for 60 "
            "days", "VIP customers", "Spring webinar invitees"]:
        assert segments[name]['member_count'] > 0, name
    assert segments["Spring webinar invitees"]['kind'] == 'static'
    campaigns = {c['name']: c for c in call(
            'model.marketing.campaign.search_read', [], 0, None, None,
            ['name', 'status', 'type', 'scenario', 'scenario.state',
                'targeted', 'reached', 'opened', 'clicked', 'responded',
                'lead_count', 'won_count', 'won_revenue', 'cost', 'roi'],
            {})}
    webinar = campaigns['spring-webinar']
    assert (webinar['status'], webinar['type']) == ('done', 'email')
    assert webinar['scenario.']['state'] == 'stopped'
    assert (webinar['targeted'] >= webinar['reached'] > webinar['opened']
        > webinar['clicked'] >= webinar['responded'] > 0)
    assert webinar['lead_count'] > webinar['won_count'] > 0
    # the funnel's figures make its ROI: (won revenue - cost) / cost
    revenue = Decimal(webinar['won_revenue']['decimal'])
    cost = Decimal(webinar['cost']['decimal'])
    assert revenue > cost > 0
    assert abs(webinar['roi'] - float((revenue - cost) / cost)) < 0.01
    launch = campaigns['tablet-t12-launch']
    assert (launch['status'], launch['type']) == ('running', 'email')
    # started on its segment: its scenario sent every member's email
    assert launch['scenario.']['state'] == 'running'
    assert launch['targeted'] == launch['reached'] > 0
    win_back = campaigns['win-back-prospects']
    assert (win_back['status'], win_back['targeted']) == ('planned', 0)
    rules = call('model.crm.lead.scoring.rule.search_read', [], 0, None,
        None, ['criterion'], {})
    assert {'country', 'source', 'opened', 'clicked'} <= {
        r['criterion'] for r in rules}
