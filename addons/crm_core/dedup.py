"Find duplicate parties and merge them"
from collections import defaultdict

from sql import Literal, Null
from sql.aggregate import Count
from sql.functions import Lower
from sql.operators import Mod

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.pool import Pool
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .contact import trigram_similarity
from .exceptions import MergeError
from .party import (
    EMAIL_SCORE, MATCH_TYPES, NAME_SCORE, NAME_THRESHOLD, PHONE_SCORE,
    _combine, _name_score, _REASON_ORDER)

# At most this many groups are shown at once (merge them, then search again)
MAX_GROUPS = 100
# Similar names: at most this many pairs read; on SQLite, words shared by
# more parties than this are not used to compare names
MAX_NAME_PAIRS = 20000
MAX_BLOCK = 200


class DuplicateGroups(ModelView):
    __name__ = 'crm.party.duplicate.groups'
    __string__ = "Duplicate Parties"

    lines = fields.One2Many(
        'crm.party.duplicate.line', None, "Duplicates",
        help="Each group: tick the party to keep; the others ticked "
        "\"Merge\" are merged into it.")


class DuplicateLine(ModelView):
    __name__ = 'crm.party.duplicate.line'
    __string__ = "Duplicate Party"

    group = fields.Integer("Group", readonly=True)
    party = fields.Many2One('party.party', "Party", readonly=True)
    kept = fields.Boolean("Keep", help="The party that stays.")
    merge = fields.Boolean(
        "Merge", help="Untick to leave this party out of the merge.")
    score = fields.Integer("Score", readonly=True)
    reasons = fields.Char("Reasons", readonly=True)
    quality_score = fields.Integer("Quality Score", readonly=True)


def _reason_text(reasons):
    names = {
        'email': 'crm_core.msg_duplicate_reason_email',
        'phone': 'crm_core.msg_duplicate_reason_phone',
        'name': 'crm_core.msg_duplicate_reason_name',
        }
    return ', '.join(gettext(names[r])
        for r in sorted(reasons, key=_REASON_ORDER.get))


