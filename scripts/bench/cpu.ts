import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * Where the machine's CPU went during a phase, read from /proc (Linux only; elsewhere every figure is
 * empty): CPU seconds per group of processes (the pipeline, the benchmark driver, MariaDB, RabbitMQ,
 * Dovecot) plus the machine's busy and iowait time. "other" is machine busy time no group accounts for,
 * which includes processes that came and went during the phase (other people's tests, say).
 */

/** CPU time at one instant. */
export interface CpuSnapshot {
  at: number;
  /** Clock ticks per group. */
  groups: Map<string, number>;
  /** Machine-wide ticks: busy (all but idle and iowait), iowait, total. */
  busy: number;
  iowait: number;
  total: number;
}

/** CPU use between two snapshots. */
export interface CpuUsage {
  wallSeconds: number;
  /** Cores' worth of time each group used on average (1.0 = one core busy all the time). */
  cores: Record<string, number>;
  /** Cores busy on average, machine-wide. */
  machineBusyCores: number;
  /** Cores waiting on I/O on average. */
  iowaitCores: number;
  /** Cores the machine has. */
  machineCores: number;
}

let ticksPerSecond: number | null = null;
function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

const DOVECOT = new Set(['dovecot', 'imap', 'imap-login', 'auth', 'config', 'log', 'anvil', 'stats', 'dict']);

/** The group a process belongs to, by pid (the pipeline, the driver) or by its command name. */
function groupOf(pid: number, comm: string, named: ReadonlyMap<number, string>): string {
  const byPid = named.get(pid);
  if (byPid) return byPid;
  if (comm === 'mariadbd' || comm === 'mysqld') return 'mariadb';
  if (comm === 'beam.smp' || comm === 'erl_child_setup' || comm === 'inet_gethost' || comm === 'epmd')
    return 'rabbitmq';
  if (DOVECOT.has(comm) || comm.startsWith('indexer')) return 'dovecot';
  return 'other processes';
}

/** Reads every process's CPU time; `named` gives groups to specific pids. */
export function cpuSnapshot(named: ReadonlyMap<number, string>): CpuSnapshot {
  const groups = new Map<string, number>();
  let busy = 0;
  let iowait = 0;
  let total = 0;
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    total = f.slice(0, 8).reduce((a, b) => a + (b || 0), 0);
    iowait = f[4] ?? 0;
    busy = total - (f[3] ?? 0) - iowait;
    // Each process with its parent: a process of no known service started by a named one (the
    // pipeline's tool host and the pdfinfo/pdftoppm/soffice it starts) counts in that one's group. Children already waited for are in
    // their parent's cutime/cstime, so those are counted too.
    const procs: { pid: number; ppid: number; comm: string; ticks: number }[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(open + 1, close);
      const rest = stat.slice(close + 2).split(' ');
      // fields after the name start at field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17
      const ticks = Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
      procs.push({ pid: Number(entry), ppid: Number(rest[1]), comm, ticks });
    }
    const parentOf = new Map(procs.map((p) => [p.pid, p.ppid]));
    const namedAncestor = (pid: number): string | undefined => {
      for (let at = parentOf.get(pid), hops = 0; at !== undefined && at > 1 && hops < 16; hops++) {
        const g = named.get(at);
        if (g) return g;
        at = parentOf.get(at);
      }
      return undefined;
    };
    for (const p of procs) {
      let g = groupOf(p.pid, p.comm, named);
      if (g === 'other processes') g = namedAncestor(p.pid) ?? g;
      if (g === 'other processes') continue; // counted as the remainder of machine busy time
      groups.set(g, (groups.get(g) ?? 0) + p.ticks);
    }
  } catch {
    // not Linux: empty snapshot
  }
  return { at: Date.now(), groups, busy, iowait, total };
}

/** CPU use from `a` to `b`. Groups whose processes started after `a` count from zero. */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): CpuUsage {
  const hz = clockTicks();
  const wall = Math.max(0.001, (b.at - a.at) / 1000);
  const cores: Record<string, number> = {};
  let accounted = 0;
  for (const [g, ticks] of b.groups) {
    const used = Math.max(0, ticks - (a.groups.get(g) ?? 0));
    accounted += used;
    cores[g] = used / hz / wall;
  }
  const busy = Math.max(0, b.busy - a.busy);
  cores['other processes'] = Math.max(0, busy - accounted) / hz / wall;
  const machineCores = cpus().length;
  return {
    wallSeconds: wall,
    cores,
    machineBusyCores: b.total > a.total ? (busy / (b.total - a.total)) * machineCores : 0,
    iowaitCores: b.total > a.total ? ((b.iowait - a.iowait) / (b.total - a.total)) * machineCores : 0,
    machineCores,
  };
}
