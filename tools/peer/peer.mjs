// The peer in `make bench`: npm redis-semaphore (with ioredis), timed on the same
// redis-server and the same workloads as examples/uncontended.rs and examples/load.rs.
//
//   node peer.mjs uncontended --url redis://127.0.0.1:PORT [--cycles 3000 --warmup 300 --rounds 5 --count 100]
//   node peer.mjs load --url redis://127.0.0.1:PORT [--workers 16 --permits 4 --hold-ms 5 --secs 3]
//   node peer.mjs herd --url redis://127.0.0.1:PORT --name NAME [--first 0] --workers 100 --permits 4 --hold-ms 20 --secs 13
//
// The first two print one JSON line, with the field names of the Rust side. `herd` is run
// by examples/load.rs --herd, which computes every figure itself: it speaks load.rs's
// child protocol (below).
//
// The library is used as its README shows and a user would: `new Semaphore(client, key,
// limit)` per use (a fresh identifier each time), `await sem.acquire()` (here
// `tryAcquire()`, the same loop without the throw at the timeout), `await sem.release()`,
// with the library's defaults: lockTimeout 10 s, refreshInterval 8 s, retryInterval 10 ms
// (a waiter tries again every 10 ms), and ioredis's defaults (ioredis 6 speaks RESP3).
// The only option set is acquireTimeout in `load`: the time left in the run, so that the
// last acquire of each worker ends with the run, as load.rs's acquire_timeout does.
//
// uncontended: one client (one ioredis connection), timed one operation at a time, cases
// interleaved in rounds after a warm-up: PING on that connection, and acquire + awaited
// release (limit 3). Then acquires alone and releases alone are counted one by one.
//
// load: W workers, each with its own ioredis connection (a connection each, as load.rs's
// workers each have their own handle), all in this one process, looping acquire, hold,
// release for --secs. Holders are counted in and out in-process (every worker is in this
// process, so a plain counter sees every holder); more than --permits at once exits 3.
// With no hold, a holder yields one turn of the event loop between counting in and out.
//
// herd: W lines numbered from --first (load.rs starts several of these processes on one
// semaphore), each its own ioredis connection (connected 100 at a time), looping acquire,
// hold, release for --secs, as in `load`. It prints READY once
// connected (and one warm-up cycle done), starts on GO from stdin, and prints after the
// run, with times in µs since the epoch: `C line start grant let_go release 0` per cycle
// (let_go: when release was called), `E error` per error, `SPAN began ended`, `DONE`.
// The parent reads the server's counters itself.
//
// Both count, on a connection of their own, INFO commandstats (every `calls=`, which
// includes the commands scripts run) and INFO cpu (used_cpu_user + used_cpu_sys) before
// and after, less the snapshot's own INFO, so nothing else should use the server meanwhile.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Redis } = require('ioredis');
const { Semaphore } = require('redis-semaphore');
const versions = {
  ioredis: require('ioredis/package.json').version,
  'redis-semaphore': require('redis-semaphore/package.json').version,
};

