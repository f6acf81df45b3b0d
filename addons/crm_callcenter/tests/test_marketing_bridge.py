"Outbound call lists from crm_marketing's segments"
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction

from crm_core.tests.tools import CrmDatabaseTestCase, create_party

from . import WITH_EXTRAS
from .test_callcenter import CallCenterSetup


class MarketingBridgeTestCase(CrmDatabaseTestCase):
    "Test call lists from segments"
    modules = WITH_EXTRAS

    @with_transaction()
    def test_call_list_from_segment(self):
        """Starting a list adds the segment's members with a phone; later
        members come with Add from Segment, once each"""
        pool = Pool()
        CallList = pool.get('callcenter.call_list')
        Segment = pool.get('crm.segment')
        Party = pool.get('party.party')
        cc = CallCenterSetup()
        with set_company(cc.company):
            create_party("Former One", phones=['+4930901830'],
                lifecycle_status='former')
            create_party("Former Mail", emails=['former@example.com'],
                lifecycle_status='former')
            create_party("Prospect", phones=['+4930901831'])
            segment, = Segment.create([{'name': "Win back",
                        'lifecycle_statuses': ['former']}])
            call_list, = CallList.create([{'name': "Win back",
                        'queue': cc.hotline.id, 'segment': segment.id}])
            CallList.run([call_list])
            call_list = CallList(call_list.id)
            self.assertEqual([(e.party.name, e.number)
                    for e in call_list.entries],
                [("Former One", '+4930901830')])
            later = create_party("Former Two", phones=['+4930901832'])
            Party.write([later], {'lifecycle_status': 'former'})
            Segment.refresh([segment])
            CallList.add_segment([call_list])
            CallList.add_segment([call_list])
            self.assertEqual(sorted(e.party.name
                    for e in CallList(call_list.id).entries),
                ["Former One", "Former Two"])
