"""A savepoint that undoes all a block did: its rows, what it queued, its
notifications and the mail it was to send; the transaction goes on."""
import contextlib

from trytond.sendmail import SMTPDataManager
from trytond.transaction import Transaction


@contextlib.contextmanager
def savepoint(name):
    transaction = Transaction()
    cursor = transaction.connection.cursor()
    tasks = len(transaction.tasks)
    notifications = len(transaction.user_notifications)
    # trytond keeps the mail of the transaction beside it, not in the
    # database: what the block put there goes with it
    mail = [(m, len(m.queue)) for m in transaction._datamanagers
        if isinstance(m, SMTPDataManager)]
    managers = len(transaction._datamanagers)
    # What the transaction believes deleted, as before the block
    deleted = {m: set(ids) for m, ids in transaction.delete_records.items()}
    cursor.execute(f'SAVEPOINT {name}')
    try:
        yield
    except Exception:
        cursor.execute(f'ROLLBACK TO SAVEPOINT {name}')
        forget(transaction)
        transaction.delete_records.clear()
        transaction.delete_records.update(deleted)
        del transaction.tasks[tasks:]
        del transaction.user_notifications[notifications:]
        for manager, count in mail:
            del manager.queue[count:]
        for manager in transaction._datamanagers[managers:]:
            if isinstance(manager, SMTPDataManager):
                manager.queue.clear()
        raise
    else:
        cursor.execute(f'RELEASE SAVEPOINT {name}')


def forget(transaction):
    """After a rollback to a savepoint: the cached records may be of rows
    that are gone (and whose ids SQLite gives again)"""
    transaction.counter += 1
    for cache in transaction.cache.values():
        cache.clear()