function parseArgs(argv) {
  const o = {
    mode: argv[0],
    url: null,
    name: `peer-${process.pid}-${Date.now()}`,
    cycles: 3000,
    warmup: 300,
    rounds: 5,
    count: 100,
    workers: 16,
    permits: 4,
    holdMs: 5,
    secs: 3,
    first: 0,
  };
  const nums = {
    '--cycles': 'cycles',
    '--warmup': 'warmup',
    '--rounds': 'rounds',
    '--count': 'count',
    '--workers': 'workers',
    '--permits': 'permits',
    '--hold-ms': 'holdMs',
    '--secs': 'secs',
    '--first': 'first',
  };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--url') o.url = v;
    else if (a === '--name') o.name = v;
    else if (nums[a]) {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${a} wants a number, not ${v}`);
      o[nums[a]] = n;
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!['uncontended', 'load', 'herd'].includes(o.mode))
    throw new Error('mode: uncontended, load or herd');
  if (!o.url) throw new Error('--url is required');
  if (o.workers < 1 || o.permits < 1 || o.cycles < 1 || o.rounds < 1 || o.secs <= 0)
    throw new Error('--workers, --permits, --cycles, --rounds must be at least 1, --secs above 0');
  return o;
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function connect(url) {
  const client = new Redis(url, { lazyConnect: true });
  await client.connect(); // resolves once ready (ioredis's ready check done)
  return client;
}

// Every command the server has served, the script calls (EVALSHA, EVAL) among them, and
// its CPU time in µs.
async function snapshot(con) {
  const info = await con.info('commandstats', 'cpu');
  let commands = 0;
  let scripts = 0;
  let cpuUs = 0;
  for (const raw of String(info).split('\n')) {
    const line = raw.trim();
    if (line.startsWith('cmdstat_')) {
      const m = /calls=(\d+)/.exec(line);
      if (!m) throw new Error(`cannot read ${line}`);
      commands += Number(m[1]);
      if (/^cmdstat_(evalsha|eval):/.test(line)) scripts += Number(m[1]);
    } else if (line.startsWith('used_cpu_user:') || line.startsWith('used_cpu_sys:')) {
      cpuUs += Number(line.split(':')[1]) * 1e6;
    }
  }
  return { commands, scripts, cpuUs };
}

// What the server did since `before`, less the INFO that took `before`.
async function since(con, before) {
  const now = await snapshot(con);
  return {
    commands: now.commands - before.commands - 1,
    scripts: now.scripts - before.scripts,
    cpuUs: now.cpuUs - before.cpuUs,
  };
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const rank = Math.min(Math.max(Math.ceil(q * sorted.length), 1), sorted.length);
  return sorted[rank - 1];
}
const fixed = (v, d) => (v === null || !Number.isFinite(v) ? null : Number(v.toFixed(d)));

async function uncontended(o) {
  const client = await connect(o.url);
  const stats = await connect(o.url);
  const key = `${o.name}:ar`;
  const cases = {
    ping: async () => {
      await client.ping();
    },
    acquire_release: async () => {
      const sem = new Semaphore(client, key, 3);
      await sem.acquire();
      await sem.release();
    },
  };
  const samples = {};
  for (const [label, run] of Object.entries(cases)) {
    samples[label] = [];
    for (let i = 0; i < o.warmup; i++) await run();
  }
  let counted = { commands: 0, cpuUs: 0 };
  for (let round = 0; round < o.rounds; round++) {
    const n = Math.floor(o.cycles / o.rounds) + (round < o.cycles % o.rounds ? 1 : 0);
    for (const [label, run] of Object.entries(cases)) {
      const before = label === 'acquire_release' ? await snapshot(stats) : null;
      for (let i = 0; i < n; i++) {
        const t = process.hrtime.bigint();
        await run();
        samples[label].push(Number(process.hrtime.bigint() - t) / 1000);
      }
      if (before) {
        const d = await since(stats, before);
        counted.commands += d.commands;
        counted.cpuUs += d.cpuUs;
      }
    }
  }
  let acquires = 0;
  let releases = 0;
  for (let i = 0; i < o.count; i++) {
    const sem = new Semaphore(client, `${o.name}:count`, 3);
    const s0 = await snapshot(stats);
    await sem.acquire();
    acquires += (await since(stats, s0)).commands;
    const s1 = await snapshot(stats);
    await sem.release();
    releases += (await since(stats, s1)).commands;
  }
  const out = { side: 'npm', versions, mode: 'uncontended', cycles: o.cycles, rounds: o.rounds };
  for (const [label, s] of Object.entries(samples)) {
    s.sort((a, b) => a - b);
    out[`${label}_p50_us`] = fixed(quantile(s, 0.5), 1);
    out[`${label}_p99_us`] = fixed(quantile(s, 0.99), 1);
  }
  out.commands_per_cycle = fixed(counted.commands / o.cycles, 2);
  out.server_cpu_us_per_cycle = fixed(counted.cpuUs / o.cycles, 1);
  out.commands_per_acquire = fixed(acquires / o.count, 2);
  out.commands_per_release = fixed(releases / o.count, 2);
  client.disconnect();
  stats.disconnect();
  return { out, code: 0 };
}

async function load(o) {
  const clients = [];
  for (let i = 0; i < o.workers; i++) clients.push(await connect(o.url));
  const stats = await connect(o.url);
  const key = `${o.name}:load`;
  let inside = 0;
  let maxInside = 0;
  const errors = [];

  // One warm-up cycle, so the script is cached (EVALSHA, NOSCRIPT, EVAL) before counting.
  const warm = new Semaphore(clients[0], key, o.permits);
  await warm.acquire();
  await warm.release();

  const cpu0 = process.cpuUsage();
  const before = await snapshot(stats);
  const began = nowUs();
  const stop = Date.now() + o.secs * 1000;
  const worker = async (index) => {
    const cycles = [];
    try {
      for (let left = stop - Date.now(); left > 0; left = stop - Date.now()) {
        const start = nowUs();
        const sem = new Semaphore(clients[index], key, o.permits, { acquireTimeout: left });
        if (!(await sem.tryAcquire())) break;
        const grant = nowUs();
        inside += 1;
        if (inside > maxInside) maxInside = inside;
        // No hold: one turn of the event loop, so that other holders can be seen inside
        // (load.rs yields to its scheduler there).
        if (o.holdMs > 0) await sleep(o.holdMs);
        else await new Promise((r) => setImmediate(r));
        inside -= 1;
        await sem.release();
        cycles.push({ start, grant, release: nowUs() });
      }
    } catch (e) {
      errors.push(`worker ${index}: ${e && e.message ? e.message : e}`);
    }
    return cycles;
  };
  const perWorker = await Promise.all(clients.map((_, i) => worker(i)));
  const ended = nowUs();
  await sleep(50); // as load.rs waits before its last count
  const d = await since(stats, before);
  const cpu = process.cpuUsage(cpu0);

  const all = perWorker.flat();
  const waits = all.map((c) => c.grant - c.start).sort((a, b) => a - b);
  const turns = perWorker.map((c) => c.length);
  const tmin = Math.min(...turns);
  const tmax = Math.max(...turns);
  const secs = (ended - began) / 1e6;
  const n = all.length;
  const ms = (v) => (v === null ? null : fixed(v / 1000, 3));
  const out = {
    side: 'npm',
    versions,
    mode: 'load',
    masters: 1,
    workers: o.workers,
    processes: 1,
    permits: o.permits,
    hold_ms: o.holdMs,
    secs: fixed(secs, 3),
    retry_interval_ms: 10,
    cycles: n,
    cycles_per_sec: fixed(n / secs, 1),
    wait_p50_ms: ms(quantile(waits, 0.5)),
    wait_p99_ms: ms(quantile(waits, 0.99)),
    wait_max_ms: ms(quantile(waits, 1)),
    commands: d.commands,
    commands_per_cycle: n ? fixed(d.commands / n, 2) : null,
    // Every acquire attempt is one EVALSHA (a release is a ZREM): attempts per grant.
    script_calls: d.scripts,
    calls_per_acquire: n ? fixed(d.scripts / n, 3) : null,
    server_cpu_us_per_cycle: n ? fixed(d.cpuUs / n, 1) : null,
    client_cpu_us_per_cycle: n ? fixed((cpu.user + cpu.system) / n, 1) : null,
    turns_min: tmin,
    turns_max: tmax,
    turns_ratio: tmin > 0 ? fixed(tmax / tmin, 3) : null,
    max_inside: maxInside,
    observer: 'local',
    errors: errors.length,
  };
  for (const c of clients) c.disconnect();
  stats.disconnect();
  for (const e of errors) console.error(`peer: error: ${e}`);
  if (maxInside > o.permits) {
    console.error(`peer: OVER-ADMISSION: ${maxInside} holders of ${o.permits} permits`);
    return { out, code: 3 };
  }
  return { out, code: errors.length ? 1 : 0 };
}

// Microseconds since the epoch, the clock load.rs's processes use.
const epochUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

// One line of stdin (null when it closes first).
function readLine() {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) done(buf.slice(0, i).trim());
    };
    const onEnd = () => done(null);
    const done = (v) => {
      process.stdin.off('data', onData).off('end', onEnd);
      process.stdin.pause();
      resolve(v);
    };
    process.stdin.setEncoding('utf8').on('data', onData).on('end', onEnd);
  });
}

async function herd(o) {
  const clients = [];
  for (let i = 0; i < o.workers; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(i + 100, o.workers); j++) batch.push(connect(o.url));
    clients.push(...(await Promise.all(batch)));
  }
  const key = `${o.name}:herd`;
  const warm = new Semaphore(clients[0], key, o.permits);
  await warm.acquire();
  await warm.release();
  process.stdout.write('READY\n');
  const go = await readLine();
  if (go !== 'GO') throw new Error(`expected GO from the parent, got ${go}`);

  const errors = [];
  const began = epochUs();
  const stop = Date.now() + o.secs * 1000;
  const worker = async (index) => {
    const cycles = [];
    try {
      for (let left = stop - Date.now(); left > 0; left = stop - Date.now()) {
        const start = epochUs();
        const sem = new Semaphore(clients[index], key, o.permits, { acquireTimeout: left });
        if (!(await sem.tryAcquire())) break;
        const grant = epochUs();
        if (o.holdMs > 0) await sleep(o.holdMs);
        const letGo = epochUs();
        await sem.release();
        cycles.push(`C ${o.first + index} ${start} ${grant} ${letGo} ${epochUs()} 0`);
      }
    } catch (e) {
      errors.push(`line ${o.first + index}: ${e && e.message ? e.message : e}`);
    }
    return cycles;
  };
  const perLine = await Promise.all(clients.map((_, i) => worker(i)));
  const ended = epochUs();
  for (const c of clients) c.disconnect();
  const out = perLine.flat();
  for (const e of errors) out.push(`E ${e.replace(/\n/g, ' ')}`);
  out.push(`SPAN ${began} ${ended}`, 'DONE', '');
  await new Promise((resolve) => process.stdout.write(out.join('\n'), resolve));
  return 0;
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`peer: ${e.message}`);
    return 2;
  }
  if (o.mode === 'herd') return herd(o);
  const { out, code } = o.mode === 'uncontended' ? await uncontended(o) : await load(o);
  console.log(JSON.stringify(out));
  return code;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`peer: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
