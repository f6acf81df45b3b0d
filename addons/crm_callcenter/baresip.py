"""baresip, driven through its ctrl_tcp interface (JSON in netstrings):
the one client of it in the suite, used by the click-to-dial connector
(connector.py), the IVR runner (ivr_runner.py) and the phones of the
telephony test rig (tests/rig/rig.py).

``BaresipControl(host, port)``
    A connection to a running baresip's ctrl_tcp port: command() sends a
    command and waits for its answer; the events baresip reports
    (CALL_INCOMING, CALL_RINGING, CALL_ESTABLISHED, CALL_DTMF_START,
    CALL_CLOSED...) are kept in ``events`` for wait_for() and/or queued for
    next_event().

``BaresipPhone(user, registrar, work_dir, ...)``
    A baresip process started from a config written here (no sound card:
    what it sends comes from a WAV file, what it receives goes to a null
    device or is recorded), registered as user at the registrar and driven
    through a BaresipControl: dial, accept, hang up, transfer, DTMF, audio
    source; stop() ends it by its pid.

Standard library only: the IVR runner also runs on hosts without the CRM
(ivr_runner.py and this file, side by side)."""
import ctypes
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import deque

__all__ = ['BaresipError', 'BaresipTimeout', 'BaresipControl',
    'BaresipPhone', 'netstring', 'NetstringDecoder', 'baresip_module_dir',
    'free_port', 'BARESIP_CONFIG', 'SAMPLE_RATE', 'read_pcm', 'write_wav',
    'to_phone_wav', 'speak', 'wav_duration']

# Modules the config of BaresipPhone loads (module_path)
MODULES = ('ctrl_tcp.so', 'menu.so', 'account.so', 'aufile.so',
    'aubridge.so', 'g711.so')
# Events nobody waits for, and that would fill the history of a long call
IGNORED_EVENTS = {'CALL_RTCP'}


class BaresipError(Exception):
    pass


class BaresipTimeout(BaresipError, TimeoutError):
    "The event waited for did not come in time"


# --- ctrl_tcp ---------------------------------------------------------------

def netstring(payload):
    return b'%d:%s,' % (len(payload), payload)


class NetstringDecoder:
    "The payloads of a stream of netstrings, as the bytes come"

    def __init__(self):
        self.buffer = b''

    def feed(self, data):
        "The payloads completed by data"
        self.buffer += data
        payloads = []
        while True:
            colon = self.buffer.find(b':')
            if colon < 0:
                break
            try:
                size = int(self.buffer[:colon])
            except ValueError:
                # Out of step: what is buffered cannot be framed again
                self.buffer = b''
                break
            end = colon + 1 + size
            if len(self.buffer) < end + 1:
                break
            payloads.append(self.buffer[colon + 1:end])
            self.buffer = self.buffer[end + 1:]
        return payloads


