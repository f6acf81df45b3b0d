"""With crm_bpm: start a process for every member of a segment."""
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction


class StartProcess(metaclass=PoolMeta):
    __name__ = 'bpm.instance.start'

    def _on_segments(self):
        return bool(self.model) and self.model.__name__ == 'crm.segment'

    def default_start(self, fields):
        values = super().default_start(fields)
        if self._on_segments():
            values['model'] = 'party.party'
        return values

    def do_start_process(self, action):
        if self._on_segments():
            Party = Pool().get('party.party')
            cursor = Transaction().connection.cursor()
            ids = set()
            for segment in self.records:
                cursor.execute(*segment.parties_query())
                ids.update(i for i, in cursor)
            # The wizard then runs on the members as if opened on them
            self.__dict__['model'] = Party
            self.__dict__['records'] = Party.browse(sorted(ids))
        return super().do_start_process(action)
