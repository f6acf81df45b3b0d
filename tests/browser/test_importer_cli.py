"""The import command line, `python -m crm_core.importer`, on the served
database (the demo data loaded): every row accounted for, a progress bar,
the rejects file, nothing created twice, and an export that re-imports
as nothing new."""
import csv
import io
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / 'addons' / 'crm_core' / 'tests' / 'data'
SUMMARY = re.compile(
    r'(\d+) rows: (\d+) created, (\d+) updated, (\d+) merged, '
    r'(\d+) skipped, (\d+) rejected')


def importer(crm_server, *args):
    "Run the command; return (exit code, counts of its summary, stderr)"
    result = subprocess.run(
        [sys.executable, '-m', 'crm_core.importer', *map(str, args),
            '--database', crm_server.db, '--user', 'admin'],
        env=crm_server.env, cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    match = SUMMARY.search(result.stdout)
    assert match or '--export' in args, (result.stdout, result.stderr)
    counts = dict(zip(
            ['rows', 'created', 'updated', 'merged', 'skipped', 'rejected'],
            map(int, match.groups()))) if match else None
    return result.returncode, counts, result.stderr


def test_importer_cli(crm_server, tmp_path):
    source = DATA / 'parties-cp1252-semicolon.csv'
    rejects = tmp_path / 'rejects.csv'
    code, first, stderr = importer(
        crm_server, source, '--rejects', rejects)
    assert code == 0, stderr
    assert first['rows'] == sum(
        v for k, v in first.items() if k != 'rows')
    assert first['created'] > 0 and first['rejected'] > 0
    assert 'rows/s' in stderr  # the progress bar
    assert 'encoding cp1252' in stderr
    with open(rejects, newline='', encoding='utf-8-sig') as file:
        rejected = list(csv.reader(file))[1:]
    assert len(rejected) == first['rejected']

    code, again, stderr = importer(crm_server, source)
    assert code == 0, stderr
    assert again['rows'] == first['rows']
    assert again['created'] == 0

    export = tmp_path / 'parties.csv'
    code, _, stderr = importer(crm_server, export, '--export')
    assert code == 0, stderr
    header = next(csv.reader(io.StringIO(
                export.read_text(encoding='utf-8-sig'))))
    # the column names the import maps back to the same fields
    assert header[:3] == ['Name', 'Company', 'Email']
    code, reimport, stderr = importer(crm_server, export)
    assert code == 0, stderr
    assert reimport['rows'] > 0 and reimport['created'] == 0
    assert reimport['rejected'] == 0