class BaresipControl:
    """One connection to a baresip ctrl_tcp port (baresip 1.0.0 serves one
    client at a time: a new connection takes over).

    events: every event dict baresip sent (keys type, class, accountaor,
    direction, peeruri, id (the SIP Call-ID), param; plus time, the epoch
    when it came), in order, for wait_for() -- unless history is False (a
    long-running user); with queue, events also go to next_event(), which
    also gives {'type': '_DISCONNECTED'} once the connection is lost and
    {'type': '_WAKE'} after wake()."""

    def __init__(self, host, port, timeout=3, name=None, history=True,
            queue=False):
        self.name = name or f'{host}:{port}'
        self.timeout = timeout
        self.history = history
        self.queue = queue
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.events = []
        self._queue = deque()
        self._answers = {}
        self._token = 0
        self._consumed = {}
        self._closed = False
        # Reentrant: wake() may run in a signal handler of a thread that
        # holds it
        self._cond = threading.Condition(threading.RLock())
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True,
            name=f'baresip-{self.name}')
        self._reader.start()

    def __repr__(self):
        return f'<BaresipControl {self.name}>'

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return self._closed

    def close(self):
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._reader is not threading.current_thread():
            self._reader.join(2)

    def _read(self):
        decoder = NetstringDecoder()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b''
            if not data:
                with self._cond:
                    self._closed = True
                    if self.queue:
                        self._queue.append({'type': '_DISCONNECTED'})
                    self._cond.notify_all()
                return
            for payload in decoder.feed(data):
                try:
                    message = json.loads(payload.decode('utf-8', 'replace'))
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                message['time'] = time.time()
                with self._cond:
                    if message.get('response'):
                        self._answers[message.get('token')] = message
                    elif (message.get('event')
                            and message.get('type') not in IGNORED_EVENTS):
                        if self.history:
                            self.events.append(message)
                        if self.queue:
                            self._queue.append(message)
                    self._cond.notify_all()

    # commands
    def send(self, command, params=None, token=None):
        "Send a command without waiting for its answer"
        message = {'command': command}
        if token is not None:
            message['token'] = token
        if params is not None:
            message['params'] = params
        with self._send_lock:
            try:
                self.sock.sendall(netstring(json.dumps(message).encode()))
            except OSError as exception:
                raise BaresipError(f"baresip {self.name}: {exception}"
                    ) from exception

    def command(self, command, params=None, timeout=None):
        """The answer {'ok': bool, 'data': text} of a baresip command
        (names from its /help: dial, accept, hangup, transfer, sndcode,
        ausrc, reginfo, listcalls, quit...)"""
        with self._cond:
            self._token += 1
            token = f'crm-{self._token}'
        self.send(command, params, token)
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while token not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise BaresipError(
                        f"baresip {self.name}: no answer to {command}")
                self._cond.wait(min(left, 0.2))
            return self._answers.pop(token)

    def checked(self, command, params=None, timeout=None):
        "The answer of command, BaresipError when it failed"
        answer = self.command(command, params, timeout=timeout)
        if not answer.get('ok'):
            raise BaresipError(f"baresip {self.name}: {command} "
                f"{params or ''} failed: {answer.get('data')}")
        return answer

    # events
    def wait_for(self, event_type, timeout=10, **match):
        """The next event of the type whose keys equal match (e.g.
        param='2', id=call_id): the first one after the last event of that
        type this returned (each is returned once); BaresipTimeout"""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = self._consumed.get(event_type, 0)
                for index in range(start, len(self.events)):
                    event = self.events[index]
                    if event.get('type') != event_type:
                        continue
                    if all(event.get(k) == v for k, v in match.items()):
                        self._consumed[event_type] = index + 1
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ', '.join('%s(%s)' % (e.get('type'),
                            e.get('param', '')) for e in self.events)
                    wanted = f'{event_type} {match}' if match else event_type
                    raise BaresipTimeout(f"baresip {self.name}: no {wanted} "
                        f"within {timeout}s; events: {seen or 'none'}")
                self._cond.wait(min(left, 0.2))

    def next_event(self, timeout=None):
        "The next event of the queue, or None after timeout seconds"
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                left = None if deadline is None else (
                    deadline - time.monotonic())
                if left is not None and left <= 0:
                    return None
                self._cond.wait(0.5 if left is None else min(left, 0.5))
            return self._queue.popleft()

    def wake(self):
        "Make a waiting next_event() return (an event of type _WAKE)"
        with self._cond:
            self._queue.append({'type': '_WAKE'})
            self._cond.notify_all()


# --- audio files ------------------------------------------------------------
# What baresip's aufile plays and records: 8 kHz mono signed 16-bit WAV

SAMPLE_RATE = 8000


def run_tool(cmd, timeout=30):
    "Run an audio tool (sox, espeak-ng); BaresipError says why it failed"
    try:
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout)
    except FileNotFoundError as exception:
        raise BaresipError('%s is not installed' % cmd[0]) from exception
    except subprocess.TimeoutExpired as exception:
        raise BaresipError('%s took longer than %ss' % (cmd[0], timeout)
            ) from exception
    if result.returncode != 0:
        raise BaresipError('%s failed (%s): %s' % (' '.join(cmd),
            result.returncode, result.stdout.decode(errors='replace')))


def wav_header(data_size, rate=SAMPLE_RATE, channels=1, bits=16):
    block = channels * bits // 8
    return (b'RIFF' + struct.pack('<I', 36 + data_size) + b'WAVE'
        + b'fmt ' + struct.pack('<IHHIIHH', 16, 1, channels, rate,
            rate * block, block, bits)
        + b'data' + struct.pack('<I', data_size))


