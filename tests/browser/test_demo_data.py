"""The demo data (scripts/demo_data.py) on the browser tests' database:
what a salesperson would recognise, and nothing created twice."""
import re
import subprocess
import sys
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
