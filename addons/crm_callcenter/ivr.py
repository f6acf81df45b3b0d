"""IVR menus: a tree of nodes the caller walks with the keypad.

The CRM decides every step of a call (IVR.step); the IVR runner
(ivr_runner.py) only speaks, listens and transfers. The nodes that read
helpdesk tickets work only when crm_helpdesk is activated: the model is
looked up in the pool, never imported."""
import datetime as dt
import re

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields,
    sequence_ordered, tree)
from trytond.model.exceptions import ValidationError
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .call import normalised

KINDS = [
    ('menu', "Menu"),
    ('say', "Announcement"),
    ('hours', "Business Hours Branch"),
    ('ticket', "Open Ticket Branch (Helpdesk)"),
    ('ticket_status', "Ticket Status (Helpdesk)"),
    ('queue', "Transfer to Queue"),
    ('agent', "Transfer to Agent"),
    ('external', "Transfer to Number"),
    ('voicemail', "Voicemail"),
    ('callback', "Callback Request"),
    ('hangup', "Hang Up"),
    ]
# Kinds that need crm_helpdesk activated
HELPDESK_KINDS = {'ticket', 'ticket_status'}
BRANCHES = {'hours', 'ticket'}
# Kinds whose prompt is spoken (a branch only decides)
SPEAKING = {k for k, _ in KINDS} - BRANCHES
CONDITIONS = [
    (None, ""),
    ('yes', "Yes"),
    ('no', "No"),
    ]
DIGIT = re.compile(r'^[0-9*#]$')
# An extension, a number or a SIP URI without spaces
TARGET = re.compile(r'^(sips?:)?[^\s"<>;]{1,120}$')
EXTENSION = re.compile(r'^[A-Za-z0-9+._-]{1,64}$')
TICKET_CLOSED = ['solved', 'cancelled']
# Nodes one step may walk through (branches, busy agents): the tree has no
# loop, this only bounds a corrupt one
MAX_DEPTH = 64


class IVRValidationError(ValidationError):
    pass


def _now():
    return dt.datetime.now()


def helpdesk_activated():
    "Whether crm_helpdesk's tickets are in the pool (activated)"
    try:
        Pool().get('helpdesk.ticket')
    except KeyError:
        return False
    return True


def is_wav(data):
    data = bytes(data or b'')
    return len(data) >= 12 and data[:4] == b'RIFF' and data[8:12] == b'WAVE'


class IVR(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'callcenter.ivr'
    __string__ = "IVR Menu"

    name = fields.Char("Name", required=True, translate=True)
    number = fields.Char("Number", required=True, strip=True,
        help="The number customers dial to reach the menu.")
    company = fields.Many2One('company.company', "Company", required=True)
    extension = fields.Char("Runner Extension", strip=True,
        help="The SIP user of the IVR runner that answers the menu's calls; "
        "the number when empty.")
    team = fields.Many2One('crm.team', "Team", ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        help="Whose calendar gives the business hours of the business "
        "hours branches.")
    language = fields.Many2One('ir.lang', "Language", ondelete='RESTRICT',
        help="The language of the prompts (the voice that speaks them); "
        "the company's when empty.")
    root = fields.Many2One('callcenter.ivr.node', "First Node",
        ondelete='SET NULL',
        domain=[('ivr', '=', Eval('id', -1)), ('parent', '=', None)],
        help="Where a call starts; the first top node when empty.")
    nodes = fields.One2Many('callcenter.ivr.node', 'ivr', "Nodes",
        filter=[('parent', '=', None)])

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('number_unique', Unique(t, t.company, t.number),
                'crm_callcenter.msg_ivr_number_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.number, Index.Equality())))
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    def get_rec_name(self, name):
        return f'{self.name} ({self.number})'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        bool_op = 'AND' if operator.startswith('!') or operator.startswith(
            'not ') else 'OR'
        return [bool_op,
            ('name', operator, operand, *extra),
            ('number', operator, operand, *extra),
            ]

    @classmethod
    def validate_fields(cls, menus, field_names):
        super().validate_fields(menus, field_names)
        if field_names is None or field_names & {'extension', 'number'}:
            for menu in menus:
                extension = menu.runner_extension
                if not EXTENSION.match(extension or ''):
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_extension_invalid',
                            extension=extension or '', ivr=menu.rec_name))
        if field_names is None or 'root' in field_names:
            for menu in menus:
                if menu.root and (menu.root.ivr != menu or menu.root.parent):
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_root_other_menu',
                            node=menu.root.rec_name, ivr=menu.rec_name))

    @property
    def runner_extension(self):
        return self.extension or self.number

    @classmethod
    def by_number(cls, number, company=None):
        domain = [('number', '=', number)]
        if company:
            domain.append(('company', '=', company))
        menus = cls.search(domain, limit=1)
        return menus[0] if menus else None

    def route_call(self, call_id, from_number, now):
        """The routing decision of a call to the menu's number: the
        runner's extension answers it"""
        return {'action': 'ivr', 'target': self.runner_extension,
            'ivr': self.number}

    def start_node(self):
        "The node a call starts with"
        if self.root:
            return self.root
        Node = Pool().get('callcenter.ivr.node')
        nodes = Node.search([
                ('ivr', '=', self.id),
                ('parent', '=', None),
                ], limit=1)
        return nodes[0] if nodes else None

    def language_code(self, node=None):
        "The language the node speaks: its own, the menu's, the company's"
        lang = (node.language if node else None) or self.language
        if not lang and self.company.party:
            lang = getattr(self.company.party, 'lang', None)
        return lang.code if lang else 'en'

    def step(self, call_id, from_number=None, node=None, digits=None,
            attempt=1, waited=0, now=None, application=None):
        """What the runner does next in call_id (doc/ivr.rst): node is the
        node it played last (None: the call starts), digits what the
        caller pressed then (None: nothing), attempt how many times that
        node's prompt was played, waited the seconds spent on that node"""
        return _Step(self, call_id, from_number, now or _now(), waited,
            application).resume(node, digits, attempt)


