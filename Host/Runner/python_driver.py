# The Python side of hangar-runner's "python" runtime (see README.md, "Python runtime").
#
# This is not a module to import or run by hand: it is the first code block the runner sends to
# a new interpreter. The runner starts `PYTHON -u -c BOOTSTRAP` (BOOTSTRAP is in
# runtime_python.c) with two extra pipes:
#
#   fd 3, runner -> python: code blocks, each a 4-byte big-endian length and UTF-8 source. The
#        first block is this file, which BOOTSTRAP compiles as '<hangar-driver>' and runs in
#        __main__; every later block is one query.
#   fd 4, python -> runner: events, each a type byte, a 4-byte big-endian length and a UTF-8
#        payload: 'R' ready, 'W' waiting for input (payload: the prompt), 'D' done ("ok" or
#        "error").
#
# The C code gets this file through python_driver.h, which
# Tools/scripts/embed-runner-driver.sh generates from it. After editing this file, run that
# script and commit both files; `embed-runner-driver.sh --check` fails while they disagree.
#
# The script leaves out every line whose first non-blank character is '#' (the comments, like
# this one) and keeps everything else byte for byte. So the interpreter receives the code
# without its commentary, and the line numbers that appear in tracebacks through the driver's
# own frames ('File "<hangar-driver>", line N', for example when an input() is interrupted)
# do not move when comments are added or changed. Never start a line of a multi-line string
# literal with '#': the script would drop it.
#
# Supported: Python 3.6 and later. Everything lives inside one function so that the driver
# leaves no names behind in __main__, where user code runs.
def _hangar_driver():
    import sys, os, io, ast, codecs, struct, signal, builtins, linecache, threading, traceback
    # User code runs in __main__'s own dict (so pickling its classes works). Remove the names
    # BOOTSTRAP and this file defined there: a new interpreter starts with an empty namespace.
    g = sys.modules['__main__'].__dict__
    for name in ('_hangar_driver', '_r', 'os'):
        g.pop(name, None)
    sys.argv = ['']
    # os.dup makes close-on-exec descriptors: user code and its subprocesses see only 0-2.
    ctl = os.dup(3)
    ev = os.dup(4)
    os.close(3)
    os.close(4)
    lock = threading.Lock()
    # user[0]: user code is running now, so SIGINT ('X') may raise KeyboardInterrupt.
    user = [False]

    # An interrupt that lands while the driver itself works is dropped (README: "If no f comes,
    # send X again").
    def on_sigint(signum, frame):
        if user[0]:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)

    # One event on fd 4. The payload is cut at 1 MiB (the prompt of 'W' is the only one that
    # can be long). Threads of user code may call input() too, hence the lock; an interrupt
    # must not cut an event in half, hence user[0] is off while it is written.
    def emit(kind, text, limit=1 << 20):
        data = text.encode('utf-8', 'replace')[:limit]
        msg = kind.encode('ascii') + struct.pack('>I', len(data)) + data
        with lock:
            saved = user[0]
            user[0] = False
            try:
                while msg:
                    msg = msg[os.write(ev, msg):]
            finally:
                user[0] = saved

    # Before every event: all output written so far must reach the runner first, because the
    # runner drains the pipes when it sees the event (README: "Output before events").
    def flush():
        for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                s.flush()
            except BaseException:
                pass

    # sys.stdin: asks the agent for a line ('W') only when no complete line is buffered, then
    # reads fd 0, where the runner writes what 'I' requests carry. The runner keeps fd 0 open,
    # so it never reaches end of file in practice.
    class Stdin(io.TextIOBase):
        def __init__(self):
            self._dec = codecs.getincrementaldecoder('utf-8')('replace')
            self._buf = ''
            self._eof = False

        @property
        def encoding(self):
            return 'utf-8'

        @property
        def name(self):
            return '<stdin>'

        def readable(self):
            return True

        def isatty(self):
            return False

        def fileno(self):
            return 0

        def _fill(self, prompt):
            if '\n' in self._buf or self._eof:
                return
            flush()
            emit('W', prompt)
            while '\n' not in self._buf:
                data = os.read(0, 65536)
                if not data:
                    self._eof = True
                    self._buf += self._dec.decode(b'', True)
                    return
                self._buf += self._dec.decode(data)

        def _take(self, n):
            s = self._buf[:n]
            self._buf = self._buf[n:]
            return s

        def _line(self, size, prompt):
            self._fill(prompt)
            i = self._buf.find('\n')
            n = len(self._buf) if i < 0 else i + 1
            if size is not None and size >= 0:
                n = min(n, size)
            return self._take(n)

        def readline(self, size=-1):
            return self._line(size, '')

        # Returns what is buffered, asking for one line if nothing is.
        def read(self, size=-1):
            self._fill('')
            if size is None or size < 0:
                size = len(self._buf)
            return self._take(size)

    stdin = Stdin()
    sys.stdin = stdin

    # builtins.input: the prompt travels in 'W' and is not written to stdout, unless user code
    # replaced sys.stdin, in which case this behaves like the built-in input().
    def input(prompt=''):
        prompt = str(prompt)
        if sys.stdin is stdin:
            line = stdin._line(-1, prompt)
        else:
            sys.stdout.write(prompt)
            sys.stdout.flush()
            line = sys.stdin.readline()
        if not line:
            raise EOFError('EOF when reading a line')
        return line[:-1] if line.endswith('\n') else line

    builtins.input = input

    # Writes an exception to stderr: only its last part (only=True: syntax errors, SystemExit),
    # or the whole traceback without the driver's own frames at the top.
    def show(e, only):
        try:
            if only:
                text = ''.join(traceback.format_exception_only(type(e), e))
            else:
                tb = e.__traceback__
                while tb is not None and tb.tb_frame.f_code.co_filename == '<hangar-driver>':
                    tb = tb.tb_next
                text = ''.join(traceback.format_exception(type(e), e, tb))
            sys.stderr.write(text)
        except BaseException:
            pass
        flush()

    count = [0]

    # One query; its 'D' payload: 'ok', 'error' (an exception escaped: status 1, as python -c),
    # or the decimal status of a non-zero SystemExit. Its source is registered with linecache as
    # '<query-N>' so tracebacks show its lines. A last top-level expression (without a
    # trailing ';') is evaluated apart and shown through sys.displayhook, as in the REPL.
    def run(src):
        count[0] += 1
        fn = '<query-%d>' % count[0]
        linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)
        try:
            tree = ast.parse(src, fn, 'exec')
            tail = None
            if tree.body and isinstance(tree.body[-1], ast.Expr) and not src.rstrip().endswith(';'):
                tail = compile(ast.Expression(tree.body.pop().value), fn, 'eval', dont_inherit=True)
            body = compile(tree, fn, 'exec', dont_inherit=True)
        except BaseException as e:
            show(e, True)
            return 'error'
        try:
            try:
                user[0] = True
                exec(body, g)
                if tail is not None:
                    value = eval(tail, g)
                    if value is not None:
                        sys.displayhook(value)
            finally:
                user[0] = False
        except SystemExit as e:
            # As the interpreter's own exit: an int is the status (modulo 256, as the OS
            # keeps it), None is 0, anything else is printed to stderr and means 1.
            code = e.code
            if code is None:
                return 'ok'
            if isinstance(code, int):
                code &= 0xFF
                return 'ok' if code == 0 else str(code)
            try:
                sys.stderr.write(str(code) + '\n')
            except BaseException:
                pass
            flush()
            return 'error'
        except BaseException as e:
            show(e, False)
            return 'error'
        return 'ok'

    # Figures matplotlib's pyplot still holds when a query ends come back as PNG media ('M',
    # a JSON object {"type", "data"} with the bytes in base64) and are closed. Without a
    # display, pyplot draws with Agg (plt.show() shows nothing; this is how plots are seen).
    os.environ.setdefault('MPLBACKEND', 'Agg')

    def send_figures():
        plt = sys.modules.get('matplotlib.pyplot')
        if plt is None:
            return
        import base64, json
        for number in plt.get_fignums():
            data = io.BytesIO()
            plt.figure(number).savefig(data, format='png')
            flush()
            emit('M', json.dumps({'type': 'image/png', 'data': base64.b64encode(data.getvalue()).decode('ascii')}), 8 << 20)
        plt.close('all')

    pending = bytearray()

    # n bytes from fd 3, or None at end of file (the runner closed it: time to go).
    def readn(n):
        while len(pending) < n:
            try:
                data = os.read(ctl, max(65536, n - len(pending)))
            except KeyboardInterrupt:
                continue
            if not data:
                return None
            pending.extend(data)
        out = bytes(pending[:n])
        del pending[:n]
        return out

    # The loop: one code block in, its output, then exactly one 'D' out.
    emit('R', '')
    while True:
        head = readn(4)
        if head is None:
            break
        src = readn(struct.unpack('>I', head)[0])
        if src is None:
            break
        status = 'error'
        try:
            status = run(src.decode('utf-8', 'replace'))
        except BaseException:
            pass
        try:
            send_figures()
        except BaseException:
            pass
        flush()
        emit('D', status)
    flush()
    os._exit(0)


_hangar_driver()