def read_pcm(path):
    """(samples as bytes, rate, channels) of a 16-bit PCM WAV; tolerant
    of a data size left at 0 or too big by a writer not closed cleanly"""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b'RIFF' or data[8:12] != b'WAVE':
        raise BaresipError('%s is no WAV file' % path)
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size, = struct.unpack('<I', data[pos + 4:pos + 8])
        body = pos + 8
        if cid == b'fmt ':
            fmt = struct.unpack('<HHIIHH', data[body:body + 16])
        elif cid == b'data':
            end = body + size
            if size == 0 or end > len(data):
                end = len(data)
            if fmt is None or fmt[0] not in (1, 0xFFFE) or fmt[5] != 16:
                break
            return data[body:end], fmt[2], fmt[1]
        pos = body + size + (size & 1)
    raise BaresipError('%s: no 16-bit PCM data' % path)


def wav_duration(path):
    pcm, rate, channels = read_pcm(path)
    return len(pcm) / float(2 * rate * channels)


def write_wav(path, pcms, pad_seconds=0):
    """A phone WAV of the samples (bytes at SAMPLE_RATE, mono) one after
    the other, then pad_seconds of silence; written whole or not at all"""
    silence = int(pad_seconds * SAMPLE_RATE) * 2
    tmp = path + '.part'
    with open(tmp, 'wb') as f:
        f.write(wav_header(sum(len(p) for p in pcms) + silence))
        for pcm in pcms:
            f.write(pcm)
        chunk = b'\0' * (SAMPLE_RATE * 2)
        while silence > 0:
            f.write(chunk[:silence])
            silence -= len(chunk)
    os.replace(tmp, path)
    return path


def to_phone_wav(src, dst, pad_seconds=0):
    """Convert any audio sox reads to a phone WAV, followed by pad_seconds
    of silence"""
    tmp = dst + '.part.wav'
    cmd = ['sox', src, '-r', str(SAMPLE_RATE), '-c', '1', '-b', '16',
        '-e', 'signed-integer', tmp]
    if pad_seconds:
        cmd += ['pad', '0', str(pad_seconds)]
    run_tool(cmd)
    os.replace(tmp, dst)
    return dst


def speak(text, dst, voice=None, speed=None):
    "text spoken by espeak-ng into the phone WAV dst"
    raw = dst + '.espeak.wav'
    cmd = ['espeak-ng', '-w', raw]
    if voice:
        cmd += ['-v', voice]
    if speed:
        cmd += ['-s', str(speed)]
    try:
        run_tool(cmd + ['--', text])
        return to_phone_wav(raw, dst)
    finally:
        if os.path.exists(raw):
            os.unlink(raw)


# --- the process --------------------------------------------------------------

def baresip_module_dir():
    "The directory of baresip's modules (with ctrl_tcp.so), or None"
    for path in ['/usr/lib/baresip/modules', '/usr/local/lib/baresip/modules',
            *sorted(glob.glob('/usr/lib/*/baresip/modules'))]:
        if os.path.exists(os.path.join(path, 'ctrl_tcp.so')):
            return path
    return None


