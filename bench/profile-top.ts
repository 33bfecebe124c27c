/**
 * Summarises V8 .cpuprofile files (from `npm run bench -- --cpu-prof`): self time by function
 * and by package/area, so the report can say what dominates. Usage:
 *   node bench/profile-top.ts bench/out/CPU.*.cpuprofile [--top 25] [--skip 10]
 * --skip leaves out the first seconds of the profile (start-up: module loading, compilation).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] };
type Profile = { nodes: Node[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] };

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '25' }, skip: { type: 'string', default: '0' } },
  allowPositionals: true,
});
const top = Number(values.top);
const skipMicros = Number(values.skip) * 1e6;

function area(url: string): string {
  if (!url) return '(native/V8)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm?.[1]) return nm[1];
  if (url.startsWith('node:')) return url.split('/')[0] ?? url;
  const ours = /\/(src\/[^/]+(?:\/[^/]+)?)/.exec(url);
  return ours?.[1] ?? url;
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let elapsed = 0;
  for (let i = 0; i < samples.length; i++) {
    elapsed += deltas[i] ?? 0;
    if (elapsed < skipMicros) continue;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
  }
  let total = 0;
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, micros] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    total += micros;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
    byArea.set(area(url), (byArea.get(area(url)) ?? 0) + micros);
  }
  // Inclusive time of our own functions (src/): self time of the subtree below each frame.
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inclusive = new Map<string, number>();
  for (const [id, micros] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (!frame || frame.functionName === '(idle)' || !/\/src\//.test(frame.url) || frame.url.includes('node_modules')) continue;
      const key = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^file:\/\/.*?\/src\//, 'src/')}:${frame.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + micros);
    }
  }
  const pct = (v: number) => `${((100 * v) / total).toFixed(1).padStart(5)}%`;
  process.stdout.write(`\n## ${file}: ${(total / 1e6).toFixed(2)} s busy\n\nby area:\n`);
  for (const [k, v] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, 15)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
  process.stdout.write('\nby function (self):\n');
  for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
  process.stdout.write('\nour code (src/), inclusive:\n');
  for (const [k, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
}