class _Step:
    "One step of a call in a menu: the answer to the runner"

    def __init__(self, menu, call_id, from_number, now, waited, application):
        self.menu = menu
        self.call_id = call_id
        self.from_number = from_number
        self.now = now
        self.waited = waited or 0
        self.application = application
        self._party = None
        self._party_known = False

    def resume(self, node, digits, attempt):
        if node is None:
            start = self.menu.start_node()
            if not start:
                return self.answer(None, then={'action': 'hangup'})
            return self.enter(start)
        if node.kind == 'menu':
            return self.choose(node, digits, attempt)
        if node.kind == 'queue':
            # Nobody was free: try again
            return self.enter(node, attempt=attempt)
        return self.next(node)

    # answers
    def answer(self, node, say=None, play=None, collect=None, then=None,
            attempt=1, retry_after=None, lang=None):
        if isinstance(say, (list, tuple)):
            say = ' '.join(s for s in say if s) or None
        return {
            'node': node.id if node else None,
            'say': say or None,
            'lang': lang or self.menu.language_code(node),
            'play': play,
            'collect': collect,
            'then': then,
            'attempt': attempt,
            'retry_after': retry_after,
            }

    def audio_path(self, node):
        "The path of the node's audio on the CRM, or None"
        pool = Pool()
        Node = pool.get('callcenter.ivr.node')
        with Transaction().set_context(
                **{'%s.prompt_audio' % Node.__name__: 'size'}):
            size = Node(node.id).prompt_audio
        if not size:
            return None
        stamp = int((node.write_date or node.create_date
                or dt.datetime(2000, 1, 1)).timestamp())
        database = Transaction().database.name
        return (f'/{database}/callcenter/ivr/audio/{node.id}'
            f'?v={stamp}-{int(size)}')

    def prompt(self, node):
        "(text, audio path) of the node's prompt"
        if node.kind not in SPEAKING:
            return None, None
        return node.prompt or None, self.audio_path(node)

    def lang(self, node):
        return self.menu.language_code(node)

    def message(self, node, name, **variables):
        return gettext(f'crm_callcenter.msg_ivr_{name}', self.lang(node),
            **variables)

    # walking the tree
    def choose(self, menu_node, digits, attempt):
        "The caller pressed digits (None: nothing) at a menu"
        prefix = None
        if digits:
            self.store_dtmf(menu_node, digits, attempt)
            option = menu_node.option(digits[0])
            if option:
                return self.enter(option)
            prefix = self.message(menu_node, 'invalid_option')
        if attempt <= (menu_node.retries or 0):
            return self.enter(menu_node, attempt=attempt + 1, prefix=prefix)
        default = menu_node.fallback_option()
        if default:
            return self.enter(default, prefix=prefix)
        return self.answer(menu_node, say=prefix,
            then={'action': 'hangup'}, attempt=attempt)

    def next(self, node, prefix=None, depth=0):
        "The node after node (an announcement's next), or hang up"
        children = list(node.children)
        if children:
            return self.enter(children[0], prefix=prefix, depth=depth + 1)
        return self.answer(node, say=prefix, then={'action': 'hangup'})

    def enter(self, node, attempt=1, prefix=None, depth=0):
        "The answer when the call reaches node"
        if depth > MAX_DEPTH:
            return self.answer(node, then={'action': 'hangup'})
        kind = node.kind
        if kind in HELPDESK_KINDS and not helpdesk_activated():
            # The ticket nodes are skipped without crm_helpdesk
            if kind == 'ticket':
                return self.branch(node, False, prefix, depth)
            return self.next(node, prefix=prefix, depth=depth)
        text, audio = self.prompt(node)
        if kind == 'menu':
            return self.answer(node, say=[prefix, text], play=audio,
                collect={'max_digits': 1, 'timeout': node.timeout or 5},
                attempt=attempt)
        if kind == 'say':
            return self.go_on(node, [prefix, text], audio)
        if kind == 'hours':
            return self.branch(node, self.is_open(node), prefix, depth)
        if kind == 'ticket':
            return self.branch(node, self.open_ticket() is not None, prefix,
                depth)
        if kind == 'ticket_status':
            return self.go_on(node, [prefix, self.ticket_status(node, text)],
                audio)
        if kind == 'queue':
            return self.to_queue(node, attempt, [prefix, text], audio)
        if kind == 'agent':
            return self.to_agent(node, [prefix, text], audio, depth)
        if kind == 'external':
            return self.answer(node, say=[prefix, text], play=audio,
                then={'action': 'external', 'target': node.number})
        if kind == 'voicemail':
            return self.answer(node, say=[prefix, text], play=audio,
                then={'action': 'voicemail', 'target': node.number or None})
        if kind == 'callback':
            return self.callback(node, [prefix, text], audio)
        return self.answer(node, say=[prefix, text], play=audio,
            then={'action': 'hangup'})

    def go_on(self, node, say, audio):
        "Say it, then the next node (the runner asks again), or hang up"
        if node.children:
            return self.answer(node, say=say, play=audio)
        return self.answer(node, say=say, play=audio,
            then={'action': 'hangup'})

    def branch(self, node, answer, prefix, depth):
        child = node.branch_child('yes' if answer else 'no')
        if child:
            return self.enter(child, prefix=prefix, depth=depth + 1)
        return self.answer(node, say=prefix, then={'action': 'hangup'})

    # decisions
    def is_open(self, node):
        "Whether it is the business hours of the node's (menu's) team"
        team = node.team or self.menu.team
        if team and team.calendar:
            return team.working_clock().is_working(self.now)
        return True

    def party(self):
        "The caller's party, when exactly one has the number"
        if not self._party_known:
            Party = Pool().get('party.party')
            number = normalised(self.from_number)
            found = ()
            if number:
                found = Party._parties_by_contact(phones=[number]).get(
                    number.lower(), ())
            self._party = Party(min(found)) if len(found) == 1 else None
            self._party_known = True
        return self._party

    def open_ticket(self):
        "The caller's most recent open helpdesk ticket, or None"
        party = self.party()
        if not party or not helpdesk_activated():
            return None
        Ticket = Pool().get('helpdesk.ticket')
        tickets = Ticket.search([
                ('company', '=', self.menu.company.id),
                ['OR',
                    ('party', '=', party.id),
                    ('contact', '=', party.id),
                    ],
                ('kind', 'not in', TICKET_CLOSED),
                ], order=[('opened', 'DESC'), ('id', 'DESC')], limit=1)
        return tickets[0] if tickets else None

    def ticket_status(self, node, template):
        "The sentence telling the status of the caller's open ticket"
        lang = self.lang(node)
        ticket = self.open_ticket()
        if not ticket:
            return self.message(node, 'ticket_none')
        Ticket = Pool().get('helpdesk.ticket')
        with Transaction().set_context(language=lang):
            ticket = Ticket(ticket.id)
            values = {
                'number': ticket.number or str(ticket.id),
                'stage': ticket.stage.name if ticket.stage else '',
                }
        if template:
            try:
                return template % values
            except (KeyError, ValueError, TypeError):
                pass
        return self.message(node, 'ticket_status', **values)

    def to_queue(self, node, attempt, say, audio):
        "A free agent of the queue (the ACD's choice), or wait"
        from .cti import Router
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        queue = node.queue
        router = Router(self.menu.company.id)
        decision = router.to_queue(queue, self.call_id, self.from_number,
            self.waited, self.now, seen=set())
        if attempt > 1:
            # Said when the call first came to the queue
            say, audio = None, None
        action = decision.get('action')
        if action == 'agent':
            extra = decision.get('targets', [])[1:]
            if extra:
                # One phone takes the transfer: the others of a ring-all
                # queue are free again
                agents = Agent.by_extension(extra, self.menu.company.id)
                Agent.set_status(list(agents.values()), 'available',
                    now=self.now)
            return self.answer(node, say=say, play=audio, then={
                    'action': 'queue', 'target': decision['target'],
                    'queue': queue.number}, attempt=attempt)
        if action == 'wait':
            if attempt == 1:
                say = [*say, self.message(node, 'queue_wait')]
            return self.answer(node, say=say, play=audio,
                attempt=attempt + 1,
                retry_after=decision.get('retry_after') or 5)
        if action == 'voicemail':
            return self.answer(node, say=say, play=audio, then={
                    'action': 'voicemail', 'target': node.number or None,
                    'queue': queue.number})
        if action == 'callback':
            # The router recorded the request
            return self.answer(node,
                say=[*(say or []), self.message(node, 'callback')],
                play=audio, then={'action': 'callback',
                    'target': queue.number, 'queue': queue.number})
        return self.answer(node, say=say, play=audio,
            then={'action': 'hangup', 'queue': queue.number})

    def to_agent(self, node, say, audio, depth):
        from .cti import Router
        agent = node.agent
        if agent.active and agent.free(self.now):
            Router(self.menu.company.id)._ringing([agent], self.call_id,
                self.from_number, agent.extension, None, self.now)
            return self.answer(node, say=say, play=audio, then={
                    'action': 'agent', 'target': agent.extension})
        busy = self.message(node, 'agent_busy')
        if node.children:
            return self.enter(node.children[0], prefix=busy, depth=depth + 1)
        return self.answer(node, say=busy, then={'action': 'hangup'})

    def callback(self, node, say, audio):
        Call = Pool().get('callcenter.call')
        Call.request_callback(node.queue, self.from_number, self.party(),
            self.now)
        if not any(say) and not audio:
            say = [self.message(node, 'callback')]
        queue = node.queue.number if node.queue else None
        return self.answer(node, say=say, play=audio,
            then={'action': 'callback', 'target': queue})

    def store_dtmf(self, node, digits, attempt):
        "A dtmf CTI event of the call for what the caller pressed"
        from .cti import validate
        Event = Pool().get('callcenter.event')
        timestamp = self.now.replace(tzinfo=dt.timezone.utc).timestamp()
        event = validate({
                'id': f'{self.call_id}:dtmf:{node.id}:{attempt}',
                'call_id': self.call_id,
                'type': 'dtmf',
                'timestamp': timestamp,
                'from': self.from_number,
                'to': self.menu.number,
                'digits': digits,
                'direction': 'inbound',
                })
        Event.ingest(self.menu.company.id, [event],
            application=self.application)