def _port_free(host, port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(host='127.0.0.1', count=1, align=1, tries=200,
        used=frozenset()):
    "The first of count free UDP+TCP ports on host (none of used)"
    rand = random.Random()
    for _ in range(tries):
        start = rand.randrange(20000, 45000)
        start -= start % align
        ports = range(start, start + count)
        if any(p in used for p in ports):
            continue
        if all(_port_free(host, p) for p in ports):
            return start
    raise BaresipError('no free block of %d ports on %s' % (count, host))


_prctl = None


def _die_with_parent():
    "In the child: get SIGTERM when the parent dies (Linux)"
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG


def _load_prctl():
    "prctl, found before forking: the child only calls it"
    global _prctl
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL('libc.so.6', use_errno=True).prctl
        except (OSError, AttributeError):
            pass
    return _prctl


BARESIP_CONFIG = """\
# baresip config written by crm_callcenter.baresip
poll_method\t\tepoll
sip_listen\t\t{listen}
{net_interface}
call_local_timeout\t{ring_timeout}
call_max_calls\t\t{max_calls}

# No sound card: what the phone sends comes from a WAV file (aufile, 8 kHz
# mono S16; baresip 1.0.0 closes the call when the file ends), what it
# receives goes to a null bridge (and to snd_path with the sndfile module:
# dump-<time>-dec.wav = received, -enc.wav = sent).
audio_player\t\taubridge,{null_device}
audio_alert\t\taubridge,{null_device}
audio_source\t\taufile,{source}
ausrc_srate\t\t8000
auplay_srate\t\t8000
ausrc_channels\t\t1
auplay_channels\t\t1
audio_buffer\t\t40
audio_level\t\tno
ausrc_format\t\ts16
auplay_format\t\ts16
auenc_format\t\ts16
audec_format\t\ts16

rtp_ports\t\t{rtp_ports}
rtcp_mux\t\tno
jitter_buffer_delay\t1-5
rtp_stats\t\tno

module_path\t\t{module_path}
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
{extra_modules}
module_tmp\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so

ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}
{snd_path}
ringback_disabled\tyes
redial_attempts\t\t0
"""


class BaresipPhone:
    """One baresip user agent, started from a config written in work_dir
    and driven through its ctrl_tcp port (a BaresipControl).

    registrar: host:port of the SIP registrar/proxy; listen: baresip's SIP
    address host:port (its TLS port is the next one; default: free ports
    of 127.0.0.1); ctrl_port, rtp_ports ('first-last'): default free ones;
    source: the WAV file it sends; extra_modules (e.g. 'sndfile.so' with
    snd_path, where it records); history: keep every event for wait_for()
    (tests); queue: give them to next_event() (the IVR runner)."""

    def __init__(self, user, registrar, work_dir, listen=None,
            ctrl_port=None, rtp_ports=None, password=None, transport='udp',
            answer_mode='manual', max_calls=1, source=None,
            ring_timeout=35, module_path=None, binary=None,
            extra_modules=(), snd_path=None, codecs='pcmu,pcma',
            register_interval=600, history=True, queue=False):
        if not re.fullmatch(r'[A-Za-z0-9+._-]+', user or ''):
            raise ValueError('unsupported SIP user %r' % user)
        self.user = user
        self.registrar = registrar
        self.work_dir = work_dir
        self.listen = listen
        self.ctrl_port = ctrl_port
        self.rtp_ports = rtp_ports
        self.password = password
        self.transport = transport
        self.answer_mode = answer_mode
        self.max_calls = max_calls
        self.source = source
        self.ring_timeout = ring_timeout
        self.module_path = module_path or baresip_module_dir()
        self.binary = binary or shutil.which('baresip') or 'baresip'
        self.extra_modules = list(extra_modules)
        self.snd_path = snd_path
        self.codecs = codecs
        self.register_interval = register_interval
        self.history = history
        self.queue = queue
        self.proc = None
        self.control = None
        self.log_path = os.path.join(work_dir, 'baresip.log')

    def __repr__(self):
        return '<%s %s>' % (self.__class__.__name__, self.user)

    @property
    def aor(self):
        return 'sip:%s@%s' % (self.user, self.registrar)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def events(self):
        "Every event of the current baresip (history)"
        return self.control.events if self.control else []

    def uri(self, number):
        "The SIP URI of number through the registrar (a URI as is)"
        if number.startswith(('sip:', 'sips:', 'tel:')):
            return number
        return 'sip:%s@%s' % (number, self.registrar)

    def write_config(self):
        os.makedirs(self.work_dir, exist_ok=True)
        if not self.module_path:
            raise BaresipError('baresip modules (ctrl_tcp.so) not found')
        if not self.listen:
            # SIP port + 1 is baresip's TLS port
            self.listen = '127.0.0.1:%d' % free_port('127.0.0.1', 2, 2)
        host = self.listen.rsplit(':', 1)[0]
        if not self.ctrl_port:
            self.ctrl_port = free_port('127.0.0.1')
        if not self.rtp_ports:
            start = free_port(host if host != '0.0.0.0' else '127.0.0.1',
                20, 2)
            self.rtp_ports = '%d-%d' % (start, start + 19)
        if not self.source:
            raise BaresipError('an audio source file is needed')
        interface = ''
        if host not in {'0.0.0.0', '::', ''}:
            # an address: "lo" is not matched by baresip 1.0.0
            interface = 'net_interface\t\t%s' % host
        config = BARESIP_CONFIG.format(
            listen=self.listen,
            net_interface=interface,
            ring_timeout=int(self.ring_timeout),
            max_calls=int(self.max_calls),
            null_device='null-%s' % self.ctrl_port,
            source=self.source,
            rtp_ports=self.rtp_ports,
            module_path=self.module_path,
            extra_modules='\n'.join('module\t\t\t%s' % m
                for m in self.extra_modules),
            ctrl_port=self.ctrl_port,
            snd_path=('snd_path\t\t%s' % self.snd_path
                if self.snd_path else ''))
        with open(os.path.join(self.work_dir, 'config'), 'w') as f:
            f.write(config)
        account = '<sip:%s@%s;transport=%s>;regint=%d;answermode=%s;' \
            'audio_codecs=%s;ptime=20;mwi=no' % (self.user, self.registrar,
                self.transport, self.register_interval, self.answer_mode,
                self.codecs)
        if self.password:
            account += ';auth_pass=%s' % self.password
        path = os.path.join(self.work_dir, 'accounts')
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                    0o600), 'w') as f:
            f.write(account + '\n')
        open(os.path.join(self.work_dir, 'contacts'), 'w').close()

    def start(self, timeout=10, wait_registered=True):
        """Start baresip (it gets SIGTERM should this process die) and
        connect to its control port; wait (up to timeout) until it is
        registered when wait_registered. Return whether it is registered.
        On failure baresip is stopped."""
        self.write_config()
        _load_prctl()
        log = open(self.log_path, 'ab')
        try:
            self.proc = subprocess.Popen([self.binary, '-f', self.work_dir],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.work_dir, start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BaresipError('baresip %s exited (%s):\n%s' % (
                    self.user, self.proc.returncode, self.log_tail()))
            try:
                self.control = BaresipControl('127.0.0.1', self.ctrl_port,
                    timeout=5, name=self.user, history=self.history,
                    queue=self.queue)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BaresipError('baresip %s: no ctrl_tcp on %s:\n%s'
                        % (self.user, self.ctrl_port, self.log_tail()))
                time.sleep(0.05)
        if not wait_registered:
            return False
        return self.wait_registered(deadline - time.monotonic())

    def wait_registered(self, timeout=10):
        "Whether the account is registered within timeout seconds"
        deadline = time.monotonic() + timeout
        while not self.registered():
            if time.monotonic() > deadline or not self.alive():
                return False
            time.sleep(0.1)
        return True

    def log_tail(self, size=3000):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode(errors='replace')
        except OSError:
            return ''

    # state
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def registered(self):
        "Whether the account is registered (baresip's reginfo says OK)"
        if not self.alive():
            return False
        try:
            data = self.command('reginfo', timeout=2).get('data') or ''
        except BaresipError:
            return False
        data = re.sub(r'\x1b\[[0-9;]*m', ' ', data)        # colours
        return any(('sip:%s@' % self.user) in line
            and re.search(r'\sOK\s', line) for line in data.splitlines())

    # control
    def command(self, command, params=None, timeout=5):
        "The answer (keys ok, data) of a baresip command"
        if not self.alive() or self.control is None:
            raise BaresipError('baresip %s is not running' % self.user)
        return self.control.command(command, params, timeout=timeout)

    def checked(self, command, params=None, timeout=5):
        "The answer of command, BaresipError when it failed"
        if not self.alive() or self.control is None:
            raise BaresipError('baresip %s is not running' % self.user)
        return self.control.checked(command, params, timeout=timeout)

    def wait_for(self, event_type, timeout=10, **match):
        "BaresipControl.wait_for (history)"
        if self.control is None:
            raise BaresipError('baresip %s is not running' % self.user)
        return self.control.wait_for(event_type, timeout=timeout, **match)

    def next_event(self, timeout=None):
        "BaresipControl.next_event (queue)"
        if self.control is None:
            time.sleep(timeout or 0)
            return None
        return self.control.next_event(timeout=timeout)

    def wake(self):
        "Make a waiting next_event() return"
        if self.control is not None:
            self.control.wake()

    # calls
    def dial(self, number):
        "Call number (a URI as is, else through the registrar)"
        return self.checked('dial', self.uri(number))

    def accept(self):
        return self.checked('accept')

    def hangup(self):
        return self.checked('hangup')

    def transfer(self, target):
        "Blind transfer (SIP REFER) of the current call to target"
        return self.checked('transfer', self.uri(target))

    def send_dtmf(self, digits, gap=0.25):
        "Send DTMF digits (RFC 4733 events) in the current call"
        for i, digit in enumerate(str(digits)):
            if i:
                time.sleep(gap)
            self.checked('sndcode', digit)

    def set_source(self, path):
        "What the current call (and the next ones) hears: a WAV file"
        return self.checked('ausrc', 'aufile,%s' % path)

    def stop(self, timeout=3):
        "Quit baresip (then SIGTERM, then SIGKILL, by pid); close the port"
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                if self.control is not None:
                    self.control.send('quit', token='quit')
                proc.wait(timeout=1)
            except (BaresipError, subprocess.TimeoutExpired):
                pass
        if proc is not None and proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if self.control is not None:
            self.control.close()
