// The JavaScript side of hangar-runner's "nodejs" runtime (see README.md, "Interpreter runtimes").
//
// Not a script to run by hand: it is the first code block the runner sends to a new node. The
// runner starts `node -e BOOTSTRAP` (BOOTSTRAP is in runtime_interp.c) with two extra pipes,
// the same protocol as python_driver.py:
//
//   fd 3, runner -> node: code blocks, each a 4-byte big-endian length and UTF-8 source. The
//        first block is this file, which BOOTSTRAP runs as the body of a function of
//        `require`; every later block is one query.
//   fd 4, node -> runner: events, each a type byte, a 4-byte big-endian length and a UTF-8
//        payload: 'R' ready, 'W' waiting for input (the prompt), 'D' done ("ok", "error", or a
//        decimal status).
//
// Queries run as scripts in node's own global context, so `var`, `let`, `const`, functions and
// `require`d modules stay from one query to the next, as in node's REPL. A query's last
// expression, when not undefined, is shown as the REPL shows it (util.inspect); a promise is
// awaited first. `input(prompt)` asks for a line (as Python's input()); process.exit(n) ends
// the query with status n and keeps the interpreter; an uncaught error prints its stack to
// stderr and gives status 1. SIGINT ('X') stops a running script (vm's breakOnSigint) or the
// wait for a promise; between queries it is ignored.
//
// The comment lines of this file are not embedded (Tools/scripts/embed-runner-driver.sh).
const fs = require('fs');
const vm = require('vm');
const util = require('util');

function writeAll(fd, buffer) {
    let done = 0;
    while (done < buffer.length) {
        try {
            done += fs.writeSync(fd, buffer, done);
        } catch (error) {
            if (error.code !== 'EAGAIN') throw error;
        }
    }
}

function emit(kind, text) {
    const data = Buffer.from(String(text), 'utf8').subarray(0, 1 << 20);
    const head = Buffer.alloc(5);
    head.write(kind, 0, 'ascii');
    head.writeUInt32BE(data.length, 1);
    writeAll(4, Buffer.concat([head, data]));
}

// input(prompt): the prompt travels in 'W'; the answer is the line the runner writes to fd 0,
// read synchronously as Python's input() blocks.
let stdinBuffer = Buffer.alloc(0);
function input(prompt = '') {
    emit('W', prompt);
    for (;;) {
        const newline = stdinBuffer.indexOf(10);
        if (newline >= 0) {
            const line = stdinBuffer.subarray(0, newline).toString('utf8');
            stdinBuffer = stdinBuffer.subarray(newline + 1);
            return line;
        }
        const chunk = Buffer.alloc(65536);
        let n;
        try {
            n = fs.readSync(0, chunk, 0, chunk.length, null);
        } catch (error) {
            if (error.code === 'EAGAIN') continue;
            throw error;
        }
        if (n === 0) {
            const rest = stdinBuffer.toString('utf8');
            stdinBuffer = Buffer.alloc(0);
            return rest;
        }
        stdinBuffer = Buffer.concat([stdinBuffer, chunk.subarray(0, n)]);
    }
}

class ExitRequest {
    constructor(code) { this.code = code; }
}

const exit = process.exit.bind(process);
globalThis.require = require;
globalThis.input = input;
process.exit = (code) => { throw new ExitRequest(code === undefined ? (process.exitCode || 0) : code); };

// An error's stack without the frames of vm and of this driver under the query's own.
function show(error) {
    let text = error && error.stack ? error.stack : `Uncaught ${util.inspect(error)}`;
    const lines = text.split('\n');
    const inner = lines.findIndex((line) => /^\s+at (new Script|Script\.runInThisContext|sigintHandlersWrap) /.test(line));
    if (inner >= 0) text = lines.slice(0, inner).join('\n');
    process.stderr.write(text.endsWith('\n') ? text : text + '\n');
}

// An interrupt while a query awaits its promise rejects the wait; one between queries is dropped.
let interruptWait = null;
process.on('SIGINT', () => {
    if (interruptWait) interruptWait(new Error('Interrupted'));
});
// Errors thrown later by a query's callbacks (timers, events) are shown; the interpreter stays.
process.on('uncaughtException', (error) => show(error));
process.on('unhandledRejection', (error) => show(error));

let count = 0;
async function run(source) {
    count += 1;
    let script;
    try {
        script = new vm.Script(source, { filename: `<query-${count}>` });
    } catch (error) {
        show(error);
        return 'error';
    }
    try {
        let value = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
        if (value && typeof value.then === 'function') {
            value = await Promise.race([value, new Promise((_, reject) => { interruptWait = reject; })]);
        }
        if (value !== undefined) process.stdout.write(util.inspect(value) + '\n');
        return 'ok';
    } catch (error) {
        if (error instanceof ExitRequest) {
            const status = Number.isInteger(Number(error.code)) ? Number(error.code) & 0xff : 1;
            return status === 0 ? 'ok' : String(status);
        }
        show(error);
        return 'error';
    } finally {
        interruptWait = null;
    }
}

let pending = Buffer.alloc(0);
const queue = [];
let busy = false;
async function pump() {
    if (busy) return;
    busy = true;
    while (queue.length > 0) {
        let status = 'error';
        try {
            status = await run(queue.shift());
        } catch (error) {
            show(error);
        }
        emit('D', status);
    }
    busy = false;
}

const blocks = fs.createReadStream(null, { fd: 3, highWaterMark: 65536 });
blocks.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
        const length = pending.readUInt32BE(0);
        if (pending.length < 4 + length) break;
        queue.push(pending.subarray(4, 4 + length).toString('utf8'));
        pending = pending.subarray(4 + length);
    }
    pump();
});
blocks.on('end', () => exit(0));
blocks.on('error', () => exit(0));
emit('R', '');
