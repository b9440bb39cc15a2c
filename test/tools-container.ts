/**
 * The tests' outside programs from a container image, for a machine that has a container engine but
 * not the programs. CI installs them from Debian's packages (scripts/install-chromium.sh,
 * install-converter.sh, install-mariadb-client.sh, install-promtool.sh; mariadb-server,
 * rabbitmq-server and openssl are there for the machine's own services) and is not touched: this
 * module does nothing but look them up on the PATH (and /usr/sbin) when they are all there.
 *
 * Otherwise test/global-setup.ts calls {@link placeTools}: the image of test/tools-image/Containerfile
 * (the same Debian packages) is built once and kept, tagged by a hash of its recipe, and a stub per
 * missing program is put first on the test workers' PATH. A stub runs its program in that image
 * (test/tools-image/in-container.sh says how: same paths, host network, exit codes, signals, a killed
 * caller kills the container), so `runTool('soffice', ...)`, `execFile('promtool', ...)` and
 * `findOnPath('pdftoppm', ...)` work unchanged. Chromium is the exception: playwright drives a browser
 * it launches over pipes, which do not cross into a container, so test/browser.ts starts the stub with
 * a DevTools port instead and connects to it (`inContainer('chromium')`). The throwaway TLS servers
 * (`mariadbd`, `rabbitmq-server`) run through their stubs too, as long-running containers stopped by
 * the signal or `rabbitmqctl stop` that stops them here; test/throwaway-servers.ts adjusts what
 * differs in a container (`inContainer('rabbitmq-server')`).
 *
 * Settings:
 * - TEST_TOOLS: `container` runs every one of the programs in the image, installed or not (to test
 *   this path); `local` never uses the image; unset, only the missing ones go in the image.
 * - TEST_TOOLS_BASE_IMAGE: the image's base, default `debian:bookworm-slim`. When that cannot be
 *   pulled, the local stand-in scripts/container-standins.sh makes is used if there is one.
 * - TEST_TOOLS_ENGINE: the engine's command-line client, `docker` or `podman`, or its path (default:
 *   `docker` when it reaches an engine, else `podman`). It reaches the engine as it does for the
 *   user: DOCKER_HOST, or the default socket; `podman` goes through DOCKER_HOST's socket when set.
 * - TEST_CONTAINER_ULIMITS: as for the service containers (test/containers.ts).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findOnPath } from '../infra/config.js';
import { containerUlimits, RUN_LABEL } from './containers.js';

const run = promisify(execFile);

/** The programs CI installs that tests run; what the image provides. */
export const TOOL_PROGRAMS = [
  'chromium',
  'soffice',
  'pdfinfo',
  'pdftoppm',
  'pdftotext',
  'mariadb',
  'mariadb-dump',
  'promtool',
  // The throwaway TLS servers (test/throwaway-servers.ts) and their certificates.
  'openssl',
  'mariadb-install-db',
  'mariadbd',
  'rabbitmq-server',
  'rabbitmqctl',
] as const;

/**
 * Programs that only work together: a data folder made by one MariaDB's `mariadb-install-db` is for
 * the same MariaDB's server, and `rabbitmqctl` must speak to its node with the node's version and
 * Erlang cookie. When one of a group is missing, the whole group runs in the image.
 */
const TOGETHER: ReadonlyArray<ReadonlyArray<(typeof TOOL_PROGRAMS)[number]>> = [
  ['mariadb-install-db', 'mariadbd'],
  ['rabbitmq-server', 'rabbitmqctl'],
];

/**
 * Where the programs are looked for: the PATH, then /usr/sbin, where Debian puts the servers
 * (`mariadbd`, `rabbitmq-server`) and which a user's PATH often lacks. The stubs come first on the PATH.
 */
export function toolSearchPath(path: string | undefined = process.env['PATH']): string {
  return `${path ?? ''}${delimiter}/usr/sbin`;
}

/** Debian's Chromium (scripts/install-chromium.sh); playwright-core 1.64 speaks its protocol (156). */
export const CHROMIUM = '/usr/bin/chromium';

