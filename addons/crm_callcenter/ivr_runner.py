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

Standard library only: it drives baresip with the suite's baresip client
(baresip.py, beside this file). On a host without the CRM, copy both files
and run ``python3 ivr_runner.py ...``."""
import argparse
import configparser
import glob
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    from .baresip import (
        SAMPLE_RATE, BaresipError, BaresipPhone, read_pcm, speak,
        to_phone_wav, wav_duration, write_wav)
except ImportError:     # run as a script: python3 ivr_runner.py
    from baresip import (
        SAMPLE_RATE, BaresipError, BaresipPhone, read_pcm, speak,
        to_phone_wav, wav_duration, write_wav)

__all__ = ['BaresipPhone', 'BaresipError', 'CrmClient', 'CrmError',
    'AudioCache', 'Runner', 'main']

logger = logging.getLogger('crm_callcenter.ivr_runner')

# Seconds of silence after each prompt: baresip 1.0.0's aufile closes the
# call when its file ends, so no wait after a prompt may last longer.
DEFAULT_PAD = 120
MAX_STEPS = 200             # steps of one call: a loop is a bug, not a call
DIGITS = set('0123456789*#ABCD')


class CrmError(Exception):
    pass


# --- audio ------------------------------------------------------------------

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
            try:
                return speak(text, path, voice=voice, speed=self.speed)
            except BaresipError as exception:
                logger.warning('speech with voice %s failed: %s', voice,
                    exception)
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
        sound = sum(wav_duration(p) for p in parts)
        return path, sound

    def _write(self, path, parts, pad):
        pcms = []
        for part in parts:
            pcm, rate, channels = read_pcm(part)
            if (rate, channels) != (SAMPLE_RATE, 1):
                raise BaresipError('%s is not 8 kHz mono' % part)
            pcms.append(pcm)
        write_wav(path, pcms, pad)

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
    baresip = BaresipPhone(options['sip_user'], options['registrar'],
        os.path.join(work_dir, 'baresip'), listen=options['listen'],
        ctrl_port=options['ctrl_port'], rtp_ports=options['rtp_ports'],
        password=options['sip_password'], transport=options['transport'],
        source=audio.silence(), module_path=options['module_path'],
        binary=options['baresip'],
        ring_timeout=options['transfer_timeout'] + 5,
        history=False, queue=True)
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
