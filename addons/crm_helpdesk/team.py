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
