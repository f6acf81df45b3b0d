"""The documents of scheduled reports, read back: the PDF's text (pypdf),
the spreadsheet's cells (openpyxl), the CSV's lines"""
import csv
import datetime as dt
import io
import unittest
from decimal import Decimal

import pypdf
from openpyxl import load_workbook

from crm_reports import render


def pipeline_report(rows=None, **values):
    columns = [
        render.Column('stage', "Stage"),
        render.Column('period', "Expected Close", 'date'),
        render.Column('count', "Opportunities", 'integer', total=True),
        render.Column('expected', "Expected Revenue", 'number', 2,
            total=True),
        render.Column('rate', "Win Rate", 'percent', 1),
        render.Column('cycle', "Cycle", 'timedelta', total=True),
        render.Column('hot', "Hot", 'boolean'),
        ]
    if rows is None:
        rows = [
            ["Qualified", dt.date(2026, 3, 1), 2, Decimal('1500.00'), 0.25,
                dt.timedelta(hours=30), True],
            ["Proposition Łódź", dt.date(2026, 4, 1), 1,
                Decimal('2000.50'), 0.5, dt.timedelta(minutes=90), False],
            ["Negotiation", None, 3, Decimal('12000'), None, None, None],
            ]
    values.setdefault('chart', render.Chart('bar',
            "Expected Revenue by Stage",
            ["Qualified", "Proposition Łódź", "Negotiation"],
            [("Expected Revenue",
                    [Decimal('1500'), Decimal('2000.50'), 12000])]))
    return render.Report(
        title="North pipeline", subtitle="Pipeline",
        company="Dunder Mifflin Scranton",
        filters=[("Dates", "Previous Month: 03/01/2026 to 03/31/2026"),
            ("Team", "North"), ("Salesperson", "All"),
            ("Currency", "Euro")],
        date=dt.datetime(2026, 4, 1, 7, 0),
        columns=columns, rows=rows,
        date_format='%m/%d/%Y', **values)


def pdf_text(data):
    reader = pypdf.PdfReader(io.BytesIO(data))
    return reader, '\n'.join(p.extract_text() for p in reader.pages)


