"""The document of a scheduled report, without Tryton: a PDF (reportlab),
a spreadsheet (openpyxl) or a CSV file made from a title, the filters
used, columns, rows and a chart. The caller translates every word and
turns the records into plain values (see subscription.py)."""
import csv
import datetime as dt
import io
import os
from dataclasses import dataclass, field
from decimal import Decimal
from xml.sax.saxutils import escape

FORMATS = {
    # format: (extension, MIME type)
    'pdf': ('pdf', 'application/pdf'),
    'xlsx': ('xlsx', 'application/vnd.openxmlformats-officedocument'
        '.spreadsheetml.sheet'),
    'csv': ('csv', 'text/csv'),
    }

# Column types and the values they hold
TYPES = {
    'text',        # str
    'integer',     # int
    'number',      # int, float or Decimal shown with digits decimals
    'percent',     # a fraction: 0.25 is 25 %
    'date',        # datetime.date
    'datetime',    # datetime.datetime
    'timedelta',   # datetime.timedelta
    'boolean',     # bool
    }
NUMERIC = {'integer', 'number', 'percent', 'timedelta'}

LABELS = {
    'company': "Company",
    'date': "Date of the report",
    'total': "Total",
    'page': "Page %(page)s of %(pages)s",
    'empty': "No records match these filters.",
    'yes': "Yes",
    'no': "No",
    'chart': "Chart",
    'report': "Report",
    }


@dataclass
class Column:
    name: str
    string: str
    type: str = 'text'
    digits: int = 2
    # Whether the table ends with the sum of the column
    total: bool = False

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"unknown column type {self.type!r}")


@dataclass
class Chart:
    "Bars or a line of each series over the labels"
    type: str                   # 'bar' or 'line'
    title: str
    labels: list
    series: list                # [(name, [value per label])]

    def __post_init__(self):
        if self.type not in {'bar', 'line'}:
            raise ValueError(f"unknown chart type {self.type!r}")