/** True when the global setup put `program` in the tools image for this run (TEST_TOOLS_IN_CONTAINER). */
export function inContainer(program: (typeof TOOL_PROGRAMS)[number]): boolean {
  return (process.env['TEST_TOOLS_IN_CONTAINER'] ?? '').split(',').includes(program);
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RECIPE_DIR = join(REPO, 'test', 'tools-image');
const DEFAULT_BASE = 'debian:bookworm-slim';
/** What scripts/container-standins.sh calls its Debian stand-in. */
const STANDIN_BASE = 'localhost/postroom-standin/debian:bookworm-slim';
/** The variables the engine's client reads to find its engine; the stubs give it the setup's values. */
const ENGINE_VARIABLES = [
  'DOCKER_HOST',
  'DOCKER_CONTEXT',
  'DOCKER_CONFIG',
  'DOCKER_CERT_PATH',
  'DOCKER_TLS_VERIFY',
  'CONTAINER_HOST',
  'CONTAINER_CONNECTION',
  'CONTAINERS_CONF',
  'CONTAINERS_STORAGE_CONF',
  'XDG_RUNTIME_DIR',
  'XDG_CONFIG_HOME',
  'XDG_DATA_HOME',
  'HOME',
  'PATH',
];

/** An engine's command-line client that answers. */
interface Engine {
  /** The client and its options (`podman --url unix:///...`). */
  cli: string[];
  kind: 'docker' | 'podman';
  /** Files in the container belong to container root = the caller (rootless engines). */
  rootless: boolean;
}

/** Runs the engine's client; resolves with stdout, rejects with its stderr. */
async function engineRun(engine: Engine, args: string[], timeoutMs = 60_000): Promise<string> {
  const [cli, ...options] = engine.cli;
  try {
    const { stdout } = await run(cli!, [...options, ...args], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; killed?: boolean };
    const why = e.killed ? `no answer within ${timeoutMs / 1000} s` : (e.stderr ?? String(err)).trim();
    throw new Error(`${engine.cli.join(' ')} ${args.join(' ')}: ${why}`, { cause: err });
  }
}

/** The engine's client that answers (TEST_TOOLS_ENGINE, else docker, else podman), or why there is none. */
async function findEngine(): Promise<Engine | string> {
  const asked = process.env['TEST_TOOLS_ENGINE'];
  const names = asked ? [asked] : ['docker', 'podman'];
  const problems: string[] = [];
  for (const name of names) {
    const path = name.includes('/') ? name : findOnPath(name, process.env['PATH']);
    if (!path) {
      problems.push(`no ${name} on the PATH`);
      continue;
    }
    const kind = name.includes('podman') ? 'podman' : 'docker';
    const host = process.env['DOCKER_HOST'];
    const cli = kind === 'podman' && host?.startsWith('unix://') ? [path, '--url', host] : [path];
    const engine: Engine = { cli, kind, rootless: false };
    try {
      if (kind === 'podman') {
        engine.rootless =
          (await engineRun(engine, ['info', '--format', '{{.Host.Security.Rootless}}'], 20_000)) === 'true';
      } else {
        const security = await engineRun(engine, ['info', '--format', '{{json .SecurityOptions}}'], 20_000);
        engine.rootless = security.includes('rootless');
      }
      return engine;
    } catch (err) {
      problems.push(String((err as Error).message));
    }
  }
  return problems.join('; ');
}

async function imageExists(engine: Engine, image: string): Promise<boolean> {
  return engineRun(engine, ['image', 'inspect', '--format', '{{.Id}}', image]).then(
    () => true,
    () => false,
  );
}

/** The image's tag for a base: a hash of the recipe and the base, so that a changed recipe is built anew. */
function tagFor(base: string): string {
  const recipe = readFileSync(join(RECIPE_DIR, 'Containerfile'));
  const hash = createHash('sha256').update(recipe).update('\0').update(base).digest('hex');
  return `postroom-test-tools:${hash.slice(0, 12)}`;
}

/**
 * The tools image, built if no image of this recipe exists yet. The base is TEST_TOOLS_BASE_IMAGE,
 * else debian:bookworm-slim, else (it cannot be pulled) scripts/container-standins.sh's stand-in.
 */
async function toolsImage(engine: Engine): Promise<string> {
  const asked = process.env['TEST_TOOLS_BASE_IMAGE'];
  const candidates = asked ? [asked] : [DEFAULT_BASE, STANDIN_BASE];
  for (const base of candidates) if (await imageExists(engine, tagFor(base))) return tagFor(base);

  let base: string | null = null;
  const problems: string[] = [];
  for (const candidate of candidates) {
    if (await imageExists(engine, candidate)) {
      base = candidate;
      break;
    }
    if (candidate === STANDIN_BASE) {
      problems.push(`no local stand-in ${STANDIN_BASE} (sudo bash scripts/container-standins.sh makes it)`);
      continue;
    }
    console.log(`test tools: pulling ${candidate}`);
    try {
      await engineRun(engine, ['pull', candidate], 300_000);
      base = candidate;
      break;
    } catch (err) {
      problems.push(`${candidate} could not be pulled (${(err as Error).message.split('\n')[0]})`);
    }
  }
  if (!base) throw new Error(`no base image for the tools image: ${problems.join('; ')}`);

  const tag = tagFor(base);
  const log = join(tmpdir(), `postroom-test-tools-build-${process.pid}.log`);
  console.log(
    `test tools: building ${tag} from ${base} (once; about 1.5 minutes with a near Debian mirror, ` +
      `1.5 GB; log: ${log})`,
  );
  const started = Date.now();
  const [cli, ...options] = engine.cli;
  const out = openSync(log, 'w');
  const code = await new Promise<number | null>((done, fail) => {
    const child = spawn(
      cli!,
      [
        ...options,
        'build',
        '-f',
        join(RECIPE_DIR, 'Containerfile'),
        '--build-arg',
        `BASE_IMAGE=${base}`,
        '--label',
        'postroom.test-tools=1',
        '-t',
        tag,
        RECIPE_DIR,
      ],
      { stdio: ['ignore', out, out] },
    );
    child.once('error', fail);
    child.once('exit', done);
  }).finally(() => closeSync(out));
  if (code !== 0) {
    const tail = readFileSync(log, 'utf8').split('\n').slice(-30).join('\n');
    throw new Error(`building ${tag} failed (exit ${code}); the end of ${log}:\n${tail}`);
  }
  const size = Number(await engineRun(engine, ['image', 'inspect', '--format', '{{.Size}}', tag]));
  console.log(
    `test tools: built ${tag} in ${Math.round((Date.now() - started) / 1000)} s, ${Math.round(size / 1e6)} MB`,
  );
  await rm(log, { force: true });
  return tag;
}

/** A bash word. */
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const array = (items: readonly string[]) => `(${items.map(quote).join(' ')})`;

/**
 * Puts the programs that are missing here (all of them with TEST_TOOLS=container) in the tools image
 * for this run: builds it if need be, writes the stubs, and sets PATH and TEST_TOOLS_IN_CONTAINER for
 * the test workers. Resolves with the teardown (removes the stubs and any container of the run still
 * there), or null when nothing goes in a container.
 *
 * Asked for explicitly, a missing engine or a failed build fails the run at once. Looked for only
 * because programs are missing, they do not: the run goes on, and the tests that need the programs
 * skip or fail saying what is missing, as they did before.
 */
export async function placeTools(): Promise<(() => Promise<void>) | null> {
  const mode = process.env['TEST_TOOLS'];
  if (mode !== undefined && mode !== 'container' && mode !== 'local')
    throw new Error(`TEST_TOOLS is "${mode}": container, local, or unset`);
  if (mode === 'local') return null;
  const path = process.env['PATH'];
  // Chromium is looked for where test/browser.ts launches it from.
  const installed = (p: string) =>
    p === 'chromium' ? findOnPath('chromium', dirname(CHROMIUM)) : findOnPath(p, toolSearchPath(path));
  const missing = new Set(TOOL_PROGRAMS.filter((p) => mode === 'container' || !installed(p)));
  for (const group of TOGETHER) if (group.some((p) => missing.has(p))) for (const p of group) missing.add(p);
  const programs = TOOL_PROGRAMS.filter((p) => missing.has(p));
  if (programs.length === 0) return null;

  const forced = mode === 'container';
  const why = forced ? 'TEST_TOOLS=container' : 'not installed here';
  let engine: Engine;
  let image: string;
  try {
    const found = await findEngine();
    if (typeof found === 'string') throw new Error(`no container engine answers (${found})`);
    engine = found;
    image = await toolsImage(engine);
  } catch (err) {
    if (forced) throw new Error(`test tools in a container: ${(err as Error).message}`, { cause: err });
    console.log(
      `test tools: ${why}, and the tools image cannot be had: ${(err as Error).message}. ` +
        `The tests that need ${programs.join(', ')} skip or fail; install them (README, "Two ` +
        'commands") or make Docker available.',
    );
    return null;
  }

  const dir = await mkdtemp(join(tmpdir(), 'postroom-test-tools-'));
  const bin = join(dir, 'bin');
  const run = randomUUID();
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  // Files the programs write must be the caller's, or the tests cannot remove them: the caller's uid,
  // except where container root already is the caller (rootless engines) or the caller is root.
  const user =
    uid === 0 || (engine.rootless && engine.kind === 'docker')
      ? []
      : engine.rootless
        ? ['--userns=keep-id']
        : ['--user', `${uid}:${gid}`];
  const ulimits = Object.entries(containerUlimits()).flatMap(([name, l]) => [
    '--ulimit',
    `${name}=${l.soft}:${l.hard}`,
  ]);
  const temp = realpathSync(tmpdir());
  const mounts = [temp, ...(realpathSync(REPO).startsWith(`${temp}/`) ? [] : [realpathSync(REPO)])];
  const engineEnv = ENGINE_VARIABLES.flatMap((n) => {
    const v = process.env[n];
    return v === undefined ? [] : [`${n}=${v}`];
  });
  const settings = join(dir, 'settings');
  await writeFile(
    settings,
    [
      '# Written by test/tools-container.ts for one test run; read by test/tools-image/in-container.sh.',
      `engine=${array(engine.cli)}`,
      `engine_env=${array(engineEnv)}`,
      `image=${quote(image)}`,
      `mounts=${array(mounts)}`,
      `user=${array(user)}`,
      `label=${quote(`${RUN_LABEL}=${run}`)}`,
      `ulimits=${array(ulimits)}`,
      `tmp=${quote(temp)}`,
      '',
    ].join('\n'),
  );
  const bash = findOnPath('bash', path) ?? '/bin/bash';
  const script = join(RECIPE_DIR, 'in-container.sh');
  await mkdir(bin);
  for (const program of programs) {
    const stub = join(bin, program);
    await writeFile(
      stub,
      `#!/bin/sh\n# ${program} for one test run, in ${image} (test/tools-container.ts)\n` +
        `exec ${quote(bash)} ${quote(script)} ${quote(settings)} ${quote(program)} "$@"\n`,
    );
    await chmod(stub, 0o755);
  }
  process.env['PATH'] = `${bin}${delimiter}${path ?? ''}`;
  process.env['TEST_TOOLS_IN_CONTAINER'] = programs.join(',');
  console.log(`test tools: ${programs.join(', ')} run in ${image} (${why}; ${engine.cli.join(' ')})`);

  return async () => {
    const left = await engineRun(engine, ['ps', '-aq', '--filter', `label=${RUN_LABEL}=${run}`]).catch(
      () => '',
    );
    const ids = left.split('\n').filter(Boolean);
    if (ids.length > 0) await engineRun(engine, ['rm', '-f', ...ids]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
}
