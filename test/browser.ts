import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { CHROMIUM, inContainer } from './tools-container.js';

/** Flags for a quiet headless Chromium in CI: no sandbox (root in containers), no calls home. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A started Chromium: `browser` is the context the tests open pages in. */
export interface LaunchedChromium {
  browser: BrowserContext;
  /** Stops the browser and removes its profile. */
  close(): Promise<void>;
}

/**
 * A headless Chromium with a fresh profile of its own; `close` stops it and removes the profile.
 * Debian's, launched by playwright; from the tools image when it is not installed here
 * (test/tools-container.ts).
 */
export async function launchChromium(): Promise<LaunchedChromium> {
  const profile = await mkdtemp(join(tmpdir(), 'postroom-chromium-'));
  if (inContainer('chromium')) return launchInContainer(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    acceptDownloads: true,
  });
  return {
    browser: context,
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Chromium from the tools image. playwright's own launch talks to the browser over pipes it hands the
 * child as file descriptors 3 and 4, which no engine's client passes into a container; so the browser
 * is started (through the `chromium` stub on the PATH) with a DevTools port on loopback, which the
 * machine shares with the container, and playwright connects to it. Pages, screenshots and downloads
 * work as with a launched one (a download lands in playwright's temp folder, mounted at the same path).
 */
async function launchInContainer(profile: string): Promise<LaunchedChromium> {
  const child = spawn(
    'chromium',
    [
      ...CHROMIUM_ARGS,
      '--disable-dev-shm-usage', // the container's /dev/shm is 64 MB
      '--remote-debugging-address=127.0.0.1',
      '--remote-debugging-port=0',
      `--user-data-dir=${profile}`,
      'about:blank',
    ],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // The stub holds stderr until the container is gone (test/tools-image/in-container.sh).
  const gone = new Promise<void>((done) => child.once('close', () => done()));
  const signal = (name: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, name);
    } catch {
      // already gone
    }
  };
  const stop = async () => {
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
    await rm(profile, { recursive: true, force: true });
  };
  let log = '';
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`Chromium in the tools image gave no DevTools address in 60 s:\n${log}`)),
        60_000,
      );
      child.stderr.on('data', (chunk: Buffer) => {
        log = (log + chunk.toString('utf8')).slice(-8192);
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`Chromium in the tools image exited (${code}) before it listened:\n${log}`));
      });
    });
    const cdp = await chromium.connectOverCDP(endpoint);
    const context = await cdp.newContext({ acceptDownloads: true });
    return {
      browser: context,
      async close() {
        await context.close().catch(() => undefined);
        await cdp.close().catch(() => undefined);
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