@dataclass
class Report:
    title: str
    columns: list
    rows: list                  # [[value per column]]
    subtitle: str = ''
    company: str = ''
    filters: list = field(default_factory=list)   # [(label, text)]
    date: dt.datetime = None    # when the figures were taken
    chart: Chart = None
    labels: dict = field(default_factory=dict)    # words over LABELS
    date_format: str = '%Y-%m-%d'
    decimal_point: str = '.'
    thousands_sep: str = ','

    def label(self, key, **values):
        text = self.labels.get(key) or LABELS[key]
        return text % values if values else text

    def totals(self):
        "The sums of the total columns (None for the others)"
        totals = []
        for index, column in enumerate(self.columns):
            if not column.total:
                totals.append(None)
                continue
            values = [r[index] for r in self.rows if r[index] is not None]
            start = dt.timedelta() if column.type == 'timedelta' else 0
            totals.append(sum(values, start))
        return totals

    def format(self, column, value):
        "The value as the PDF shows it"
        if value is None or value == '':
            return ''
        if column.type == 'boolean':
            return self.label('yes') if value else self.label('no')
        if column.type == 'integer':
            return self._number(value, 0)
        if column.type == 'number':
            return self._number(value, column.digits)
        if column.type == 'percent':
            return self._number(value * 100, column.digits) + ' %'
        if column.type == 'date':
            return value.strftime(self.date_format)
        if column.type == 'datetime':
            return value.strftime(self.date_format + ' %H:%M')
        if column.type == 'timedelta':
            seconds = int(value.total_seconds())
            sign, seconds = ('-' if seconds < 0 else ''), abs(seconds)
            return '%s%d:%02d:%02d' % (
                sign, seconds // 3600, seconds // 60 % 60, seconds % 60)
        return str(value)

    def _number(self, value, digits):
        text = '{:,.{}f}'.format(Decimal(str(value)), digits)
        return text.translate(str.maketrans({
                    ',': self.thousands_sep, '.': self.decimal_point}))


def render(report, format_):
    "(data, extension, MIME type) of the report in the format"
    renderer = {'pdf': to_pdf, 'xlsx': to_xlsx, 'csv': to_csv}[format_]
    extension, mimetype = FORMATS[format_]
    return renderer(report), extension, mimetype


def to_csv(report):
    """UTF-8 (with a byte order mark, which spreadsheets need to read it as
    UTF-8), a header row and one line per row: machine-readable values
    (ISO dates, a dot as decimal point), no totals"""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\r\n')
    writer.writerow([c.string for c in report.columns])
    for row in report.rows:
        writer.writerow([_csv_value(c, v)
                for c, v in zip(report.columns, row)])
    return out.getvalue().encode('utf-8-sig')


def _csv_value(column, value):
    if value is None:
        return ''
    if column.type == 'boolean':
        return '1' if value else '0'
    if column.type in {'date', 'datetime'}:
        return value.isoformat()
    if column.type == 'timedelta':
        return str(value.total_seconds())
    if column.type == 'number' and not isinstance(value, int):
        return '{:.{}f}'.format(Decimal(str(value)), column.digits)
    return str(value)


def _xlsx_format(column):
    if column.type == 'integer':
        return '#,##0'
    decimals = ('.' + '0' * column.digits) if column.digits else ''
    return {
        'number': '#,##0' + decimals,
        'percent': '0' + decimals + '%',
        'date': 'yyyy-mm-dd',
        'datetime': 'yyyy-mm-dd hh:mm',
        'timedelta': '[h]:mm:ss',
        }.get(column.type)


def to_xlsx(report):
    """A sheet with the title, filters and the table (bold header, number
    formats, a total row); the chart's figures and a native chart on a
    second sheet"""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _sheet_title(report.title or report.label('report'))
    bold = Font(bold=True)
    sheet.append([report.title])
    sheet['A1'].font = Font(bold=True, size=14)
    if report.subtitle:
        sheet.append([report.subtitle])
    if report.company:
        sheet.append([report.label('company'), report.company])
    for label, text in report.filters:
        sheet.append([label, text])
    if report.date:
        sheet.append([report.label('date'), report.date])
        sheet.cell(sheet.max_row, 2).number_format = 'yyyy-mm-dd hh:mm'
    sheet.append([])

    sheet.append([c.string for c in report.columns])
    header = sheet.max_row
    fill = PatternFill('solid', start_color='DDDDDD')
    for cell in sheet[header]:
        cell.font = bold
        cell.fill = fill
    formats = [_xlsx_format(c) for c in report.columns]
    for row in report.rows:
        sheet.append([_xlsx_value(c, v, report)
                for c, v in zip(report.columns, row)])
        _set_formats(sheet[sheet.max_row], formats)
    last = sheet.max_row
    if any(c.total for c in report.columns) and report.rows:
        totals = report.totals()
        if totals[0] is None:
            totals[0] = report.label('total')
        sheet.append(totals)
        _set_formats(sheet[sheet.max_row], formats)
        for cell in sheet[sheet.max_row]:
            cell.font = bold
    if report.columns:
        sheet.freeze_panes = sheet.cell(header + 1, 1)
        sheet.auto_filter.ref = '%s:%s%d' % (
            sheet.cell(header, 1).coordinate,
            get_column_letter(len(report.columns)), max(last, header))
    for index, column in enumerate(report.columns, 1):
        width = max([len(column.string)] + [
                len(report.format(column, r[index - 1]))
                for r in report.rows[:200]])
        sheet.column_dimensions[get_column_letter(index)].width = min(
            max(width + 2, 10), 60)
    if report.chart and report.chart.labels:
        _xlsx_chart(workbook, report)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _sheet_title(title):
    "A sheet title Excel accepts"
    for char in '[]:*?/\\':
        title = title.replace(char, ' ')
    return title.strip()[:31] or 'Sheet'


def _xlsx_value(column, value, report):
    if column.type == 'boolean' and value is not None:
        return report.format(column, value)
    return value


def _set_formats(cells, formats):
    for cell, number_format in zip(cells, formats):
        if number_format:
            cell.number_format = number_format


def _xlsx_chart(workbook, report):
    from openpyxl.chart import BarChart, LineChart, Reference

    chart_ = report.chart
    sheet = workbook.create_sheet(_sheet_title(report.label('chart')))
    sheet.append([''] + [name for name, _ in chart_.series])
    for index, label in enumerate(chart_.labels):
        sheet.append([label] + [
                float(values[index]) for _, values in chart_.series])
    chart = BarChart() if chart_.type == 'bar' else LineChart()
    chart.title = chart_.title
    data = Reference(sheet, min_col=2, max_col=1 + len(chart_.series),
        min_row=1, max_row=1 + len(chart_.labels))
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=2,
            max_row=1 + len(chart_.labels)))
    chart.width, chart.height = 24, 12
    sheet.add_chart(chart, 'E2')


# PDF

