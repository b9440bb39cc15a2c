/**
 * `node dist/scripts/bench/profile-summary.js <file.cpuprofile> [top]`: where a V8 CPU profile (from
 * `npm run bench -- --cpu-prof <dir>`) spent its time: self time by package or source file of ours, and
 * the top functions by self time and by inclusive time. Plain text; read it next to the benchmark.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** `node_modules/<pkg>`, our own file relative to dist/, or a V8/Node bucket. */
function bucketOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/dist\/(.+)$/.exec(url);
  if (ours) return ours[1]!.replace(/\.js$/, '.ts');
  if (url.startsWith('node:')) return url;
  return url;
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: profile-summary <file.cpuprofile> [top]');
  process.exit(1);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const totalUs = profile.endTime - profile.startTime;
const idleUs = [...self.entries()]
  .filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
  .reduce((a, [, t]) => a + t, 0);
const busyUs = totalUs - idleUs;

const label = (n: ProfileNode) =>
  `${n.callFrame.functionName || '(anonymous)'} ${bucketOf(n.callFrame.url, n.callFrame.functionName)}:${n.callFrame.lineNumber + 1}`;
const selfByBucket = new Map<string, number>();
const selfByFn = new Map<string, number>();
const inclusiveByFn = new Map<string, number>();
const inclusiveByOurFile = new Map<string, number>();
const ours = (b: string) => /^(infra|producers|consumers|contracts|scripts)\//.test(b) || b === 'main.ts';
for (const [id, us] of self) {
  const n = byId.get(id)!;
  if (n.callFrame.functionName === '(idle)') continue;
  const b = bucketOf(n.callFrame.url, n.callFrame.functionName);
  selfByBucket.set(b, (selfByBucket.get(b) ?? 0) + us);
  selfByFn.set(label(n), (selfByFn.get(label(n)) ?? 0) + us);
  // Each function on the stack gets the sample once, however often it recurses.
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const node = byId.get(cur)!;
    const l = label(node);
    const b = bucketOf(node.callFrame.url, node.callFrame.functionName);
    if (ours(b) && !seen.has(b)) {
      seen.add(b);
      inclusiveByOurFile.set(b, (inclusiveByOurFile.get(b) ?? 0) + us);
    }
    if (seen.has(l)) continue;
    seen.add(l);
    inclusiveByFn.set(l, (inclusiveByFn.get(l) ?? 0) + us);
  }
}

const pct = (us: number) => `${((us / busyUs) * 100).toFixed(1).padStart(5)}%`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${ms(v)} ${pct(v)}  ${k}`);
};
console.log(
  `${file}: ${(totalUs / 1e6).toFixed(1)} s profiled, ${(busyUs / 1e6).toFixed(1)} s on the CPU (${((busyUs / totalUs) * 100).toFixed(0)}%); percentages are of CPU time`,
);
print('self time by package / source file', selfByBucket);
print('self time by function', selfByFn);
print(
  'inclusive time by source file of ours (since an await, V8 stacks start at the resumed function)',
  inclusiveByOurFile,
);
print('inclusive time by function', inclusiveByFn);
