"""The IVR runner: one baresip user agent that answers the calls of an IVR
menu of the CRM, speaks its prompts, collects the keys the caller presses
and transfers the caller where the CRM says (doc/ivr.rst).

    python -m crm_callcenter.ivr_runner --crm-url http://crm:8000/db \\
        --key-file /etc/crm-ivr/key --ivr 7000 --sip-user 7000 \\
        --registrar pbx.example.com:5060

or ``--config /etc/crm-ivr/runner.ini`` (section ``[runner]``, the same
names with underscores).  It needs ``baresip`` (1.0.0: modules ctrl_tcp,
menu, account, aufile, aubridge, g711), ``espeak-ng`` and ``sox``.

The runner takes one call at a time: baresip answers a second caller
"486 Max Calls" (run one runner per extension of a hunt group for more).
Each step of a call asks the CRM (``POST <crm-url>/callcenter/ivr/step``,
signed like every call center API request); the CRM decides, the runner
only plays, listens and transfers (SIP REFER: the proxy must relay
in-dialog requests, and the caller's side must follow the REFER).

Standard library only: this file is also the baresip control client
(BaresipClient) that other code can reuse."""
import argparse
import configparser
import ctypes
import glob
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque

__all__ = ['BaresipClient', 'BaresipError', 'CrmClient', 'CrmError',
    'AudioCache', 'Runner', 'main']

logger = logging.getLogger('crm_callcenter.ivr_runner')

SAMPLE_RATE = 8000          # what baresip's aufile reads: 8 kHz mono S16
# Seconds of silence after each prompt: baresip 1.0.0's aufile closes the
# call when its file ends, so no wait after a prompt may last longer.
DEFAULT_PAD = 120
MAX_STEPS = 200             # steps of one call: a loop is a bug, not a call
DIGITS = set('0123456789*#ABCD')


class BaresipError(Exception):
    pass


class CrmError(Exception):
    pass


# --- audio ------------------------------------------------------------------

def _run(cmd, timeout=30):
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
    "The raw samples (bytes) of a 16-bit PCM WAV and its rate and channels"
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
            if fmt is None:
                break
            _, channels, rate, _, _, bits = fmt
            if bits != 16:
                break
            return data[body:end], rate, channels
        pos = body + size + (size & 1)
    raise BaresipError('%s: no 16-bit PCM data' % path)


def to_phone_wav(src, dst):
    "Convert any audio sox reads to 8 kHz mono signed 16-bit WAV"
    tmp = dst + '.part.wav'
    _run(['sox', src, '-r', str(SAMPLE_RATE), '-c', '1', '-b', '16',
            '-e', 'signed-integer', tmp])
    os.replace(tmp, dst)
    return dst


def duration(path):
    pcm, rate, channels = read_pcm(path)
    return len(pcm) / float(2 * rate * channels)


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part).encode('utf-8'))
        h.update(b'\0')
    return h.hexdigest()[:32]