def _font():
    """A TrueType font with the glyphs of most languages (DejaVu, from the
    system), else Vera, shipped with reportlab: (regular, bold) names"""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    import reportlab

    if 'CrmReport' in pdfmetrics.getRegisteredFontNames():
        return 'CrmReport', 'CrmReport-Bold'
    candidates = [
        ('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
            '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf'),
        ]
    shipped = os.path.join(os.path.dirname(reportlab.__file__), 'fonts')
    candidates.append((os.path.join(shipped, 'Vera.ttf'),
            os.path.join(shipped, 'VeraBd.ttf')))
    for regular, bold in candidates:
        if os.path.isfile(regular) and os.path.isfile(bold):
            pdfmetrics.registerFont(TTFont('CrmReport', regular))
            pdfmetrics.registerFont(TTFont('CrmReport-Bold', bold))
            from reportlab.lib.fonts import addMapping
            addMapping('CrmReport', 0, 0, 'CrmReport')
            addMapping('CrmReport', 1, 0, 'CrmReport-Bold')
            return 'CrmReport', 'CrmReport-Bold'
    return 'Helvetica', 'Helvetica-Bold'


def to_pdf(report):
    """A document: title, company, filters, date, the chart, the table of
    the rows with its totals, page numbers"""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_RIGHT
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table,
        TableStyle)

    regular, bold = _font()
    pagesize = landscape(A4) if len(report.columns) > 6 else A4
    body = ParagraphStyle('body', fontName=regular, fontSize=9, leading=11)
    cell = ParagraphStyle('cell', body, fontSize=8, leading=10)
    number = ParagraphStyle('number', cell, alignment=TA_RIGHT)
    title = ParagraphStyle('title', body, fontName=bold, fontSize=16,
        leading=20, spaceAfter=2 * mm)
    subtitle = ParagraphStyle('subtitle', body, fontSize=11, leading=14,
        spaceAfter=2 * mm, textColor=colors.HexColor('#444444'))

    def text(value, style=body):
        return Paragraph(escape(str(value)), style)

    story = [text(report.title, title)]
    if report.subtitle:
        story.append(text(report.subtitle, subtitle))
    facts = []
    if report.company:
        facts.append((report.label('company'), report.company))
    facts.extend(report.filters)
    if report.date:
        facts.append((report.label('date'),
                report.date.strftime(report.date_format + ' %H:%M')))
    if facts:
        fact = ParagraphStyle('fact', body, fontName=bold)
        table = Table([[text(k, fact), text(v)] for k, v in facts],
            colWidths=[45 * mm, None], hAlign='LEFT')
        table.setStyle(TableStyle([
                    ('VALIGN', (0, 0), (-1, -1), 'TOP'),
                    ('BOTTOMPADDING', (0, 0), (-1, -1), 1),
                    ('TOPPADDING', (0, 0), (-1, -1), 1),
                    ('LEFTPADDING', (0, 0), (0, -1), 0),
                    ]))
        story.append(table)
    story.append(Spacer(0, 5 * mm))

    width = pagesize[0] - 30 * mm
    if report.chart and report.chart.labels:
        story.append(KeepTogether([
                    text(report.chart.title, ParagraphStyle(
                            'chart', body, fontName=bold, fontSize=11,
                            leading=14)),
                    _pdf_chart(report.chart, width,
                        (55 if pagesize[0] > pagesize[1] else 75) * mm,
                        regular, report),
                    Spacer(0, 5 * mm)]))

    if not report.rows:
        story.append(text(report.label('empty')))
    else:
        header = [Paragraph(escape(c.string), ParagraphStyle(
                    'head', cell, fontName=bold,
                    alignment=TA_RIGHT if c.type in NUMERIC else 0))
            for c in report.columns]
        data = [header]
        for row in report.rows:
            data.append([
                    text(report.format(c, v),
                        number if c.type in NUMERIC else cell)
                    for c, v in zip(report.columns, row)])
        has_totals = any(c.total for c in report.columns)
        if has_totals:
            totals = report.totals()
            total_style = ParagraphStyle('total', number, fontName=bold)
            line = [text(report.format(c, t), total_style)
                if t is not None else '' for c, t in zip(
                    report.columns, totals)]
            if totals[0] is None:
                line[0] = text(report.label('total'), ParagraphStyle(
                        'total_label', cell, fontName=bold))
            data.append(line)
        table = Table(data, repeatRows=1,
            colWidths=_col_widths(report, width, regular, bold))
        style = [
            ('VALIGN', (0, 0), (-1, -1), 'TOP'),
            ('LINEBELOW', (0, 0), (-1, 0), 0.8, colors.black),
            ('BACKGROUND', (0, 0), (-1, 0), colors.HexColor('#E4E4E4')),
            ('ROWBACKGROUNDS', (0, 1), (-1, -2 if has_totals else -1),
                [colors.white, colors.HexColor('#F5F5F5')]),
            ('TOPPADDING', (0, 0), (-1, -1), 2),
            ('BOTTOMPADDING', (0, 0), (-1, -1), 2),
            ]
        if has_totals:
            style.append(('LINEABOVE', (0, -1), (-1, -1), 0.8, colors.black))
            # The totals never alone on a page
            style.append(('NOSPLIT', (0, -2), (-1, -1)))
        table.setStyle(TableStyle(style))
        story.append(table)

    out = io.BytesIO()
    document = SimpleDocTemplate(out, pagesize=pagesize,
        leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
        bottomMargin=15 * mm, title=report.title, author=report.company,
        subject=report.subtitle)
    document.build(story, canvasmaker=_numbered_canvas(report, regular))
    return out.getvalue()


