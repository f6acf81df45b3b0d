"""A client of baresip's ctrl_tcp interface (JSON in netstrings): the
commands a connector or the IVR runner sends to a baresip user agent, and
the events it reports."""
import json
import socket
import threading
import time


class BaresipError(Exception):
    pass


def netstring(payload):
    return b'%d:%s,' % (len(payload), payload)


class BaresipControl:
    """One connection to a baresip ctrl_tcp port. command() waits for its
    answer; events (CALL_INCOMING, CALL_ESTABLISHED, CALL_DTMF_START,
    CALL_CLOSED...) gather in events, wait_for() takes them."""

    def __init__(self, host, port, timeout=3):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.events = []
        self._answers = {}
        self._token = 0
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def close(self):
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self):
        buffer = b''
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b''
            if not data:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += data
            while True:
                colon = buffer.find(b':')
                if colon < 0:
                    break
                try:
                    size = int(buffer[:colon])
                except ValueError:
                    buffer = b''
                    break
                end = colon + 1 + size
                if len(buffer) < end + 1:
                    break
                payload, buffer = buffer[colon + 1:end], buffer[end + 1:]
                try:
                    message = json.loads(payload.decode('utf-8', 'replace'))
                except ValueError:
                    continue
                with self._cond:
                    if message.get('response'):
                        self._answers[message.get('token')] = message
                    elif message.get('event'):
                        message['received'] = time.monotonic()
                        self.events.append(message)
                    self._cond.notify_all()

    def command(self, command, params=None, timeout=None):
        "The answer {'ok': bool, 'data': text} of a baresip command"
        with self._cond:
            self._token += 1
            token = f'crm-{self._token}'
        message = {'command': command, 'token': token}
        if params is not None:
            message['params'] = params
        try:
            self.sock.sendall(netstring(json.dumps(message).encode()))
        except OSError as exception:
            raise BaresipError(f"baresip: {exception}") from exception
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while token not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise BaresipError(f"baresip: no answer to {command}")
                self._cond.wait(min(left, 0.2))
            return self._answers.pop(token)

    def wait_for(self, event_type, timeout=10, **match):
        "The first event of that type (and values) not taken yet"
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, event in enumerate(self.events):
                    if event.get('type') == event_type and all(
                            event.get(k) == v for k, v in match.items()):
                        return self.events.pop(index)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise BaresipError(f"baresip: no {event_type} event")
                self._cond.wait(min(left, 0.2))