class FindDuplicates(Wizard):
    "Find groups of duplicate parties and merge them with party.replace"
    __name__ = 'crm.party.duplicate.find'
    start_state = 'groups'
    groups = StateView('crm.party.duplicate.groups',
        'crm_core.party_duplicate_groups_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Merge", 'merge', 'tryton-ok', default=True),
            ])
    merge = StateTransition()

    def default_groups(self, fields):
        return {'lines': self.find_groups()}

    @classmethod
    def _contact_pairs(cls, edges):
        pool = Pool()
        Party = pool.get('party.party')
        Mechanism = pool.get('party.contact_mechanism')
        party = Party.__table__()
        mechanism = Mechanism.__table__()
        cursor = Transaction().connection.cursor()
        key = Lower(mechanism.value_compact)
        where = (mechanism.active == Literal(True)) & (
            party.active == Literal(True)) & mechanism.type.in_(
            list(MATCH_TYPES))
        from_ = mechanism.join(party, condition=mechanism.party == party.id)
        shared = from_.select(key, where=where, group_by=[key],
            having=Count(party.id, distinct=True) > 1)
        cursor.execute(*from_.select(key, mechanism.type, mechanism.party,
                where=where & key.in_(shared)))
        owners = defaultdict(set)
        for value, type_, party_id in cursor:
            kind = 'email' if type_ == 'email' else 'phone'
            owners[kind, value].add(party_id)
        for (kind, _), party_ids in owners.items():
            score = EMAIL_SCORE if kind == 'email' else PHONE_SCORE
            party_ids = sorted(party_ids)
            for i, a in enumerate(party_ids):
                for b in party_ids[i + 1:]:
                    edges[a, b][kind] = score

    @classmethod
    def _name_pairs(cls, edges):
        pool = Pool()
        Party = pool.get('party.party')
        party = Party.__table__()
        other = Party.__table__()
        cursor = Transaction().connection.cursor()
        active = party.active == Literal(True)
        shared = party.select(party.name_normalised,
            where=active & (party.name_normalised != Null),
            group_by=[party.name_normalised],
            having=Count(party.id) > 1)
        cursor.execute(*party.select(party.name_normalised, party.id,
                where=active & party.name_normalised.in_(shared)))
        same = defaultdict(list)
        for name, party_id in cursor:
            same[name].append(party_id)
        for party_ids in same.values():
            party_ids.sort()
            for i, a in enumerate(party_ids):
                for b in party_ids[i + 1:]:
                    edges[a, b]['name'] = NAME_SCORE
        if Party._has_trigram():
            cursor.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, "
                "true)", (str(NAME_THRESHOLD - 0.01),))
            cursor.execute(*party.join(other,
                    condition=Mod(party.name_normalised,
                        other.name_normalised)
                    & (party.id < other.id)).select(
                    party.id, party.name_normalised,
                    other.id, other.name_normalised,
                    where=active & (other.active == Literal(True))
                    & (party.name_normalised != other.name_normalised),
                    limit=MAX_NAME_PAIRS))
            pairs = list(cursor)
        else:
            pairs = cls._python_name_pairs()
        for a, name_a, b, name_b in pairs:
            similarity = trigram_similarity(name_a, name_b)
            if similarity >= NAME_THRESHOLD:
                edges[min(a, b), max(a, b)]['name'] = _name_score(
                    similarity, False)

    @classmethod
    def _python_name_pairs(cls):
        """Pairs of different names sharing a word of 3 characters or more
        or the first 3 letters of a word (SQLite)"""
        pool = Pool()
        Party = pool.get('party.party')
        party = Party.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*party.select(party.id, party.name_normalised,
                where=(party.active == Literal(True))
                & (party.name_normalised != Null)))
        names = dict(cursor)
        blocks = defaultdict(set)
        for party_id, name in names.items():
            for word in name.split():
                if len(word) >= 3:
                    blocks['w', word].add(party_id)
                    blocks['p', word[:3]].add(party_id)
        seen = set()
        pairs = []
        for members in blocks.values():
            if len(members) < 2 or len(members) > MAX_BLOCK:
                continue
            members = sorted(members)
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    if (a, b) in seen or names[a] == names[b]:
                        continue
                    seen.add((a, b))
                    pairs.append((a, names[a], b, names[b]))
                    if len(pairs) >= MAX_NAME_PAIRS:
                        return pairs
        return pairs

    @classmethod
    def find_groups(cls, limit=MAX_GROUPS):
        """The lines of the groups of duplicates: same email, same phone or
        similar name, linked transitively"""
        pool = Pool()
        Party = pool.get('party.party')
        edges = defaultdict(dict)
        cls._contact_pairs(edges)
        cls._name_pairs(edges)

        parent = {}

        def find(x):
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x
        for a, b in edges:
            parent[find(a)] = find(b)
        members = defaultdict(set)
        best = defaultdict(lambda: (0, set()))
        for (a, b), reasons in edges.items():
            members[find(a)].update((a, b))
            score = _combine(reasons)
            for x in (a, b):
                old_score, old_reasons = best[x]
                best[x] = (max(old_score, score), old_reasons | set(reasons))
        groups = sorted(members.values(),
            key=lambda g: (-max(best[x][0] for x in g), min(g)))[:limit]
        parties = Party.browse(sorted({x for g in groups for x in g}))
        quality = {p.id: p.quality_score or 0 for p in parties}
        lines = []
        for number, group in enumerate(groups, 1):
            kept = max(sorted(group), key=lambda x: (quality[x], -x))
            for party_id in sorted(group, key=lambda x: (x != kept, x)):
                score, reasons = best[party_id]
                lines.append({
                        'group': number,
                        'party': party_id,
                        'kept': party_id == kept,
                        'merge': True,
                        'score': score,
                        'reasons': _reason_text(reasons),
                        'quality_score': quality[party_id],
                        })
        return lines

    def transition_merge(self):
        groups = defaultdict(list)
        for line in self.groups.lines:
            if line.merge or line.kept:
                groups[line.group].append(line)
        for number, lines in sorted(groups.items()):
            kept = [l.party for l in lines if l.kept]
            if len(kept) != 1:
                raise MergeError(gettext(
                        'crm_core.msg_duplicate_merge_no_kept',
                        group=number))
            kept, = kept
            for line in lines:
                if not line.kept and line.party.active:
                    self.merge_party(line.party, kept)
        return 'end'

    @classmethod
    def merge_party(cls, source, destination):
        "Replace source by destination as the party.replace wizard does"
        pool = Pool()
        Replace = pool.get('party.replace', type='wizard')
        with Transaction().set_context(crm_merge=True):
            session_id, _, _ = Replace.create()
            try:
                replace = Replace(session_id)
                replace.ask.source = source
                replace.ask.destination = destination
                replace.transition_replace()
            finally:
                Replace.delete(session_id)
