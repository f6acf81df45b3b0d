"""Real-telephony test rig: Kamailio (registrar + proxy) and baresip phones.

Everything runs on 127.0.0.1 as real processes, started and stopped by this
module (stdlib only)::

    with Rig(routing_url=..., events_url=..., api_key='k') as rig:
        agent = rig.phone('1001')
        customer = rig.phone('+4930123456')
        customer.dial('5000')
        agent.wait_for('CALL_INCOMING')
        agent.accept()
        customer.wait_for('CALL_ESTABLISHED')
        customer.hangup()

Kamailio asks ``routing_url`` where a call to a number that is no registered
SIP user goes, and posts call events to ``events_url`` (see
kamailio.cfg.tmpl and README.md for the JSON).
"""
import atexit
import glob
import importlib.util
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import weakref

try:
    from ...baresip import (
        MODULES as BARESIP_MODULES, SAMPLE_RATE, BaresipError, BaresipPhone,
        baresip_module_dir, read_pcm, speak, to_phone_wav, wav_duration,
        write_wav)
except ImportError:
    # Loaded outside crm_callcenter (import rig, or by its path): the
    # client is crm_callcenter/baresip.py, standard library only too
    def _load_baresip():
        path = os.path.join(os.path.dirname(os.path.dirname(
                    os.path.dirname(os.path.abspath(__file__)))),
            'baresip.py')
        spec = importlib.util.spec_from_file_location(
            'crm_callcenter_baresip', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    _baresip = _load_baresip()
    BARESIP_MODULES = _baresip.MODULES
    BaresipError = _baresip.BaresipError
    BaresipPhone = _baresip.BaresipPhone
    baresip_module_dir = _baresip.baresip_module_dir
    SAMPLE_RATE = _baresip.SAMPLE_RATE
    read_pcm, speak = _baresip.read_pcm, _baresip.speak
    to_phone_wav, wav_duration = _baresip.to_phone_wav, _baresip.wav_duration
    write_wav = _baresip.write_wav

__all__ = [
    'Rig', 'Phone', 'RigError', 'BaresipError', 'missing_binaries', 'hmac_available', 'rms',
    'tts', 'to_phone_wav', 'silence_wav', 'wav_duration', 'sip_options',
    'HOST', 'SAMPLE_RATE']

HOST = '127.0.0.1'
HERE = os.path.dirname(os.path.abspath(__file__))
KAMAILIO_TEMPLATE = os.path.join(HERE, 'kamailio.cfg.tmpl')
KAMAILIO_MODULES = ('tm.so', 'dialog.so', 'http_client.so', 'jansson.so')
PORT_RANGE = (20000, 45000)
# Seconds of silence after what a phone plays: baresip's aufile closes the
# call when its file ends, so a call can last this long after a prompt.
DEFAULT_PAD = 120

_RUNNING = weakref.WeakSet()


class RigError(BaresipError):
    "What the rig refuses or fails to do (the phones' errors: BaresipError)"


# --- binaries --------------------------------------------------------------

def _which(name):
    return shutil.which(name) or shutil.which(name, path='/usr/sbin:/sbin')


def kamailio_module_dir():
    "The directory holding Kamailio's modules (absolute), or None."
    patterns = ['/usr/lib/*/kamailio/modules', '/usr/lib/kamailio/modules',
        '/usr/lib64/kamailio/modules', '/usr/local/lib*/kamailio/modules']
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if os.path.exists(os.path.join(path, 'tm.so')):
                return path + '/'
    return None


def missing_binaries(*names):
    """What the rig lacks to run, as readable strings (empty when complete).

    names: among 'kamailio', 'baresip', 'espeak-ng', 'sox' (default: all).
    """
    names = names or ('kamailio', 'baresip', 'espeak-ng', 'sox')
    missing = []
    for name in names:
        if not _which(name):
            missing.append(name)
        elif name == 'kamailio':
            mdir = kamailio_module_dir()
            for module in KAMAILIO_MODULES:
                if not mdir or not os.path.exists(os.path.join(mdir, module)):
                    missing.append('kamailio module %s' % module)
        elif name == 'baresip':
            mdir = baresip_module_dir()
            for module in (*BARESIP_MODULES, 'sndfile.so'):
                if not mdir or not os.path.exists(os.path.join(mdir, module)):
                    missing.append('baresip module %s' % module)
    return missing


def hmac_available():
    "True when Kamailio's crypto module (crypto_hmac_sha256) is installed."
    mdir = kamailio_module_dir()
    return bool(mdir) and os.path.exists(os.path.join(mdir, 'crypto.so'))


# --- audio helpers ---------------------------------------------------------

def silence_wav(wav_path, seconds):
    "Write seconds of silence at the phones' format (8 kHz mono S16)."
    return write_wav(wav_path, [], seconds)


def tts(text, wav_path, voice=None, speed=None):
    """Speak text with espeak-ng into wav_path (8 kHz mono S16, ready for
    Phone.play)."""
    return speak(text, wav_path, voice=voice, speed=speed)


def rms(wav_path, start=0.0, end=None):
    """Root mean square of a 16-bit PCM WAV, scaled to 0..1 (full scale = 1;
    digital silence = 0).  start/end in seconds restrict the window."""
    pcm, rate, channels = read_pcm(wav_path)
    samples = struct.unpack('<%dh' % (len(pcm) // 2),
        pcm[:len(pcm) // 2 * 2])
    first = int(start * rate) * channels
    last = len(samples) if end is None else int(end * rate) * channels
    window = samples[first:last]
    if not window:
        return 0.0
    return math.sqrt(sum(s * s for s in window) / len(window)) / 32768.0


def _port_free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class _Ports:
    "Free port blocks on 127.0.0.1 (UDP and TCP), never handed out twice."

    def __init__(self):
        self.used = set()
        self.rand = random.Random()

    def block(self, count, align=1):
        for _ in range(500):
            start = self.rand.randrange(*PORT_RANGE)
            start -= start % align
            ports = range(start, start + count)
            if any(p in self.used for p in ports):
                continue
            if all(_port_free(p) for p in ports):
                self.used.update(ports)
                return start
        raise RigError('no free block of %d ports' % count)


def _render(template_path, values, dst):
    with open(template_path) as f:
        text = f.read()

    def sub(match):
        name = match.group(1)
        if name not in values:
            raise RigError('%s: no value for %s' % (template_path, name))
        return str(values[name])
    text = re.sub(r'@@([A-Z_]+)@@', sub, text)
    with open(dst, 'w') as f:
        f.write(text)
    return dst


def _stop_process(proc, term_timeout=5, group=False):
    "SIGTERM, then SIGKILL (the process group when group) after a while."
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(term_timeout)
        except subprocess.TimeoutExpired:
            pass
    if group:
        # Kamailio's children, should one have outlived its main process
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(5)


def _tail(path, lines=30):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


# --- SIP probe ---------------------------------------------------------------

def sip_options(port, user=None, timeout=3.0, host=HOST):
    """Send one SIP OPTIONS to host:port (to sip:user@... when user) and
    return the status code of the final answer, or None on timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((HOST, 0))
        sock.connect((host, port))  # connected: ICMP "refused" is reported
        lport = sock.getsockname()[1]
        ruri = 'sip:%s%s:%d' % (user + '@' if user else '', host, port)
        call_id = uuid.uuid4().hex
        branch = 'z9hG4bK' + uuid.uuid4().hex[:16]
        msg = ('OPTIONS %s SIP/2.0\r\n'
            'Via: SIP/2.0/UDP %s:%d;branch=%s;rport\r\n'
            'Max-Forwards: 10\r\n'
            'From: <sip:rig-probe@%s>;tag=%s\r\n'
            'To: <%s>\r\n'
            'Call-ID: %s@rig\r\n'
            'CSeq: 1 OPTIONS\r\n'
            'Content-Length: 0\r\n\r\n') % (ruri, HOST, lport, branch,
                HOST, uuid.uuid4().hex[:8], ruri, call_id)
        deadline = time.monotonic() + timeout
        next_send = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                try:
                    sock.send(msg.encode())
                except ConnectionRefusedError:
                    pass
                next_send = now + 0.5
            sock.settimeout(max(0.01, min(deadline, next_send) - now))
            try:
                data = sock.recv(65535)
            except socket.timeout:
                continue
            except ConnectionRefusedError:   # nobody there yet: retry soon
                next_send = min(next_send, time.monotonic() + 0.05)
                continue
            first = data.split(b'\r\n', 1)[0].split()
            if len(first) >= 2 and first[0] == b'SIP/2.0':
                code = int(first[1])
                if code >= 200:
                    return code
                next_send = deadline  # provisional: wait for the final
    finally:
        sock.close()


# --- Rig --------------------------------------------------------------------

class Rig:
    """Kamailio on 127.0.0.1 plus baresip phones, all stopped by stop().

    routing_url: where Kamailio POSTs {"call_id","from","to"} for an INVITE
        to a number that is no registered user (None: such calls get 404);
    events_url: where it POSTs call events (None: no events);
    api_key: sent as "Authorization: Bearer <api_key>" (and the HMAC key of
        X-CRM-Signature when Kamailio's crypto module is installed);
    ring_timeout: seconds an unanswered call rings before it fails (408);
    keep: keep the temporary directory (configs, logs, recordings);
        also when the environment variable CRM_RIG_KEEP=1;
    phones: False for Kamailio alone (other SIP clients register, e.g.
        SIPp): baresip need not be installed, phone() refuses.
    """

    def __init__(self, routing_url=None, events_url=None, api_key='',
            ring_timeout=30, debug=2, keep=None, start_timeout=10,
            phones=True):
        for name, value in (('routing_url', routing_url),
                ('events_url', events_url), ('api_key', api_key)):
            if value and not re.fullmatch(r'[\x21-\x7e]+', value) \
                    or value and re.search(r'["\\$]', value):
                raise ValueError('%s: printable ASCII without space, quote, '
                    'backslash or $ expected' % name)
        self.routing_url = routing_url
        self.events_url = events_url
        self.api_key = api_key or ''
        self.ring_timeout = ring_timeout
        self.debug = debug
        self.keep = keep if keep is not None else (
            os.environ.get('CRM_RIG_KEEP') == '1')
        self.start_timeout = start_timeout
        self.with_phones = phones
        self.hmac = hmac_available()
        self.dir = None
        self.sip_port = None
        self.phones = {}
        self.kamailio = None
        self._ports = _Ports()
        self._silence = None
        self._lock = threading.Lock()

    # context manager
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def kamailio_log(self):
        return os.path.join(self.dir, 'kamailio.log') if self.dir else None

    def kamailio_log_text(self):
        return _tail(self.kamailio_log, 10 ** 6) if self.dir else ''

    def uri(self, number):
        "SIP URI of number (or user) through the proxy."
        return 'sip:%s@%s:%d' % (number, HOST, self.sip_port)

    def start(self):
        if self.kamailio is not None:
            return self
        missing = missing_binaries(
            *(('kamailio', 'baresip') if self.with_phones else ('kamailio',)))
        if missing:
            raise RigError('missing: %s (run scripts/telephony.sh)'
                % ', '.join(missing))
        self.dir = tempfile.mkdtemp(prefix='crm-rig-')
        self.phones = {}
        _RUNNING.add(self)
        try:
            self._start_kamailio()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_kamailio(self):
        self.sip_port = self._ports.block(1)
        defines = []
        if self.routing_url:
            defines.append('#!define WITH_ROUTING')
        if self.events_url:
            defines.append('#!define WITH_EVENTS')
        if self.hmac and self.api_key:
            defines.append('#!define WITH_HMAC')
        run_dir = os.path.join(self.dir, 'kamailio')
        os.mkdir(run_dir)
        cfg = _render(KAMAILIO_TEMPLATE, {
                'DEFINES': '\n'.join(defines),
                'DEBUG': self.debug,
                'SIP_PORT': self.sip_port,
                'RUN_DIR': run_dir,
                'MODULE_DIR': kamailio_module_dir(),
                'FR_TIMER_MS': 3000,
                'RING_TIMEOUT_MS': int(self.ring_timeout * 1000),
                'HTTP_TIMEOUT_S': 3,
                'ROUTING_URL': self.routing_url or '',
                'EVENTS_URL': self.events_url or '',
                'API_KEY': self.api_key,
                }, os.path.join(self.dir, 'kamailio.cfg'))
        log = open(self.kamailio_log, 'wb')
        try:
            # -DD: no daemon, the main process stays our child; -E: log to
            # stderr (our log file).
            self.kamailio = subprocess.Popen([_which('kamailio'), '-DD', '-E',
                    '-f', cfg, '-w', run_dir, '-m', '64', '-M', '8'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=run_dir, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.kamailio.poll() is not None:
                raise RigError('kamailio exited (%s):\n%s' % (
                    self.kamailio.returncode, _tail(self.kamailio_log)))
            if sip_options(self.sip_port, timeout=0.5) == 200:
                return
        raise RigError('kamailio does not answer on %s:%d:\n%s' % (
            HOST, self.sip_port, _tail(self.kamailio_log)))

    def silence_path(self):
        if self._silence is None:
            self._silence = silence_wav(
                os.path.join(self.dir, 'silence.wav'), DEFAULT_PAD)
        return self._silence

    def reachable(self, user, timeout=4):
        """True when user is registered at Kamailio and its phone answers an
        OPTIONS relayed by Kamailio (a dead phone: False after ~3 s)."""
        return sip_options(self.sip_port, user, timeout=timeout) == 200

    def phone(self, user, timeout=10):
        """Start a baresip phone registered as user (digits, letters, + . _
        -); wait until it is registered and reachable through Kamailio."""
        if self.kamailio is None:
            raise RigError('rig not started')
        if not self.with_phones:
            raise RigError('rig started without phones')
        if not re.fullmatch(r'[A-Za-z0-9+._-]+', user):
            raise ValueError('unsupported SIP user %r' % user)
        for attempt in (1, 2):
            with self._lock:
                if user in self.phones and self.phones[user].alive():
                    raise RigError('phone %s already runs' % user)
                phone = Phone(self, user)
                self.phones[user] = phone
            try:
                return phone.start(timeout=timeout)
            except BaresipError:
                phone.stop()
                # a port taken between our check and baresip's bind: once
                # more with other ports
                if attempt == 2:
                    raise
            except BaseException:
                phone.stop()
                raise

    def stop(self):
        "Stop every phone, then Kamailio; remove the temporary directory."
        for phone in list(self.phones.values()):
            try:
                phone.stop()
            except Exception:
                pass
        _stop_process(self.kamailio, group=True)
        self.kamailio = None
        if self.dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        _RUNNING.discard(self)


@atexit.register
def _stop_all():
    for rig in list(_RUNNING):
        try:
            rig.stop()
        except Exception:
            pass


# --- Phone ------------------------------------------------------------------

class Phone(BaresipPhone):
    """One baresip phone of the rig, registered at its Kamailio: the
    suite's baresip client (crm_callcenter/baresip.py) with the rig's ports,
    a recording of what it receives and the checks that keep a test from
    waiting 32 s for a dead peer.

    events: every event dict baresip sent (keys type, class, accountaor,
    direction, peeruri, id (the SIP Call-ID), param, time), in order;
    wait_for() takes them. Errors of baresip commands: BaresipError (the
    base of RigError).
    """

    def __init__(self, rig, user):
        self.rig = rig
        safe = re.sub(r'[^A-Za-z0-9_.-]', '_', user)
        work_dir = os.path.join(rig.dir, 'phone-%s' % safe)
        n = 1
        while os.path.exists(work_dir):         # a restarted phone
            n += 1
            work_dir = os.path.join(rig.dir, 'phone-%s-%d' % (safe, n))
        self.dir = work_dir
        self.rec_dir = os.path.join(work_dir, 'rec')
        ports = rig._ports
        # SIP port + 1 is baresip's TLS port: blocks of 2
        self.sip_port = ports.block(2, align=2)
        rtp = ports.block(20, align=2)
        super().__init__(user, '%s:%d' % (HOST, rig.sip_port), work_dir,
            listen='%s:%d' % (HOST, self.sip_port),
            ctrl_port=ports.block(1),
            rtp_ports='%d-%d' % (rtp, rtp + 19),
            source=rig.silence_path(),
            ring_timeout=int(rig.ring_timeout) + 5,
            max_calls=4, codecs='pcmu',
            extra_modules=['sndfile.so'], snd_path=self.rec_dir)

    def start(self, timeout=10):
        """Start baresip; wait until it is registered and reachable through
        Kamailio"""
        os.makedirs(self.rec_dir)
        deadline = time.monotonic() + timeout
        if not super().start(timeout=timeout):
            raise RigError('phone %s did not register:\n%s' % (
                self.user, self.log_tail()))
        while not self.rig.reachable(self.user, timeout=2):
            if time.monotonic() > deadline:
                raise RigError('phone %s not reachable through kamailio'
                    % self.user)
        return self

    # calls
    def dial(self, number):
        """Call number (a user, an extension, a queue number; or a full sip:
        URI) through Kamailio.  Checks first that this phone, and the callee
        when it is a phone of the rig, are up and registered."""
        if not self.registered():
            raise RigError('phone %s is not registered' % self.user)
        callee = self.rig.phones.get(number)
        if callee is not None and not callee.registered():
            raise RigError('callee %s is not up and registered' % number)
        return super().dial(number)

    def play(self, wav_path=None, pad=DEFAULT_PAD):
        """Send this file in the current call (from its start) and the next
        ones; None: silence.  Converted to 8 kHz mono S16 and padded with
        pad seconds of silence (the call ends when the file ends)."""
        if wav_path is None:
            source = self.rig.silence_path()
        else:
            source = os.path.join(self.dir, 'play-%s.wav' % uuid.uuid4().hex)
            to_phone_wav(wav_path, source, pad_seconds=pad)
        self.set_source(source)
        self.source = source
        return source

    @property
    def recordings(self):
        "Files of what this phone received, oldest first."
        return sorted(glob.glob(os.path.join(self.rec_dir, 'dump-*-dec.wav')),
            key=os.path.getmtime)

    @property
    def recording_path(self):
        """WAV of what this phone received in its last call (complete once
        the call is closed), or None."""
        recordings = self.recordings
        return recordings[-1] if recordings else None