class RenderTestCase(unittest.TestCase):
    "Rendering of scheduled reports"

    def test_pdf(self):
        "The PDF has the title, company, filters, date, chart and figures"
        data, extension, mimetype = render.render(pipeline_report(), 'pdf')
        self.assertEqual((extension, mimetype), ('pdf', 'application/pdf'))
        self.assertTrue(data.startswith(b'%PDF'))
        reader, text = pdf_text(data)
        self.assertEqual(reader.metadata.title, "North pipeline")
        for expected in [
                "North pipeline", "Pipeline", "Dunder Mifflin Scranton",
                "Previous Month: 03/01/2026 to 03/31/2026", "North",
                "Salesperson", "Euro", "04/01/2026 07:00",
                "Expected Revenue by Stage",
                "Proposition Łódź", "03/01/2026",
                "1,500.00", "2,000.50", "12,000.00", "25.0 %",
                "30:00:00", "1:30:00", "Yes", "No",
                # totals
                "Total", "15,500.50", "31:30:00",
                "Page 1 of 1"]:
            self.assertIn(expected, text)
        lines = text.splitlines()
        self.assertIn("6", [line.strip() for line in lines])

    def test_pdf_pages(self):
        "A long table goes on over numbered pages, its header repeated"
        rows = [[f"Deal {i}", dt.date(2026, 1, 1), 1, Decimal(i), 0.1,
                dt.timedelta(), False] for i in range(150)]
        data, _, _ = render.render(pipeline_report(rows=rows), 'pdf')
        reader, text = pdf_text(data)
        pages = len(reader.pages)
        self.assertGreater(pages, 2)
        for number in range(1, pages + 1):
            page = reader.pages[number - 1].extract_text()
            self.assertIn(f"Page {number} of {pages}", page)
            self.assertIn("Opportunities", page)
        self.assertIn("Deal 149", text)
        self.assertIn("11,175.00", text)  # sum of 0..149

    def test_pdf_line_chart_empty_and_translated(self):
        "A line chart, no rows and the words of another language"
        report = pipeline_report(rows=[], chart=render.Chart('line',
                "Gewichteter Umsatz nach Monat", ["01.03.2026", "01.04.2026"],
                [("Gewichtet", [10, 20]), ("Erwartet", [30, 40])]),
            labels={'empty': "Keine Datensätze.",
                'page': "Seite %(page)s von %(pages)s",
                'company': "Unternehmen"},
            decimal_point=',', thousands_sep='.')
        _, text = pdf_text(render.to_pdf(report))
        self.assertIn("Keine Datensätze.", text)
        self.assertIn("Seite 1 von 1", text)
        self.assertIn("Unternehmen", text)
        self.assertIn("Gewichteter Umsatz nach Monat", text)
        self.assertNotIn("Total", text)

        report = pipeline_report(decimal_point=',', thousands_sep='.')
        _, text = pdf_text(render.to_pdf(report))
        self.assertIn("12.000,00", text)

    def test_xlsx(self):
        "The spreadsheet has a bold header, numbers with formats, totals"
        data, extension, _ = render.render(pipeline_report(), 'xlsx')
        self.assertEqual(extension, 'xlsx')
        workbook = load_workbook(io.BytesIO(data))
        sheet = workbook.worksheets[0]
        self.assertEqual(sheet.title, "North pipeline")
        self.assertEqual(sheet['A1'].value, "North pipeline")
        self.assertTrue(sheet['A1'].font.bold)
        values = [[c.value for c in row] for row in sheet.iter_rows()]
        self.assertIn(["Team", "North"] + [None] * 5, values)
        header = values.index(["Stage", "Expected Close", "Opportunities",
                "Expected Revenue", "Win Rate", "Cycle", "Hot"]) + 1
        self.assertTrue(all(c.font.bold for c in sheet[header]))
        first = sheet[header + 1]
        self.assertEqual(first[0].value, "Qualified")
        self.assertEqual(first[1].value, dt.datetime(2026, 3, 1))
        self.assertEqual(first[1].number_format, 'yyyy-mm-dd')
        self.assertEqual(first[2].value, 2)
        self.assertEqual(first[2].number_format, '#,##0')
        self.assertEqual(first[3].value, 1500)
        self.assertEqual(first[3].number_format, '#,##0.00')
        self.assertEqual(first[4].value, 0.25)
        self.assertEqual(first[4].number_format, '0.0%')
        self.assertEqual(first[5].value, dt.timedelta(hours=30))
        self.assertEqual(first[6].value, "Yes")
        total = sheet[header + 4]
        self.assertEqual(total[0].value, "Total")
        self.assertTrue(total[0].font.bold)
        self.assertEqual(total[2].value, 6)
        self.assertAlmostEqual(total[3].value, 15500.5)
        self.assertIsNone(total[4].value)
        self.assertEqual(sheet.freeze_panes, f'A{header + 1}')
        # The chart's figures on their own sheet, with a native chart
        chart = workbook.worksheets[1]
        self.assertEqual([[c.value for c in row] for row in chart.iter_rows()],
            [[None, "Expected Revenue"], ["Qualified", 1500],
                ["Proposition Łódź", 2000.5], ["Negotiation", 12000]])
        self.assertEqual(len(chart._charts), 1)

    def test_csv(self):
        "The CSV is UTF-8 with a header and machine-readable values"
        data, extension, mimetype = render.render(pipeline_report(), 'csv')
        self.assertEqual((extension, mimetype), ('csv', 'text/csv'))
        self.assertTrue(data.startswith('\ufeff'.encode('utf-8')))
        rows = list(csv.reader(io.StringIO(data.decode('utf-8-sig'))))
        self.assertEqual(rows, [
                ["Stage", "Expected Close", "Opportunities",
                    "Expected Revenue", "Win Rate", "Cycle", "Hot"],
                ["Qualified", "2026-03-01", "2", "1500.00", "0.25",
                    "108000.0", "1"],
                ["Proposition Łódź", "2026-04-01", "1", "2000.50", "0.5",
                    "5400.0", "0"],
                ["Negotiation", "", "3", "12000.00", "", "", ""],
                ])

    def test_totals(self):
        "Totals of the total columns only, empty values left out"
        report = pipeline_report()
        self.assertEqual(report.totals(), [None, None, 6, Decimal('15500.50'),
                None, dt.timedelta(hours=31, minutes=30), None])

    def test_unknown(self):
        with self.assertRaises(ValueError):
            render.Column('x', "X", 'money')
        with self.assertRaises(ValueError):
            render.Chart('pie', "X", [], [])
        with self.assertRaises(KeyError):
            render.render(pipeline_report(), 'odt')
