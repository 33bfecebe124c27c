import type { MemoryReport } from './memory.ts';

export type Row = {
  scenario: string;
  label: string;
  role: 'ours' | 'floor';
  cpuUs: number;
  rps: number;
  errors: number;
  p99SaturatedMs: number;
  open?: { rate: number; achieved: number; p50Ms: number; p99Ms: number };
};

type Argon = {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
  cores: number;
  cpuUsPerVerify: number;
  verifiesPerSecond: number;
};

const SCENARIOS: Record<string, string> = {
  '0': 'server ceiling',
  '1': '1. client_credentials → ES256 JWT',
  '2': '2. refresh grant with rotation',
  '3': '3. introspection',
  '4': '4. resource API',
  '4r': '4. rejections',
  '5': '5. code + PKCE login (per login)',
  '6': '6. device poll while pending',
  '7': '7. discovery / JWKS',
};

const n = (value: number | undefined, digits = 0): string =>
  value === undefined || !Number.isFinite(value)
    ? '—'
    : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ms = (value: number | undefined): string =>
  value === undefined || !Number.isFinite(value) ? '—' : `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
const bytes = (value: number): string => (Math.abs(value) >= 1024 * 1024 ? `${(value / 1024 / 1024).toFixed(1)} MiB` : `${n(value)} B`);
const verdict = (ratio: number, target: number | undefined): string => (target === undefined ? '' : ratio <= target ? ' ✅' : ' ❌');
const latency = (row: Row | undefined): string => {
  if (!row?.open) return row ? `${ms(row.p99SaturatedMs)} (saturated)` : '—';
  const short = row.open.achieved < row.open.rate * 0.95 ? ` (driver reached ${n(row.open.achieved)}/s of ${n(row.open.rate)}/s)` : '';
  return `${ms(row.open.p99Ms)}${short}`;
};

/** The results page: machine, method summary, comparison table, details, memory. */
export function renderReport(input: {
  machine: { nproc: number; cpu: string; node: string; kernel: string; memGiB: number };
  quick: boolean;
  settings: { rounds: number; seconds: number; openSeconds: number; connections: number; refreshPool: number; logins: number };
  rows: Row[];
  argon: Argon | undefined;
  signing?: Record<string, { signUs: number; verifyUs: number }>;
  memory: MemoryReport | undefined;
  cacheHeaders: { label: string; path: string; cacheControl: string | null; etag: string | null }[];
  rss: { before: { auth: number; api: number }; after: { auth: number; api: number } };
  cpuProf: boolean;
}): string {
  const { machine, rows, argon, memory } = input;
  const find = (scenario: string, predicate: (r: Row) => boolean) => rows.find((r) => r.scenario === scenario && predicate(r));
  const ours = (scenario: string, label = 'Portcullis') => find(scenario, (r) => r.role === 'ours' && r.label === label);
  const byLabel = (scenario: string, label: string) => find(scenario, (r) => r.label === label);
  const MEM = 'bare oidc-provider, memory';
  const REDIS = 'bare oidc-provider, our Redis adapter';

  type Line = {
    scenario: string;
    ours?: Row | undefined;
    oursCpu?: number;
    floor?: Row | undefined;
    floorCpu?: number;
    floorLabel: string;
    target?: number;
    note?: string;
  };
  const lines: Line[] = [];
  const hello = byLabel('0', 'node:http hello world');
  for (const s of ['1', '2', '3', '6']) {
    const o = ours(s);
    if (!o) continue;
    lines.push({
      scenario: SCENARIOS[s]!,
      ours: o,
      floor: byLabel(s, REDIS),
      floorLabel: 'bare oidc-provider + our Redis adapter',
      ...(s === '6' ? {} : { target: s === '1' ? 1.25 : 1.3 }),
    });
    lines.push({ scenario: SCENARIOS[s]!, ours: o, floor: byLabel(s, MEM), floorLabel: 'bare oidc-provider, memory adapter' });
  }
  const me = ours('4', 'GET /v1/me');
  const koa = byLabel('4', 'Koa + jose.jwtVerify');
  if (me) lines.push({ scenario: `${SCENARIOS['4']!} GET /v1/me`, ours: me, floor: koa, floorLabel: 'Koa + jose.jwtVerify', target: 1.15 });
  const rec = ours('4', 'GET /v1/records/{id} (decrypt)');
  if (rec)
    lines.push({
      scenario: `${SCENARIOS['4']!} GET /v1/records/{id}`,
      ours: rec,
      floor: koa,
      floorLabel: 'Koa + jose.jwtVerify',
      note: 'floor does no Postgres read or decrypt',
    });
  for (const r of rows.filter((x) => x.scenario === '4r')) {
    const accept = r.label.includes('records') ? rec : me;
    lines.push({
      scenario: `${SCENARIOS['4r']!}: ${r.label.replace(/^GET \S+, /, '')}`,
      ours: r,
      floor: accept,
      floorLabel: `acceptance (${accept?.label ?? '?'})`,
      target: 1.0,
    });
  }
  const login = ours('5');
  if (login && argon) {
    lines.push({
      scenario: SCENARIOS['5']!,
      ours: login,
      floorCpu: argon.cpuUsPerVerify,
      floorLabel: `one argon2id verify (m=${argon.memoryCost} KiB, t=${argon.timeCost}, p=${argon.parallelism})`,
      target: 1.15,
    });
    const floorLogin = byLabel('5', REDIS);
    if (floorLogin)
      lines.push({
        scenario: '5. login minus argon2',
        ours: login,
        oursCpu: login.cpuUs - argon.cpuUsPerVerify,
        floor: floorLogin,
        floorLabel: 'same flow on bare oidc-provider + Redis',
        target: 1.5,
      });
  }
  for (const r of rows.filter((x) => x.scenario === '7' && x.role === 'ours')) {
    const floorLabel = r.label.replace('Portcullis', MEM);
    lines.push({
      scenario: `${SCENARIOS['7']!} ${r.label.replace('Portcullis ', '')}`,
      ours: r,
      floor: byLabel('7', floorLabel),
      floorLabel: 'bare oidc-provider',
    });
  }

  const out: string[] = [];
  out.push(`# Portcullis benchmark results`);
  out.push('');
  if (input.quick)
    out.push('> **Smoke run (`--quick`)**: 1 round, short durations, small pools. Not a measurement; see bench/README.md.', '');
  out.push(
    `Machine: ${machine.nproc} cores, ${machine.cpu}, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}. ` +
      `Taken ${new Date().toISOString().slice(0, 16)}Z.`,
  );
  out.push('');
  out.push(
    `Servers pinned to core 1, load generator on core 0; ${input.settings.rounds} interleaved round(s) of ${input.settings.seconds} s (wrk, ${input.settings.connections} connections) ` +
      `after a warm-up, medians shown. CPU = server user+system CPU-µs per request from /proc/<pid>/stat (the primary figure); ` +
      `req/s is per server core at saturation; p99 is open-loop at 50% of that rate (${input.settings.openSeconds} s). Ratio = Portcullis CPU ÷ floor CPU.` +
      (input.cpuProf ? ' **Servers ran with --cpu-prof: figures include profiler overhead.**' : ''),
  );
  out.push('');
  out.push(
    '| scenario | Portcullis CPU-µs/req (req/s) | floor | floor CPU-µs/req (req/s) | ratio | p99 @50% ours / floor | errors ours / floor |',
  );
  out.push('|---|---|---|---|---|---|---|');
  if (hello)
    out.push(
      `| server ceiling | — | node:http hello world | ${n(hello.cpuUs)} (${n(hello.rps)}) | — | — / ${latency(hello)} | — / ${hello.errors} |`,
    );
  for (const l of lines) {
    const oCpu = l.oursCpu ?? l.ours?.cpuUs ?? Number.NaN;
    const fCpu = l.floorCpu ?? l.floor?.cpuUs ?? Number.NaN;
    const ratio = oCpu / fCpu;
    const target = l.target === undefined ? '' : ` (≤ ${l.target}×)`;
    out.push(
      `| ${l.scenario} | ${n(oCpu)} (${n(l.ours?.rps)}) | ${l.floorLabel}${l.note ? ` — ${l.note}` : ''} | ${n(fCpu)}${l.floor ? ` (${n(l.floor.rps)})` : ''} | ${n(ratio, 2)}×${target}${verdict(ratio, l.target)} | ${latency(l.ours)} / ${l.floor ? latency(l.floor) : '—'} | ${l.ours?.errors ?? '—'} / ${l.floor?.errors ?? '—'} |`,
    );
  }
  out.push('');
  const met: string[] = [];
  const missed: string[] = [];
  for (const l of lines) {
    if (l.target === undefined) continue;
    const ratio = (l.oursCpu ?? l.ours?.cpuUs ?? Number.NaN) / (l.floorCpu ?? l.floor?.cpuUs ?? Number.NaN);
    (ratio <= l.target ? met : missed).push(`${l.scenario} ${n(ratio, 2)}× (≤ ${l.target}×)`);
  }
  for (const r of rows.filter((x) => x.role === 'ours' && ['1', '2', '3', '4'].includes(x.scenario) && x.open)) {
    const p99 = r.open?.p99Ms ?? Number.NaN;
    (p99 <= 20 ? met : missed).push(
      `p99 at 50% load, ${SCENARIOS[r.scenario] ?? r.scenario}${r.label === 'Portcullis' ? '' : ` ${r.label}`}: ${ms(p99)} (≤ 20 ms)`,
    );
  }
  const errors = rows.reduce((sum, r) => sum + r.errors, 0);
  (errors === 0 ? met : missed).push(`errors: ${errors} (must be 0)`);
  out.push(`**Targets met:** ${met.join('; ') || 'none'}.`, '');
  out.push(`**Targets missed:** ${missed.join('; ') || 'none'}.`, '');
  if (argon) {
    out.push(
      `argon2id floor (all ${argon.cores} cores): ${n(argon.verifiesPerSecond, 1)} verifies/s; one verify ${n(argon.cpuUsPerVerify)} CPU-µs.`,
    );
    if (login)
      out.push(
        `Scenario 5: ${n(login.rps, 1)} logins/s on one core; of ${n(login.cpuUs)} CPU-µs per login, argon2 is ${n(argon.cpuUsPerVerify)} (${n((100 * argon.cpuUsPerVerify) / login.cpuUs)}%), the rest ${n(login.cpuUs - argon.cpuUsPerVerify)}.`,
      );
    out.push('');
  }

  if (input.signing) {
    const entries = Object.entries(input.signing);
    out.push(
      `JWT cost with jose on the server core (CPU-µs per sign / verify): ${entries.map(([alg, r]) => `${alg} ${n(r.signUs)} / ${n(r.verifyUs)}`).join('; ')}.`,
      '',
    );
  }
  out.push('## Every subject');
  out.push('');
  out.push('| scenario | subject | CPU-µs/req | req/s | p99 saturated | open loop rate | p50 / p99 open loop | errors |');
  out.push('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    out.push(
      `| ${r.scenario} | ${r.label} | ${n(r.cpuUs)} | ${n(r.rps)} | ${ms(r.p99SaturatedMs)} | ${r.open ? `${n(r.open.rate)}/s (got ${n(r.open.achieved)})` : '—'} | ${r.open ? `${ms(r.open.p50Ms)} / ${ms(r.open.p99Ms)}` : '—'} | ${r.errors} |`,
    );
  }
  out.push('');
  if (input.cacheHeaders.length > 0) {
    out.push('Cache headers (scenario 7):', '');
    for (const c of input.cacheHeaders)
      out.push(`- ${c.label} ${c.path}: Cache-Control \`${c.cacheControl ?? '(none)'}\`, ETag ${c.etag ? 'yes' : 'no'}`);
    out.push('');
  }
  out.push(
    `Server RSS across the scenarios: auth ${bytes(input.rss.before.auth)} → ${bytes(input.rss.after.auth)}, api ${bytes(input.rss.before.api)} → ${bytes(input.rss.after.api)}.`,
  );
  out.push('');
  if (memory) {
    out.push('## Memory');
    out.push('');
    out.push('Redis bytes per key (MEMORY USAGE) and JSON payload bytes, averaged per model, as written during the run:');
    out.push('');
    out.push('| model | Portcullis payload B | Portcullis Redis B/key | bare oidc-provider payload B | bare Redis B/key |');
    out.push('|---|---|---|---|---|');
    const models = [...new Set([...memory.ours, ...memory.floor].map((m) => m.model))].sort();
    for (const model of models) {
      const o = memory.ours.find((m) => m.model === model);
      const f = memory.floor.find((m) => m.model === model);
      out.push(
        `| ${model} | ${o ? n(o.payloadBytes) : '—'} | ${o ? n(o.memoryUsage) : '—'} | ${f ? n(f.payloadBytes) : '—'} | ${f ? n(f.memoryUsage) : '—'} |`,
      );
    }
    out.push('');
    const ratio = memory.perSet.ours / memory.perSet.floor;
    out.push(
      `The \`grant\` rows are the per-grant token index sets (skewed by grants holding many tokens); a fresh grant's index takes ${n(memory.perSet.grantIndex)} B.`,
    );
    out.push(
      `Session + grant + refresh token + uid pointer + grant index: Portcullis ${n(memory.perSet.ours)} B, bare oidc-provider ${n(memory.perSet.floor)} B: ${n(ratio, 2)}× (target ≤ 1.5×)${verdict(ratio, 1.5)}.`,
    );
    out.push(
      `Per 100,000 active grant sets: ${bytes(memory.memoryUsagePer100k)} by MEMORY USAGE; Redis used_memory grew ${bytes(memory.usedMemoryPer100k)} per 100k over ${n(memory.grants)} cloned sets (used_memory is server-wide: noisy when other clients write).`,
    );
    out.push('');
    out.push('Cost growth with stored state (Portcullis, scenarios 1 and 3 rerun once at each level):');
    out.push('');
    out.push('| stored grant sets | Redis used_memory Δ | auth RSS | results |');
    out.push('|---|---|---|---|');
    for (const g of memory.growth) {
      const results = g.results
        .map((r) => `S${r.scenario}: ${n(r.cpuUs)} µs, ${n(r.rps)}/s, p99 sat. ${ms(r.p99Ms)}, errors ${r.errors}`)
        .join('; ');
      out.push(`| ${n(g.stored)} | ${bytes(g.usedMemoryDelta)} | ${bytes(g.authRss)} | ${results || '—'} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** The README with its Benchmarks section (between the bench markers) replaced by the report's summary; undefined without markers. */
export function withBenchSection(readme: string, report: string): string | undefined {
  const startMarker = '<!-- bench:start -->';
  const start = readme.indexOf(startMarker);
  const end = readme.indexOf('<!-- bench:end -->');
  if (start === -1 || end < start) return undefined;
  const summary = report.slice(report.indexOf('Machine:'), report.indexOf('## Every subject')).trim();
  const intro =
    'Latest `npm run bench` (method: [bench/README.md](bench/README.md); every subject, memory and growth: [bench/results.md](bench/results.md)).';
  return `${readme.slice(0, start)}${startMarker}\n${intro}\n\n${summary}\n${readme.slice(end)}`;
}
