import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';

/** What making a new file costs in the file system of a directory (local filing makes two per attachment). */
export interface FsProbe {
  files: number;
  /** New files per second, one after the other. */
  perSecond: number;
  /** CPU per new file (µs), nearly all of it the kernel's. */
  cpuUsPerFile: number;
}

/**
 * Creates `files` empty files in `dir` (made if missing), one after the other, with synchronous calls so
 * that only the file system's work is measured. Nothing is deleted: on ext4 without a journal (the
 * 2-core machine of December 2026) a new file passes over every inode freed in the last minutes, about
 * 30-40 µs of CPU per file when nothing was deleted lately and 250-900 µs after a few thousand
 * deletions, so deleting here would slow what the run measures next.
 */
export function probeNewFiles(dir: string, files = 300): FsProbe {
  mkdirSync(dir, { recursive: true });
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < files; i++) closeSync(openSync(join(dir, `probe-${i}`), 'wx'));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { files, perSecond: files / seconds, cpuUsPerFile: (used.user + used.system) / files };
}