def _col_widths(report, width, font, bold):
    """The widths of the columns on the page: as wide as their longest text,
    the text columns narrower (wrapped) when that is too wide"""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    padding = 8
    totals = report.totals()
    natural = []
    for index, column in enumerate(report.columns):
        texts = [report.format(column, r[index]) for r in report.rows[:500]]
        sizes = [stringWidth(t, font, 8) for t in texts]
        sizes.append(stringWidth(report.format(column, totals[index]), bold, 8))
        # A header wraps at its spaces
        sizes.append(max(stringWidth(w, bold, 8)
                for w in (column.string.split() or [''])))
        natural.append(min(max(sizes) + padding, width * 0.4))
    if sum(natural) <= width:
        return [n * width / sum(natural) for n in natural] if natural else []
    fixed = {i for i, c in enumerate(report.columns)
        if c.type in NUMERIC | {'date', 'datetime', 'boolean'}}
    left = width - sum(natural[i] for i in fixed)
    flexible = sum(n for i, n in enumerate(natural) if i not in fixed)
    if left <= 0 or not flexible:
        return [n * width / sum(natural) for n in natural]
    return [n if i in fixed else n * left / flexible
        for i, n in enumerate(natural)]


def _numbered_canvas(report, font):
    "A canvas that writes 'Page n of m' once it knows m"
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            count = len(self._pages)
            for page in self._pages:
                self.__dict__.update(page)
                self.setFont(font, 8)
                self.drawRightString(
                    self._pagesize[0] - 15 * mm, 8 * mm,
                    report.label('page', page=self._pageNumber, pages=count))
                if report.title:
                    self.drawString(15 * mm, 8 * mm, report.title)
                super().showPage()
            super().save()
    return NumberedCanvas


def _pdf_chart(chart_, width, height, font, report):
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.charts.linecharts import HorizontalLineChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors

    palette = [colors.HexColor(c) for c in (
            '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
            '#8c564b')]
    drawing = Drawing(width, height)
    chart = VerticalBarChart() if chart_.type == 'bar' \
        else HorizontalLineChart()
    legend = len(chart_.series) > 1
    rotate = len(chart_.labels) > 6
    chart.x, chart.y = 55, 45 if rotate else 20
    chart.width = width - chart.x - (110 if legend else 10)
    chart.height = height - chart.y - 10
    chart.data = [[float(v or 0) for v in values]
        for _, values in chart_.series]
    names = [_shorten(str(label), 18) for label in chart_.labels]
    chart.categoryAxis.categoryNames = names
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 7
    if rotate:
        chart.categoryAxis.labels.angle = 30
        chart.categoryAxis.labels.boxAnchor = 'ne'
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.labels.fontSize = 7
    values = [v for series in chart.data for v in series]
    biggest = max(map(abs, values), default=0)
    digits = 0
    if all(float(v).is_integer() for v in values) and biggest <= 10:
        chart.valueAxis.valueStep = 1
    elif biggest < 10:
        digits = 2
    chart.valueAxis.labelTextFormat = lambda v: report._number(v, digits)
    if min(values, default=0) >= 0:
        chart.valueAxis.valueMin = 0
    for index in range(len(chart.data)):
        color = palette[index % len(palette)]
        if chart_.type == 'bar':
            chart.bars[index].fillColor = color
            chart.bars[index].strokeColor = None
        else:
            chart.lines[index].strokeColor = color
            chart.lines[index].strokeWidth = 1.5
    drawing.add(chart)
    if legend:
        key = Legend()
        key.x, key.y = width - 100, height - 15
        key.fontName, key.fontSize = font, 7
        key.alignment = 'right'
        key.colorNamePairs = [(palette[i % len(palette)], _shorten(name, 20))
            for i, (name, _) in enumerate(chart_.series)]
        drawing.add(key)
    return drawing


def _shorten(text, size):
    return text if len(text) <= size else text[:size - 1] + '…'
