/**
 * CONVERTER=local: LibreOffice headless (`soffice --headless --convert-to pdf`), one process per
 * document, each with its own throwaway profile (`-env:UserInstallation`) in a temp folder that is
 * removed afterwards, so no job sees another's state and a crashed job leaves no lock behind. At most
 * `concurrency` run at once (each soffice takes 150-300 MB). The process group is killed at the time
 * limit and once more after soffice exits, so no `soffice.bin` outlives its job.
 *
 * Macros never run: the profile is written before the start with macro execution disabled
 * (`DisableMacrosExecution`) and the security level at "very high" (only macros from trusted places,
 * of which there are none), so a document's own macros, even on load, are not executed.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runTool } from '../../infra/documents/run-tool.js';
import { RetryableError } from '../../infra/errors.js';
import {
  ConversionFailed,
  looksLikePdf,
  seconds,
  type ConversionInput,
  type Converter,
} from './converter.js';

/** Options of {@link createLocalConverter}. */
export interface LocalConverterOptions {
  /** Path or name of soffice (default `soffice`, found on the PATH). */
  soffice?: string;
  /** Conversions at once (default 1). */
  concurrency?: number;
  /** Folder for the per-job temp folders (default the OS temp folder). */
  tempDir?: string;
  /** Called with each job's process group id and temp folder once soffice started (tests). */
  onStart?: (job: { pgid: number; dir: string }) => void;
}

/** The profile settings every job starts with: no macros, no first-start wizard, no recovery. */
const REGISTRY = `<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="SecureURL" oor:op="fuse"><value/></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Recovery/RecoveryInfo"><prop oor:name="Enabled" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Save/Document"><prop oor:name="CreateBackup" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
`;

/** A counting semaphore: `run` waits for one of `size` slots. */
function semaphore(size: number) {
  let free = size;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (free > 0) free -= 1;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free += 1;
    }
  };
}

/** The local converter; see the module comment. */
export function createLocalConverter(options: LocalConverterOptions = {}): Converter {
  const soffice = options.soffice ?? 'soffice';
  const limit = semaphore(Math.max(1, options.concurrency ?? 1));
  return {
    name: 'local',
    convert: (input, timeoutMs) => limit(() => convertOnce(input, timeoutMs)),
  };

  async function convertOnce(input: ConversionInput, timeoutMs: number): Promise<Buffer> {
    let dir: string;
    try {
      dir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'postroom-convert-'));
    } catch (err) {
      throw new RetryableError('CONVERT.TEMP_FAILED', 'could not make a temp folder for the conversion', {
        cause: err,
      });
    }
    try {
      const profile = join(dir, 'profile');
      await mkdir(join(profile, 'user'), { recursive: true });
      await writeFile(join(profile, 'user', 'registrymodifications.xcu'), REGISTRY);
      const outDir = join(dir, 'out');
      await mkdir(outDir);
      const source = join(dir, `document.${input.extension}`);
      await writeFile(source, input.bytes);
      const args = [
        `-env:UserInstallation=${pathToFileURL(profile).href}`,
        '--headless',
        '--invisible',
        '--nologo',
        '--nodefault',
        '--nolockcheck',
        '--norestore',
        '--nofirststartwizard',
        '--convert-to',
        'pdf',
        '--outdir',
        outDir,
        source,
      ];
      // HOME in the job's folder too: nothing of LibreOffice's is written outside it.
      const env = { PATH: process.env['PATH'], HOME: dir, LANG: 'C.UTF-8', TMPDIR: dir };
      let result;
      try {
        result = await runTool(soffice, args, {
          timeoutMs,
          env,
          onStart: (pgid) => options.onStart?.({ pgid, dir }),
        });
      } catch (err) {
        throw new RetryableError('CONVERT.SOFFICE_MISSING', `could not start ${soffice}`, { cause: err });
      }
      if (result.timedOut)
        throw new ConversionFailed(
          'CONVERT.TIMEOUT',
          `The conversion took longer than the ${seconds(timeoutMs)} limit and was stopped; the document may be damaged or unusually complex.`,
        );
      const produced = (await readdir(outDir)).find((f) => f.toLowerCase().endsWith('.pdf'));
      const pdf = produced ? await readFile(join(outDir, produced)) : null;
      if (!pdf || pdf.length === 0 || !looksLikePdf(pdf)) {
        const detail = lastLine(result.output);
        throw new ConversionFailed(
          'CONVERT.FAILED',
          `LibreOffice could not convert the document (it may be damaged or not what its type says)${detail ? `: ${detail}` : ''}.`,
        );
      }
      return pdf;
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('convert ') && !/^Warning: failed to launch javaldx/.test(l));
  return (lines.at(-1) ?? '').slice(0, 200);
}