class AudioCache:
    """Prompt files for baresip's aufile, cached in a directory: speech
    (espeak-ng, per text and voice), downloaded recordings (per URL), and
    the padded files a call plays (per list of parts)"""

    def __init__(self, directory, voice='en', speed=None, pad=DEFAULT_PAD,
            max_files=500, fetch=None):
        self.directory = directory
        self.voice = voice or 'en'
        self.speed = speed
        self.pad = pad
        self.max_files = max_files
        self.fetch = fetch          # url -> bytes
        os.makedirs(directory, exist_ok=True)
        self._silence = None

    def _path(self, kind, key):
        return os.path.join(self.directory, '%s-%s.wav' % (kind, key))

    def _voices(self, lang):
        "The espeak-ng voices to try for a language code, best first"
        voices = []
        if lang:
            code = lang.strip().lower().replace('_', '-')
            voices += [code, code.split('-')[0]]
        voices.append(self.voice)
        return list(dict.fromkeys(v for v in voices if v))

    def speech(self, text, lang=None):
        "The phone WAV of text spoken in the language (a cached file)"
        for voice in self._voices(lang):
            path = self._path('tts', _digest(voice, self.speed, text))
            if os.path.exists(path):
                return path
            raw = path + '.espeak.wav'
            cmd = ['espeak-ng', '-v', voice, '-w', raw]
            if self.speed:
                cmd += ['-s', str(self.speed)]
            try:
                _run(cmd + ['--', text])
                to_phone_wav(raw, path)
            except BaresipError as exception:
                logger.warning('speech with voice %s failed: %s', voice,
                    exception)
                continue
            finally:
                if os.path.exists(raw):
                    os.unlink(raw)
            return path
        raise BaresipError('espeak-ng could not speak %r' % text)

    def recording(self, url):
        "The phone WAV of the audio at url (a cached file)"
        path = self._path('url', _digest(url))
        if os.path.exists(path):
            return path
        if not self.fetch:
            raise BaresipError('no way to download %s' % url)
        data = self.fetch(url)
        raw = path + '.download'
        with open(raw, 'wb') as f:
            f.write(data)
        try:
            to_phone_wav(raw, path)
        finally:
            if os.path.exists(raw):
                os.unlink(raw)
        return path

    def silence(self):
        "A file of pad seconds of silence"
        if self._silence is None or not os.path.exists(self._silence):
            path = self._path('silence', str(self.pad))
            if not os.path.exists(path):
                self._write(path, [], self.pad)
            self._silence = path
        return self._silence

    def prompt(self, parts):
        """(path, seconds of sound) of the parts (phone WAVs) one after
        the other, then pad seconds of silence"""
        if not parts:
            return self.silence(), 0.0
        path = self._path('prompt', _digest(self.pad, *parts))
        if not os.path.exists(path):
            self._write(path, parts, self.pad)
            self._trim()
        sound = sum(duration(p) for p in parts)
        return path, sound

    def _write(self, path, parts, pad):
        pcm = []
        for part in parts:
            data, rate, channels = read_pcm(part)
            if (rate, channels) != (SAMPLE_RATE, 1):
                raise BaresipError('%s is not 8 kHz mono' % part)
            pcm.append(data)
        silence = int(pad * SAMPLE_RATE) * 2
        size = sum(len(p) for p in pcm) + silence
        tmp = path + '.part'
        with open(tmp, 'wb') as f:
            f.write(wav_header(size))
            for data in pcm:
                f.write(data)
            chunk = b'\0' * (SAMPLE_RATE * 2)
            left = silence
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)
        os.replace(tmp, path)

    def _trim(self):
        "Remove the oldest padded prompts beyond max_files"
        files = glob.glob(os.path.join(self.directory, 'prompt-*.wav'))
        if len(files) <= self.max_files:
            return
        files.sort(key=lambda p: os.path.getmtime(p))
        for path in files[:len(files) - self.max_files]:
            try:
                os.unlink(path)
            except OSError:
                pass


# --- the CRM ----------------------------------------------------------------