class IVRNode(tree(), sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'callcenter.ivr.node'
    __string__ = "IVR Node"

    name = fields.Char("Name", required=True)
    # Not required in the client: a node made under another one gets its
    # parent's menu (preprocess_values), checked by check_nodes
    ivr = fields.Many2One('callcenter.ivr', "IVR Menu", ondelete='CASCADE')
    parent = fields.Many2One('callcenter.ivr.node', "Parent",
        ondelete='CASCADE')
    children = fields.One2Many('callcenter.ivr.node', 'parent', "Next Nodes")
    parent_kind = fields.Function(fields.Selection(
            [(None, "")] + KINDS, "Parent Kind"),
        'on_change_with_parent_kind')
    digit = fields.Char("Key", size=1, strip=True,
        states={'invisible': Eval('parent_kind') != 'menu'},
        help="The key (0-9, * or #) that leads here from the menu above; "
        "empty: where the menu goes when the caller presses nothing "
        "valid.")
    condition = fields.Selection(CONDITIONS, "When",
        states={'invisible': ~Eval('parent_kind').in_(list(BRANCHES))},
        help="Under a business hours branch: yes = open, no = closed. "
        "Under an open ticket branch: yes = the caller has an open ticket. "
        "Empty: either.")
    kind = fields.Selection(KINDS, "Kind", required=True, sort=False)
    kind_string = kind.translated('kind')
    prompt = fields.Text("Prompt",
        states={'invisible': Eval('kind').in_(list(BRANCHES))},
        help="What is said when the call reaches the node. For a ticket "
        "status: %(number)s and %(stage)s are replaced by the caller's "
        "ticket.")
    language = fields.Many2One('ir.lang', "Language", ondelete='RESTRICT',
        states={'invisible': Eval('kind').in_(list(BRANCHES))},
        help="The language of the prompt (the voice that speaks it); the "
        "menu's when empty.")
    prompt_audio = fields.Binary("Prompt Audio", filename='prompt_audio_name',
        states={'invisible': Eval('kind').in_(list(BRANCHES))},
        help="A WAV recording played after the spoken prompt.")
    prompt_audio_name = fields.Char("Prompt Audio Name",
        states={'invisible': Eval('kind').in_(list(BRANCHES))})
    timeout = fields.Integer("Timeout",
        domain=['OR', ('timeout', '=', None),
            [('timeout', '>=', 1), ('timeout', '<=', 60)]],
        states={'invisible': Eval('kind') != 'menu'},
        help="Seconds to wait for a key after the prompt.")
    retries = fields.Integer("Retries",
        domain=['OR', ('retries', '=', None),
            [('retries', '>=', 0), ('retries', '<=', 10)]],
        states={'invisible': Eval('kind') != 'menu'},
        help="How many times the prompt is repeated when the caller "
        "presses nothing or a wrong key, before the node without key.")
    team = fields.Many2One('crm.team', "Team", ondelete='RESTRICT',
        states={'invisible': Eval('kind') != 'hours'},
        help="Whose business hours decide; the menu's team when empty.")
    queue = fields.Many2One('callcenter.queue', "Queue", ondelete='RESTRICT',
        states={'invisible': ~Eval('kind').in_(['queue', 'callback'])},
        help="Transfer: a free agent of the queue takes the call. "
        "Callback: a free agent of the queue calls back.")
    agent = fields.Many2One('callcenter.agent', "Agent", ondelete='RESTRICT',
        states={'invisible': Eval('kind') != 'agent'})
    number = fields.Char("Number", strip=True,
        states={'invisible': ~Eval('kind').in_(['external', 'voicemail'])},
        help="Where the call is transferred: a number, an extension or a "
        "SIP URI. Voicemail: the mailbox's number (without it the call "
        "ends after the prompt).")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        # No __access__ on ivr (it must then be required, which the client
        # would check before the server fills it): own access and rule
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.ivr, Index.Equality())),
                Index(t, (t.parent, Index.Equality())),
                })

    @classmethod
    def default_kind(cls):
        return 'menu'

    @classmethod
    def default_timeout(cls):
        return 5

    @classmethod
    def default_retries(cls):
        return 2

    @fields.depends('parent', '_parent_parent.kind')
    def on_change_with_parent_kind(self, name=None):
        return self.parent.kind if self.parent else None

    @fields.depends('parent', '_parent_parent.ivr')
    def on_change_parent(self):
        if self.parent and self.parent.ivr:
            self.ivr = self.parent.ivr

    @classmethod
    def fields_get(cls, fields_names=None, level=0):
        "The ticket kinds are offered only when crm_helpdesk is activated"
        result = super().fields_get(fields_names, level=level)
        if 'kind' in result and not helpdesk_activated():
            result['kind'] = dict(result['kind'])
            result['kind']['selection'] = [s for s in
                result['kind']['selection'] if s[0] not in HELPDESK_KINDS]
        return result

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if values.get('parent') and (mode == 'create' or 'ivr' not in values
                ) and not values.get('ivr'):
            # A node belongs to the menu of its parent
            values['ivr'] = cls(values['parent']).ivr.id
        if values.get('digit') == '':
            values['digit'] = None
        return values

    def option(self, digit):
        "The child of a menu that digit leads to"
        for child in self.children:
            if child.digit == digit:
                return child

    def fallback_option(self):
        "The child of a menu taken when the caller presses nothing valid"
        for child in self.children:
            if not child.digit:
                return child

    def branch_child(self, condition):
        "The child of a branch for its answer, else the one for either"
        either = None
        for child in self.children:
            if child.condition == condition:
                return child
            if not child.condition and either is None:
                either = child
        return either

    @classmethod
    def validate_fields(cls, nodes, field_names):
        super().validate_fields(nodes, field_names)
        cls.check_nodes(nodes)
        parents = {n.parent for n in nodes if n.parent}
        cls.check_siblings(parents)

    @classmethod
    def check_nodes(cls, nodes):
        helpdesk = helpdesk_activated()
        for node in nodes:
            name = node.rec_name
            if not node.ivr:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_no_menu', node=name))
            if node.kind in HELPDESK_KINDS and not helpdesk:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_needs_helpdesk',
                        node=name, kind=node.kind_string))
            if node.parent and node.parent.ivr != node.ivr:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_other_menu',
                        node=name, parent=node.parent.rec_name))
            if node.digit:
                if not DIGIT.match(node.digit):
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_node_digit_invalid',
                            node=name, digit=node.digit))
                if not node.parent or node.parent.kind != 'menu':
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_node_digit_not_menu',
                            node=name, digit=node.digit))
            if node.kind == 'menu':
                if not node.prompt and not node.prompt_audio:
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_node_menu_no_prompt',
                            node=name))
                if not any(c.digit for c in node.children):
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_node_menu_no_options',
                            node=name))
            if node.kind in BRANCHES and not node.children:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_branch_no_children',
                        node=name))
            if node.kind == 'queue' and not node.queue:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_no_queue', node=name))
            if node.kind == 'agent' and not node.agent:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_no_agent', node=name))
            if node.kind == 'external' and not node.number:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_no_number', node=name))
            if node.number and not TARGET.match(node.number):
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_number_invalid',
                        node=name, number=node.number))
            if node.kind in {'queue', 'callback'} and node.queue and \
                    node.queue.company != node.ivr.company:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_other_company',
                        node=name, target=node.queue.rec_name))
            if node.kind == 'agent' and node.agent and \
                    node.agent.company != node.ivr.company:
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_other_company',
                        node=name, target=node.agent.rec_name))
            if node.prompt_audio and not is_wav(node.prompt_audio):
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_audio_not_wav',
                        node=name))
            if node.kind == 'ticket_status' and node.prompt:
                try:
                    node.prompt % {'number': 'T1', 'stage': 'New'}
                except (KeyError, ValueError, TypeError):
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_node_template',
                            node=name))

    @classmethod
    def check_siblings(cls, parents):
        "A key leads to one node; a menu has one default, a branch one yes"
        for parent in parents:
            children = list(parent.children)
            by_digit, by_condition = {}, {}
            for child in children:
                key = child.digit or None
                if parent.kind == 'menu':
                    by_digit.setdefault(key, []).append(child)
                if parent.kind in BRANCHES:
                    by_condition.setdefault(
                        child.condition or None, []).append(child)
            for digit, same in by_digit.items():
                if len(same) < 2:
                    continue
                names = ', '.join(f'"{c.rec_name}"' for c in same)
                if digit is None:
                    raise IVRValidationError(gettext(
                            'crm_callcenter.msg_ivr_node_default_twice',
                            parent=parent.rec_name, nodes=names))
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_digit_twice',
                        parent=parent.rec_name, digit=digit, nodes=names))
            for condition, same in by_condition.items():
                if len(same) < 2:
                    continue
                raise IVRValidationError(gettext(
                        'crm_callcenter.msg_ivr_node_condition_twice',
                        parent=parent.rec_name,
                        nodes=', '.join(f'"{c.rec_name}"' for c in same)))
