import datetime as dt

from trytond.model import fields
from trytond.pool import Pool, PoolMeta


class Team(metaclass=PoolMeta):
    __name__ = 'crm.team'

    helpdesk_assignment = fields.Selection([
            ('manual', "Manual"),
            ('round_robin', "Round Robin"),
            ('least_open', "Fewest Open Tickets"),
            ], "Ticket Assignment", required=True, sort=False,
        help="Who gets a new ticket of the team without assignee.")

    @classmethod
    def default_helpdesk_assignment(cls):
        return 'manual'

    def helpdesk_assignees(self, count):
        "The user ids who get the next count tickets (None: nobody)"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        members = [u.id for u in self.members if u.active]
        if not members or self.helpdesk_assignment == 'manual':
            return [None] * count
        if self.helpdesk_assignment == 'round_robin':
            return self.next_owners(count)
        load = Ticket.open_counts(members)
        assignees = []
        for _ in range(count):
            user = min(members, key=lambda u: (load[u], u))
            load[user] += 1
            assignees.append(user)
        return assignees

    def working_clock(self):
        "How the team counts working time: its business hours, else 24x7"
        return WorkingClock(self.calendar)


class WorkingClock:
    "Working time of a calendar, or plain time without one"

    def __init__(self, calendar):
        self.calendar = calendar

    def add(self, start, duration):
        if self.calendar:
            return self.calendar.add_working_time(start, duration)
        return start + duration

    def between(self, start, end):
        if self.calendar:
            return self.calendar.working_time(start, end)
        return max(end - start, dt.timedelta())
