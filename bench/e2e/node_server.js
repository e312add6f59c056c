#!/usr/bin/env node
// The line protocol of docs/protocol.md on Node.js (the machine's `node`),
// written the way the Node documentation teaches:
// - net.createServer({allowHalfOpen: true}); each connection splits its
//   bytes into lines (at most 4096 bytes before the "\n") and chains each
//   answer on a promise after the one before, so answers keep request order;
//   after the client's end, the answers asked for are sent, then end();
// - factorial: a worker_threads Worker per request computing N! with BigInt
//   (a product tree, since a plain loop of 1,000,000 BigInt multiplications
//   takes minutes) and toString(), posting the digits back;
// - walk: an async depth-first walk with fs.promises.opendir (names as
//   Buffers, so any byte survives), writing each directory's lines as it is
//   read and awaiting 'drain' when write() asks for it;
// - stats: a 10 ms setTimeout heartbeat measuring its own lateness.
// setNoDelay(true) on every connection.
//
//   node bench/e2e/node_server.js [--listen 127.0.0.1:PORT]
'use strict';

const fs = require('fs');
const net = require('net');
const { performance } = require('perf_hooks');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const MAX_LINE = 4096;
const MAX_N = 100000000;
const BEAT_MS = 10;

// ---- the factorial, on a worker thread ----

function product(lo, hi) { // lo * (lo+1) * ... * hi, as a BigInt
  if (hi - lo < 32) {
    let r = 1n;
    for (let i = lo; i <= hi; i++) r *= BigInt(i);
    return r;
  }
  const mid = Math.floor((lo + hi) / 2);
  return product(lo, mid) * product(mid + 1, hi);
}

function factorialWorker() {
  const n = workerData;
  parentPort.postMessage(n < 2 ? '1' : product(2, n).toString());
}

function factorial(n) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(__filename, { workerData: n });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

// ---- stats ----

const lagSamples = new Float64Array(65536); // ms, a ring
let lagCount = 0;
let beatDue = 0;

function beat() {
  const now = performance.now();
  lagSamples[lagCount++ % lagSamples.length] = Math.max(0, now - beatDue);
  beatDue = now + BEAT_MS;
  setTimeout(beat, BEAT_MS);
}

function statsLine() {
  const n = Math.min(lagCount, lagSamples.length);
  const v = Float64Array.from(lagSamples.subarray(0, n)).sort();
  const rank = (p) => (n ? Math.floor(v[Math.ceil((n * p) / 100) - 1] * 1000) : 0);
  return `lag p50_us=${rank(50)} p99_us=${rank(99)} max_us=${n ? Math.floor(v[n - 1] * 1000) : 0}\n`;
}

// ---- walk ----

const NL = Buffer.from('\n');
const SLASH = Buffer.from('/');

function escape(path) { // "\n" -> "\\n", "\\" -> "\\\\"
  if (path.indexOf(10) < 0 && path.indexOf(92) < 0) return path;
  const out = [];
  for (const b of path) {
    if (b === 10) out.push(92, 110);
    else if (b === 92) out.push(92, 92);
    else out.push(b);
  }
  return Buffer.from(out);
}

function join(dir, name) {
  return dir[dir.length - 1] === 47 ? Buffer.concat([dir, name]) : Buffer.concat([dir, SLASH, name]);
}

function errorLine(path, err) {
  const why = err.code === 'ENOTDIR' ? 'Not a directory' : err.code === 'ENOENT'
    ? 'No such file or directory' : err.message;
  return Buffer.concat([Buffer.from('error: walk: '), escape(path), Buffer.from(`: ${why}\n`)]);
}

// Writes, and waits for 'drain' when the socket asks; false once it closed.
function put(sock, data) {
  if (sock.destroyed) return Promise.resolve(false);
  if (sock.write(data)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve(!sock.destroyed);
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

async function walk(sock, top) {
  let st;
  try {
    st = await fs.promises.lstat(top);
    if (!st.isDirectory()) throw Object.assign(new Error('Not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    return put(sock, errorLine(top, err));
  }
  if (!(await put(sock, Buffer.concat([escape(top), NL])))) return false;
  const stack = [top];
  while (stack.length) {
    const dir = stack.pop();
    const parts = [];
    try {
      for await (const ent of await fs.promises.opendir(dir, { encoding: 'buffer' })) {
        const path = join(dir, ent.name);
        parts.push(escape(path), NL);
        if (ent.isDirectory()) stack.push(path);
      }
    } catch (err) {
      return put(sock, errorLine(dir, err));
    }
    if (!(await put(sock, Buffer.concat(parts)))) return false;
  }
  return put(sock, NL);
}

// ---- connections ----

async function answer(sock, line) {
  if (sock.destroyed) return;
  const text = line.toString('latin1');
  if (text === 'ping') return put(sock, 'pong\n');
  if (text === 'stats') return put(sock, statsLine());
  if (text.startsWith('factorial ')) {
    const arg = text.slice(10);
    if (!/^[0-9]{1,12}$/.test(arg) || Number(arg) > MAX_N)
      return put(sock, 'error: factorial: N must be 0 to 100000000\n');
    return put(sock, (await factorial(Number(arg))) + '\n');
  }
  if (text.startsWith('walk ') && line.length > 5) return walk(sock, line.subarray(5));
  return put(sock, 'error: unknown request\n');
}

function onConnection(sock) {
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let chain = Promise.resolve();
  let tooLong = false;
  const then = (fn) => {
    chain = chain.then(fn).catch((err) => put(sock, `error: ${err.message}\n`));
  };
  sock.on('data', (chunk) => {
    if (tooLong) return;
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let nl;
    while ((nl = buf.indexOf(10)) >= 0 && nl <= MAX_LINE) {
      let line = buf.subarray(0, nl);
      buf = buf.subarray(nl + 1);
      if (line.length && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
      then(() => answer(sock, line));
    }
    if (buf.length > MAX_LINE) {
      tooLong = true;
      then(() => sock.end('error: line too long\n'));
    }
  });
  sock.on('end', () => then(() => sock.end()));
  sock.on('error', () => {}); // a reset costs this connection only
}

function main() {
  let listen = '127.0.0.1:0';
  const args = process.argv.slice(2);
  if (args.length === 2 && args[0] === '--listen') listen = args[1];
  else if (args.length) {
    console.error('usage: node node_server.js [--listen HOST:PORT]');
    process.exit(2);
  }
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon);
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  server.listen(Number(listen.slice(colon + 1)), host, () => {
    console.log(`listening on ${host}:${server.address().port}`);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
  beatDue = performance.now() + BEAT_MS;
  setTimeout(beat, BEAT_MS);
}

if (isMainThread) main();
else factorialWorker();