class CrmClient:
    """The CRM's IVR API: crm_url is the database's URL
    (http://host:8000/<db>); requests carry the key of the Call Center
    Telephony application and the HMAC-SHA256 signature of their body"""

    def __init__(self, crm_url, key, timeout=5.0, retries=1):
        self.crm_url = crm_url.rstrip('/')
        self.key = key
        self.timeout = timeout
        self.retries = retries

    def _request(self, url, body=None):
        headers = {'Authorization': 'Bearer %s' % self.key}
        if body is not None:
            headers['Content-Type'] = 'application/json'
            headers['X-CRM-Signature'] = 'sha256=' + hmac.new(
                self.key.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(url, data=body, headers=headers,
            method='POST' if body is not None else 'GET')
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(
                        request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as exception:
                detail = exception.read()[:500].decode(errors='replace')
                raise CrmError('%s answered %s: %s' % (url, exception.code,
                        detail)) from exception
            except (urllib.error.URLError, OSError) as exception:
                if attempt >= self.retries:
                    raise CrmError('%s: %s' % (url, exception)
                        ) from exception
                time.sleep(0.2)

    def step(self, payload):
        body = json.dumps(payload).encode()
        data = self._request(self.crm_url + '/callcenter/ivr/step', body)
        try:
            answer = json.loads(data)
        except ValueError as exception:
            raise CrmError('the step answer is no JSON') from exception
        if not isinstance(answer, dict):
            raise CrmError('the step answer is no JSON object')
        return answer

    def fetch(self, url):
        "The bytes at url (relative to the CRM's URL)"
        return self._request(urllib.parse.urljoin(self.crm_url + '/', url))


# --- baresip ----------------------------------------------------------------

def baresip_module_dir():
    for path in ['/usr/lib/baresip/modules', '/usr/local/lib/baresip/modules',
            *sorted(glob.glob('/usr/lib/*/baresip/modules'))]:
        if os.path.exists(os.path.join(path, 'ctrl_tcp.so')):
            return path
    return None


def free_port(host='127.0.0.1', count=1, align=1, tries=200):
    "The first of count free UDP+TCP ports on host"
    import random
    rand = random.Random()
    for _ in range(tries):
        start = rand.randrange(20000, 45000)
        start -= start % align
        if all(_port_free(host, p) for p in range(start, start + count)):
            return start
    raise BaresipError('no free block of %d ports on %s' % (count, host))


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


def _die_with_parent():
    "In the child: get SIGTERM when the parent dies (Linux)"
    try:
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
    except Exception:
        pass


def _netstring(data):
    return b'%d:%s,' % (len(data), data)


BARESIP_CONFIG = """\
# baresip config written by crm_callcenter.ivr_runner
poll_method\t\tepoll
sip_listen\t\t{listen}
{net_interface}
call_local_timeout\t{ring_timeout}
call_max_calls\t\t{max_calls}

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


class BaresipClient:
    """One baresip user agent, started from a config written here and
    driven through its ctrl_tcp socket (netstring JSON).

    events: baresip's event dicts (keys type, class, accountaor,
    direction, peeruri, id (the SIP Call-ID), param, time), consumed by
    next_event() in order; keep_history also keeps them all in history
    for wait_for() (tests)."""

    def __init__(self, user, registrar, work_dir, listen=None,
            ctrl_port=None, rtp_ports=None, password=None, transport='udp',
            answer_mode='manual', max_calls=1, source=None,
            ring_timeout=35, module_path=None, binary=None,
            extra_modules=(), snd_path=None, codecs='pcmu,pcma',
            register_interval=600, keep_history=False):
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
        self.keep_history = keep_history
        self.proc = None
        self.sock = None
        self.log_path = os.path.join(work_dir, 'baresip.log')
        self.history = []
        self._events = deque()
        self._responses = {}
        self._cond = threading.Condition()
        self._token = 0
        self._consumed = {}
        self._reader = None
        self._send_lock = threading.Lock()

    def __repr__(self):
        return '<BaresipClient %s>' % self.user

    @property
    def aor(self):
        return 'sip:%s@%s' % (self.user, self.registrar)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def uri(self, number):
        "The SIP URI of number through the registrar (a sip: URI as is)"
        if number.startswith(('sip:', 'sips:', 'tel:')):
            return number
        return 'sip:%s@%s' % (number, self.registrar)

    def write_config(self):
        os.makedirs(self.work_dir, exist_ok=True)
        if not self.module_path:
            raise BaresipError('baresip modules (ctrl_tcp.so) not found')
        if not self.listen:
            host = '127.0.0.1'
            # SIP port + 1 is baresip's TLS port
            self.listen = '%s:%d' % (host, free_port(host, 2, 2))
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
        """Start baresip and connect to its control socket; wait (up to
        timeout) until it is registered when wait_registered. Return
        whether it is registered."""
        self.write_config()
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
                raise BaresipError('baresip exited (%s):\n%s' % (
                    self.proc.returncode, self.log_tail()))
            try:
                self.sock = socket.create_connection(
                    ('127.0.0.1', self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BaresipError('baresip: no ctrl_tcp on %s:\n%s' % (
                        self.ctrl_port, self.log_tail()))
                time.sleep(0.05)
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, daemon=True,
            name='baresip-%s' % self.user)
        self._reader.start()
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

    def _read(self):
        buf = b''
        while True:
            try:
                data = self.sock.recv(65536)
            except (OSError, AttributeError):
                data = b''
            if not data:
                with self._cond:
                    self._events.append({'type': '_DISCONNECTED'})
                    self._cond.notify_all()
                return
            buf += data
            while True:
                colon = buf.find(b':')
                if colon < 0:
                    break
                try:
                    size = int(buf[:colon])
                except ValueError:
                    buf = b''
                    break
                if len(buf) < colon + 1 + size + 1:
                    break
                payload = buf[colon + 1:colon + 1 + size]
                buf = buf[colon + 2 + size:]
                try:
                    message = json.loads(payload.decode('utf-8', 'replace'))
                except ValueError:
                    continue
                message['time'] = time.time()
                with self._cond:
                    if message.get('response'):
                        self._responses[message.get('token')] = message
                    elif message.get('event'):
                        if message.get('type') != 'CALL_RTCP':
                            self._events.append(message)
                            if self.keep_history:
                                self.history.append(message)
                    self._cond.notify_all()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self, command, params=None, timeout=5):
        """Run a baresip command (dial, accept, hangup, transfer, ausrc,
        sndcode, reginfo, listcalls...): its answer (keys ok, data)"""
        if not self.alive() or self.sock is None:
            raise BaresipError('baresip is not running')
        with self._cond:
            self._token += 1
            token = 'ivr-%d' % self._token
        message = {'command': command, 'token': token}
        if params is not None:
            message['params'] = params
        with self._send_lock:
            try:
                self.sock.sendall(_netstring(json.dumps(message).encode()))
            except OSError as exception:
                raise BaresipError('baresip: %s' % exception) from exception
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    raise BaresipError('baresip: no answer to %s' % command)
                self._cond.wait(min(left, 0.2))
            return self._responses.pop(token)

    def checked(self, command, params=None, timeout=5):
        answer = self.command(command, params, timeout=timeout)
        if not answer.get('ok'):
            raise BaresipError('%s %s failed: %s' % (command, params or '',
                answer.get('data')))
        return answer

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

    def next_event(self, timeout=None):
        "The next event not consumed yet, or None after timeout seconds"
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._events:
                left = None if deadline is None else (
                    deadline - time.monotonic())
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left if left is None else min(left, 0.5))
            return self._events.popleft()

    def wake(self):
        "Make a waiting next_event() return (an event of type _WAKE)"
        with self._cond:
            self._events.append({'type': '_WAKE'})
            self._cond.notify_all()

    def wait_for(self, event_type, timeout=10, **match):
        """The next event of the type in history (each returned once)
        whose keys equal match (keep_history only)"""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = self._consumed.get(event_type, 0)
                for index in range(start, len(self.history)):
                    event = self.history[index]
                    if event.get('type') != event_type:
                        continue
                    if all(event.get(k) == v for k, v in match.items()):
                        self._consumed[event_type] = index + 1
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError('%s: no %s %s within %ss' % (
                        self.user, event_type, match or '', timeout))
                self._cond.wait(min(left, 0.2))

    # calls
    def dial(self, number):
        return self.checked('dial', self.uri(number))

    def accept(self):
        return self.checked('accept')

    def hangup(self):
        return self.command('hangup')

    def transfer(self, target):
        "Blind transfer (SIP REFER) of the current call to target"
        return self.checked('transfer', self.uri(target))

    def send_dtmf(self, digits, gap=0.25):
        for i, digit in enumerate(str(digits)):
            if i:
                time.sleep(gap)
            self.checked('sndcode', digit)

    def set_source(self, path):
        "What the current call (and the next ones) hears: a WAV file"
        return self.checked('ausrc', 'aufile,%s' % path)

    def stop(self, timeout=3):
        "Quit baresip (SIGTERM, then SIGKILL) and close the socket"
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                if self.sock is not None:
                    self.sock.sendall(_netstring(json.dumps(
                                {'command': 'quit', 'token': 'quit'}
                                ).encode()))
                proc.wait(timeout=1)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        if self._reader is not None:
            self._reader.join(2)
            self._reader = None


# --- the runner -------------------------------------------------------------

def caller_number(event):
    "The user part of the caller's SIP URI ('+4930901820')"
    uri = event.get('peeruri') or event.get('param') or ''
    match = re.match(r'^(?:sips?|tel):([^@;>]+)', uri.strip('<>'))
    return urllib.parse.unquote(match.group(1)) if match else None


class CallEnded(Exception):
    pass


class Stopping(Exception):
    pass


class Runner:
    """Answers the calls of one IVR menu, one at a time"""

    def __init__(self, crm, baresip, audio, ivr, transfer_timeout=60,
            answer_timeout=5, error_text=None, restart_delay=2,
            pid_file=None):
        self.crm = crm
        self.baresip = baresip
        self.audio = audio
        self.ivr = ivr
        self.transfer_timeout = transfer_timeout
        self.answer_timeout = answer_timeout
        self.error_text = error_text
        self.restart_delay = restart_delay
        self.pid_file = pid_file
        self.stopping = False
        self.calls = 0
        self._call = None
        self._digits = []

    # life cycle
    def stop(self, *args):
        "Stop after the current wait (signal handler)"
        if not self.stopping:
            logger.info('stopping')
        self.stopping = True
        self.baresip.wake()

    def start_baresip(self, timeout=10):
        started = time.monotonic()
        try:
            self.baresip.start(timeout=timeout, wait_registered=False)
        finally:
            if self.pid_file and self.baresip.pid:
                tmp = self.pid_file + '.tmp'
                with open(tmp, 'w') as f:
                    f.write('%d\n%d\n' % (os.getpid(), self.baresip.pid))
                os.replace(tmp, self.pid_file)
        registered = self.baresip.wait_registered(
            timeout - (time.monotonic() - started))
        if registered:
            logger.info('baresip (pid %s) registered as %s', self.baresip.pid,
                self.baresip.aor)
        else:
            logger.warning('baresip (pid %s) not registered as %s yet; it '
                'keeps trying', self.baresip.pid, self.baresip.aor)

    def run(self):
        "Answer calls until stop()"
        self.start_baresip()
        try:
            while not self.stopping:
                if not self.baresip.alive():
                    logger.error('baresip exited (%s):\n%s',
                        self.baresip.proc.returncode,
                        self.baresip.log_tail(1000))
                    self.baresip.stop()
                    time.sleep(self.restart_delay)
                    if not self.stopping:
                        self.start_baresip()
                    continue
                event = self.baresip.next_event(timeout=1)
                if event is None:
                    continue
                kind = event.get('type')
                if kind == 'CALL_INCOMING':
                    self.take_call(event)
                elif kind in {'REGISTER_OK', 'REGISTER_FAIL'}:
                    log = logger.info if kind == 'REGISTER_OK' \
                        else logger.warning
                    log('%s: %s', kind, event.get('param') or '')
        finally:
            self.baresip.stop()
            logger.info('stopped after %d calls', self.calls)

    # one call
    def take_call(self, event):
        call_id = event.get('id')
        caller = caller_number(event)
        self._call = call_id
        self._digits = []
        self.calls += 1
        started = time.monotonic()
        logger.info('call %s from %s: answering', call_id, caller)
        try:
            self.baresip.accept()
            self._wait_established(call_id)
            self.converse(call_id, caller)
        except CallEnded as exception:
            logger.info('call %s ended: %s', call_id, exception)
        except Stopping:
            logger.info('call %s: hung up (runner stopping)', call_id)
            self._hangup()
        except (BaresipError, CrmError) as exception:
            logger.error('call %s: %s', call_id, exception)
            self._apologise(call_id)
            self._hangup()
        except Exception:
            logger.exception('call %s failed', call_id)
            self._hangup()
        finally:
            self._call = None
            try:
                if self.baresip.alive():
                    self.baresip.set_source(self.audio.silence())
            except BaresipError:
                pass
            logger.info('call %s done in %.1fs', call_id,
                time.monotonic() - started)

    def _wait_established(self, call_id):
        deadline = time.monotonic() + self.answer_timeout
        while True:
            event = self._next(deadline, call_id)
            if event is None:
                raise BaresipError('call %s not established' % call_id)
            if event.get('type') == 'CALL_ESTABLISHED':
                return

    def _next(self, deadline, call_id):
        """The next event of the call before deadline (None then);
        CallEnded when it closes, Stopping on stop()"""
        while True:
            if self.stopping:
                raise Stopping()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            event = self.baresip.next_event(timeout=left)
            if event is None:
                return None
            kind = event.get('type')
            if kind == '_DISCONNECTED':
                raise BaresipError('baresip control connection lost')
            if kind == '_WAKE':
                continue
            if kind == 'CALL_INCOMING' and event.get('id') != call_id:
                # baresip answers it "486 Max Calls"
                logger.info('call %s from %s while busy', event.get('id'),
                    caller_number(event))
                continue
            if event.get('id') not in (None, call_id):
                continue
            if kind == 'CALL_CLOSED':
                raise CallEnded(event.get('param') or 'closed')
            if kind == 'CALL_DTMF_START':
                digit = (event.get('param') or '').strip()[:1]
                if digit in DIGITS:
                    logger.info('call %s: caller pressed %s', call_id, digit)
                    self._digits.append(digit)
            return event

    def _wait(self, until, call_id, keys=None):
        """Wait until the monotonic time until; with keys (a count of
        keys), return True as soon as the caller pressed more keys"""
        while True:
            if keys is not None and len(self._digits) > keys:
                return True
            if self._next(until, call_id) is None:
                return keys is not None and len(self._digits) > keys

    def _play(self, answer):
        "Start saying and playing what the answer holds: its seconds"
        parts = []
        say = answer.get('say')
        if say:
            parts.append(self.audio.speech(say, answer.get('lang')))
        play = answer.get('play')
        if play:
            parts.append(self.audio.recording(play))
        path, seconds = self.audio.prompt(parts)
        self.baresip.set_source(path)
        return seconds

    def converse(self, call_id, caller):
        "Ask the CRM step by step what to do, and do it"
        node, digits, attempt, waited = None, None, 1, 0.0
        since = None            # when the current node was first answered
        for _ in range(MAX_STEPS):
            answer = self.crm.step({
                    'call_id': call_id,
                    'ivr': self.ivr,
                    'from': caller,
                    'node': node,
                    'digits': digits,
                    'attempt': attempt,
                    'waited': round(waited, 1),
                    })
            then = answer.get('then')
            collect = answer.get('collect')
            logger.info('call %s: node %s%s%s', call_id, answer.get('node'),
                ' collect' if collect else '',
                ' then %s %s' % (then.get('action'), then.get('target') or '')
                if isinstance(then, dict) else '')
            if answer.get('node') != node or since is None:
                since = time.monotonic()
            seconds = self._play(answer)
            spoken = time.monotonic() + seconds
            digits = None
            if collect:
                digits = self.collect(call_id, spoken, collect)
            elif then:
                self._wait(spoken, call_id)
                self.act(call_id, then)
                return
            else:
                # Go on: the next node, or the same one again after
                # retry_after (a queue with nobody free)
                retry = float(answer.get('retry_after') or 0)
                self._wait(max(spoken, time.monotonic() + retry), call_id)
            node = answer.get('node')
            attempt = answer.get('attempt') or 1
            waited = time.monotonic() - since
        raise CrmError('more than %d steps in call %s' % (MAX_STEPS, call_id))

    def collect(self, call_id, spoken, collect):
        """The keys pressed, during the prompt (it stops then) or until
        timeout seconds after it or after the last key; None"""
        try:
            max_digits = max(1, int(collect.get('max_digits') or 1))
            timeout = max(0.5, float(collect.get('timeout') or 5))
        except (TypeError, ValueError):
            max_digits, timeout = 1, 5.0
        deadline = spoken + timeout
        silenced = False
        while len(self._digits) < max_digits and '#' not in self._digits:
            if not self._wait(deadline, call_id, keys=len(self._digits)):
                break
            now = time.monotonic()
            if not silenced and now < spoken:
                self.baresip.set_source(self.audio.silence())
                silenced = True
            deadline = now + timeout
        pressed = ''.join(self._digits)
        self._digits = []
        if '#' in pressed:
            pressed = pressed[:pressed.index('#')]
        return pressed[:max_digits] or None

    def act(self, call_id, then):
        action = then.get('action')
        target = then.get('target')
        if action in {'queue', 'agent', 'external', 'voicemail'} and target:
            uri = self.baresip.uri(str(target))
            logger.info('call %s: transfer to %s (%s)', call_id, uri, action)
            self.baresip.transfer(str(target))
            deadline = time.monotonic() + self.transfer_timeout
            while True:
                event = self._next(deadline, call_id)
                if event is None:
                    logger.warning('call %s: transfer to %s not done after '
                        '%ss', call_id, uri, self.transfer_timeout)
                    break
                if event.get('type') == 'TRANSFER_FAILED':
                    logger.warning('call %s: transfer to %s failed: %s',
                        call_id, uri, event.get('param'))
                    break
            self._hangup()
            return
        logger.info('call %s: %s, hanging up', call_id, action)
        self._hangup()
        deadline = time.monotonic() + 3
        try:
            while self._next(deadline, call_id) is not None:
                pass
        except CallEnded:
            pass

    def _apologise(self, call_id):
        if not self.error_text or not self.baresip.alive():
            return
        try:
            seconds = self._play({'say': self.error_text})
            self._wait(time.monotonic() + seconds, call_id)
        except (CallEnded, Stopping, BaresipError):
            pass

    def _hangup(self):
        try:
            if self.baresip.alive():
                self.baresip.hangup()
        except BaresipError:
            pass


# --- command line -----------------------------------------------------------

OPTIONS = [
    # name, default, help
    ('crm_url', None, "the CRM database's URL: http://host:8000/<db>"),
    ('key', None, "the key of the CRM's Call Center Telephony application "
        "(better: --key-file or CRM_IVR_KEY)"),
    ('key_file', None, "a file holding the key"),
    ('ivr', None, "the number of the IVR menu"),
    ('sip_user', None, "the SIP user to register (default: the IVR number)"),
    ('sip_password', None, "its password (better: CRM_IVR_SIP_PASSWORD)"),
    ('registrar', None, "the SIP registrar/proxy: host:port"),
    ('transport', 'udp', "SIP transport: udp, tcp or tls"),
    ('listen', None, "baresip's SIP address host:port (default: a free port "
        "of 127.0.0.1)"),
    ('rtp_ports', None, "RTP port range, e.g. 10000-10019"),
    ('ctrl_port', None, "baresip's ctrl_tcp port on 127.0.0.1 (default: a "
        "free one)"),
    ('work_dir', None, "baresip's config, log and the prompt cache "
        "(default: a new temporary directory)"),
    ('cache_dir', None, "the prompt cache (default: WORK_DIR/cache)"),
    ('voice', 'en', "espeak-ng voice when the CRM gives no language"),
    ('speed', None, "espeak-ng words per minute"),
    ('pad', str(DEFAULT_PAD), "seconds of silence after a prompt (the "
        "longest wait for a key)"),
    ('transfer_timeout', '60', "seconds to wait for a transfer"),
    ('http_timeout', '5', "seconds to wait for the CRM"),
    ('error_text', None, "what to say when the CRM fails"),
    ('baresip', None, "the baresip binary"),
    ('module_path', None, "baresip's module directory"),
    ('pid_file', None, "write the runner's and baresip's pids here"),
    ('log_file', None, "log here instead of stderr"),
    ('log_level', 'INFO', "DEBUG, INFO, WARNING, ERROR"),
    ]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='crm_callcenter.ivr_runner',
        description="Answer the calls of a CRM IVR menu with baresip.")
    parser.add_argument('--config', '-c',
        help="an INI file: section [runner] with the options below "
        "(underscores for dashes); the command line wins")
    for name, _, help_ in OPTIONS:
        parser.add_argument('--' + name.replace('_', '-'), dest=name,
            help=help_)
    args = parser.parse_args(argv)
    values = {name: default for name, default, _ in OPTIONS}
    if args.config:
        config = configparser.ConfigParser(interpolation=None)
        if not config.read(args.config):
            parser.error('cannot read %s' % args.config)
        if config.has_section('runner'):
            for name, value in config.items('runner'):
                name = name.replace('-', '_')
                if name not in values:
                    parser.error('%s: unknown option %s' % (args.config,
                            name))
                values[name] = value
    for name in values:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if not values['key'] and values['key_file']:
        with open(values['key_file']) as f:
            values['key'] = f.read().strip()
    values['key'] = values['key'] or os.environ.get('CRM_IVR_KEY')
    values['sip_password'] = values['sip_password'] or os.environ.get(
        'CRM_IVR_SIP_PASSWORD')
    for name in ['crm_url', 'key', 'ivr', 'registrar']:
        if not values[name]:
            parser.error('--%s is required' % name.replace('_', '-'))
    values['sip_user'] = values['sip_user'] or values['ivr']
    try:
        for name in ['pad', 'transfer_timeout', 'http_timeout']:
            values[name] = float(values[name])
        for name in ['speed', 'ctrl_port']:
            values[name] = int(values[name]) if values[name] else None
    except ValueError as exception:
        parser.error(str(exception))
    return values


def main(argv=None):
    options = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(options['log_level']).upper(),
            logging.INFO),
        filename=options['log_file'],
        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    work_dir = options['work_dir']
    temporary = not work_dir
    if temporary:
        work_dir = tempfile.mkdtemp(prefix='crm-ivr-')
    os.makedirs(work_dir, exist_ok=True)
    crm = CrmClient(options['crm_url'], options['key'],
        timeout=options['http_timeout'])
    audio = AudioCache(options['cache_dir'] or os.path.join(work_dir,
            'cache'), voice=options['voice'], speed=options['speed'],
        pad=options['pad'], fetch=crm.fetch)
    baresip = BaresipClient(options['sip_user'], options['registrar'],
        os.path.join(work_dir, 'baresip'), listen=options['listen'],
        ctrl_port=options['ctrl_port'], rtp_ports=options['rtp_ports'],
        password=options['sip_password'], transport=options['transport'],
        source=audio.silence(), module_path=options['module_path'],
        binary=options['baresip'],
        ring_timeout=options['transfer_timeout'] + 5)
    runner = Runner(crm, baresip, audio, options['ivr'],
        transfer_timeout=options['transfer_timeout'],
        error_text=options['error_text'], pid_file=options['pid_file'])
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    logger.info('IVR %s: runner pid %s, SIP user %s at %s, CRM %s',
        options['ivr'], os.getpid(), options['sip_user'],
        options['registrar'], options['crm_url'])
    pid_file = options['pid_file']
    try:
        runner.run()
    except BaresipError as exception:
        logger.error('%s', exception)
        return 1
    finally:
        if pid_file and os.path.exists(pid_file):
            os.unlink(pid_file)
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
