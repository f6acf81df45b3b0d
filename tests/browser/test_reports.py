"""Reports in sao (fixtures: conftest.py): the demo's sales manager opens
the Sales Manager dashboard from the menu and sees its charts and lists,
filled from the demo data."""
from playwright.sync_api import expect

from conftest import (
    DEMO_PASSWORD, active_tab, assert_no_error_dialog, login, open_menu,
    rpc, wait_idle)


def test_sales_manager_dashboard(page, crm_server):
    "Pipeline, forecast and won/lost charts and the neglected leads list"
    login(page, crm_server, 'manager', DEMO_PASSWORD)
    open_menu(page, 'Reporting', 'Dashboards', 'Sales Manager')
    tab = active_tab(page)
    actions = tab.locator('.board-action')
    expect(actions).to_have_count(4, timeout=30000)
    titles = ["Pipeline by Stage", "Forecast and Targets", "Won and Lost",
        "Neglected Leads"]
    # sao titles each part once its action is loaded
    for i, title in enumerate(titles):
        expect(actions.nth(i).locator('.panel-heading')).to_have_text(
            title, timeout=30000)
    wait_idle(page)
    assert_no_error_dialog(page)
    # The three graphs are drawn (an SVG with bars) from figures the
    # server gives: the pipeline has a bar per stage with open deals
    stages = rpc(page, 'model.crm.report.pipeline.search_read', [], 0,
        None, None, ['stage'], context={'period': 'month'})
    assert stages, "the demo data has an open pipeline"
    for i in range(3):
        chart = actions.nth(i).locator('svg')
        expect(chart.first).to_be_visible(timeout=30000)
        assert actions.nth(i).locator(
            'svg path, svg rect').count() > 1, titles[i]
    # The neglected leads list has the rows the server counts
    neglected = rpc(page, 'model.crm.report.neglected.search_count', [])
    rows = actions.nth(3).locator('tbody tr')
    if neglected:
        expect(rows.first).to_be_visible(timeout=30000)
    assert_no_error_dialog(page)
