// A V8 CPU profile of a Worker under `wrangler dev`, through its inspector, while something else sends the load:
//   node e2e/bench-floor/cpu/profile.mjs ws://127.0.0.1:PORT/ws SECONDS
// prints where the isolate's time went, by function (self time), heaviest first (TOP=40 rows). Run it beside
// `BENCH_CPU_ONLY=<row> scripts/bench cpu`, which prints the inspector address of our Worker's wrangler dev.
// Names are wasm function names: profile a build without wasm-opt (scripts/build-worker without OPTIMIZE), whose
// name section is kept.
const [wsUrl, seconds = '20'] = process.argv.slice(2);
if (!wsUrl) {
  console.error('usage: profile.mjs ws://127.0.0.1:PORT/ws [SECONDS]');
  process.exit(2);
}
// wrangler's inspector proxy (`/ws`) wants an Origin; Node's WebSocket (undici) lets us send one. workerd's own
// inspector (`/core:user:<worker>`, every Worker of the stack, e.g. the chat Worker's objects) takes none.
const proxied = new URL(wsUrl).pathname === '/ws';
const ws = proxied
  ? new WebSocket(wsUrl, { headers: { origin: new URL(wsUrl).origin.replace('ws:', 'http:') } })
  : new WebSocket(wsUrl);
let next = 0;
const pending = new Map();
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.id && pending.has(m.id)) {
    pending.get(m.id)(m);
    pending.delete(m.id);
  }
};
const send = (method, params = {}) =>
  new Promise((resolve) => {
    next += 1;
    pending.set(next, resolve);
    ws.send(JSON.stringify({ id: next, method, params }));
  });
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = () => reject(new Error(`cannot open ${wsUrl}`));
});
await send('Runtime.enable');
await send('Profiler.enable');
await send('Profiler.setSamplingInterval', { interval: 100 });
await send('Profiler.start');
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const { profile } = (await send('Profiler.stop')).result;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  const { functionName, url, lineNumber } = nodes.get(id).callFrame;
  const name = functionName || `(${url.split('/').pop() || 'native'}:${lineNumber})`;
  self.set(name, (self.get(name) || 0) + dt);
  total += dt;
});
const idle = self.get('(idle)') || 0;
const busy = total - idle;
console.log(`${seconds} s sampled; busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms\n`);
console.log('| share of busy | ms | function |\n|---:|---:|---|');
const rows = [...self].filter(([name]) => name !== '(idle)').sort((a, b) => b[1] - a[1]);
for (const [name, t] of rows.slice(0, Number(process.env.TOP || 40))) {
  console.log(`| ${((100 * t) / busy).toFixed(1)}% | ${(t / 1000).toFixed(1)} | ${name.slice(0, 120).replaceAll('|', '\\|')} |`);
}
ws.close();
