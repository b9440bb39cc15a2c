/**
 * Checks of the deployment files that need no Docker engine and no cluster: the Dockerfile, the Compose
 * stack, the NGINX proxy, the Kubernetes manifests and the CI workflow are parsed, and what must agree
 * across them is compared (roles, variables, images, ports, probes, routes). The shipped configuration
 * of every Compose service and every Deployment is also run through `loadConfig`, so a value the
 * process would refuse at start fails here first.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ALL_ROLES, ConfigSchema, loadConfig, SECRET_VARIABLES, type Role } from '../config.js';

const K8S_DIR = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(K8S_DIR, '../..');
const read = (path: string) => readFileSync(join(REPO, path), 'utf8');

/** Roles that consume from queues and scale horizontally. */
const SCALED_CONSUMERS: Role[] = ['analysis', 'drive', 'outbound', 'notify'];
/** Routes reachable from outside: the webhook and the status API with its documentation. */
const PUBLIC_ROUTES: Record<string, Role> = {
  '/telegram/webhook': 'telegram',
  '/api': 'api',
  '/console': 'api',
  '/docs': 'api',
  '/openapi.json': 'api',
};

/**
 * Variables SPEC.md names whose feature is not built yet, so the process does not read them and the
 * deployment does not wire them. Each leaves this list in the change that makes `ConfigSchema` accept
 * it; a listed variable the schema already accepts fails the test below, so the list cannot go stale.
 */
const NOT_YET_BUILT = new Set<string>([]);

/** The variables of the Configuration table of `../shared/SPEC.md`, or null when it is not beside us. */
function specVariables(): string[] | null {
  const spec = resolve(REPO, '../shared/SPEC.md');
  if (!existsSync(spec)) return null;
  const section = readFileSync(spec, 'utf8')
    .split(/^## /m)
    .find((s) => s.startsWith('Configuration'));
  const rows = (section ?? '').split('\n').filter((l) => l.startsWith('| `'));
  const names = rows.flatMap((row) =>
    [...(row.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] ?? ''),
  );
  expect(names.length, 'variables found in the table of SPEC.md').toBeGreaterThan(20);
  return names;
}

/**
 * Every variable the deployment must wire: the table of `../shared/SPEC.md` when the product contract
 * sits beside the repository (as in CI), less those of features not built yet, and always every key of
 * `ConfigSchema`, which holds the SPEC's variables plus a few optional ones.
 */
function requiredVariables(): string[] {
  const names = new Set(Object.keys(ConfigSchema.properties));
  for (const n of specVariables() ?? []) if (!NOT_YET_BUILT.has(n)) names.add(n);
  return [...names].sort();
}

describe('SPEC.md configuration table', () => {
  it('is read by the process, but for the variables of features not built yet', () => {
    const spec = specVariables();
    if (spec === null) return; // SPEC.md is not beside this checkout
    const known = new Set(Object.keys(ConfigSchema.properties));
    expect(spec.filter((v) => !known.has(v) && !NOT_YET_BUILT.has(v))).toEqual([]);
    expect(
      [...NOT_YET_BUILT].filter((v) => known.has(v)),
      'built: take these off NOT_YET_BUILT',
    ).toEqual([]);
  });
});

// ---- YAML shapes (only the fields checked) ----------------------------------------------------------

type Env = Record<string, string | number | boolean | null>;
interface ComposeService {
  image?: string;
  build?: { context?: string; args?: Record<string, string> } | string;
  profiles?: string[];
  environment?: Env;
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  ports?: string[];
  volumes?: string[];
  command?: string[];
  restart?: string;
  read_only?: boolean;
  hostname?: string;
  container_name?: string;
}
interface Labels {
  [key: string]: string;
}
interface Probe {
  httpGet?: { path?: string; port?: string | number };
}
interface Container {
  name: string;
  image?: string;
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Labels };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Labels } & Labels;
    strategy?: { type?: string };
    template?: {
      metadata?: { labels?: Labels };
      spec?: {
        serviceAccountName?: string;
        terminationGracePeriodSeconds?: number;
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
        containers?: Container[];
        volumes?: { name: string; emptyDir?: object; persistentVolumeClaim?: { claimName: string } }[];
      };
    };
    scaleTargetRef?: { kind?: string; name?: string };
    accessModes?: string[];
    resources?: { requests?: Record<string, string> };
    minReplicas?: number;
    maxReplicas?: number;
    minAvailable?: number | string;
    maxUnavailable?: number | string;
    ports?: { name?: string; port: number; targetPort?: string | number }[];
    rules?: {
      http?: {
        paths?: {
          path: string;
          backend: { service: { name: string; port: { name?: string; number?: number } } };
        }[];
      };
    }[];
  };
}

// ---- Loading ------------------------------------------------------------------------------------

/** Compose's `${VAR:-default}` as Compose resolves it with nothing set: the default, or empty. */
const withDefaults = (value: unknown): string =>
  String(value ?? '').replace(/\$\{[A-Za-z0-9_]+(?::?-([^}]*))?\}/g, (_m, d: string | undefined) => d ?? '');

const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;

const kustomization = parse(read('infra/k8s/kustomization.yaml')) as {
  namespace?: string;
  resources: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
};
const manifests: K8sObject[] = kustomization.resources.flatMap((file) =>
  parseAllDocuments(read(`infra/k8s/${file}`))
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null),
);
const ofKind = (kind: string) => manifests.filter((m) => m.kind === kind);
const named = (kind: string, name: string) => ofKind(kind).find((m) => m.metadata?.name === name);
const deployments = ofKind('Deployment');
const containerOf = (d: K8sObject): Container => {
  const c = d.spec?.template?.spec?.containers?.[0];
  if (!c) throw new Error(`${d.metadata?.name}: no container`);
  return c;
};
const roleOf = (d: K8sObject) => containerOf(d).env?.find((e) => e.name === 'ROLES')?.value;
const deploymentOf = (role: string) => deployments.find((d) => roleOf(d) === role);
const selects = (selector: Labels | undefined, labels: Labels | undefined) =>
  !!selector &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** Dockerfile instructions per stage, continuation lines joined and comments dropped. */
function dockerfileStages(text: string): { from: string; name?: string; lines: string[] }[] {
  const args = new Map<string, string>();
  const stages: { from: string; name?: string; lines: string[] }[] = [];
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of logical) {
    const [instruction = '', ...rest] = line.split(/\s+/);
    const body = rest.join(' ');
    if (instruction === 'ARG' && stages.length === 0) {
      const [k = '', v = ''] = body.split('=');
      args.set(k, v);
    } else if (instruction === 'FROM') {
      const [image = '', , name] = body.split(/\s+/);
      stages.push({
        from: image.replace(/\$\{(\w+)\}/g, (_m, k: string) => args.get(k) ?? ''),
        name,
        lines: [],
      });
    } else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

/** CPU in cores ("500m", "1", "1.5") and memory in bytes ("512Mi", "1Gi", "1G"). */
function cores(q: string | undefined): number {
  if (!q) return 0;
  return q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q);
}
function bytes(q: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(q ?? '');
  if (!m) return 0;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? unit[m[2] as keyof typeof unit] : 1);
}

/** `location` blocks of the NGINX server: path to the upstream variable it proxies to (or null). */
function nginxLocations(conf: string): {
  listen: number[];
  upstreams: Map<string, string>;
  locations: Map<string, string | null>;
} {
  const text = conf.replace(/#.*$/gm, '');
  const listen = [...text.matchAll(/^\s*listen\s+(\d+)/gm)].map((m) => Number(m[1]));
  const upstreams = new Map(
    [...text.matchAll(/set\s+\$(\w+)\s+(\S+);/g)].map((m) => [m[1] ?? '', m[2] ?? '']),
  );
  const locations = new Map<string, string | null>();
  for (const m of text.matchAll(/location\s+(?:=\s+)?(\S+)\s*\{/g)) {
    let depth = 1;
    let i = (m.index ?? 0) + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) depth += text[i] === '{' ? 1 : text[i] === '}' ? -1 : 0;
    const body = text.slice(start, i);
    locations.set(m[1] ?? '', /proxy_pass\s+\$(\w+)/.exec(body)?.[1] ?? null);
  }
  return { listen, upstreams, locations };
}

const dockerfile = dockerfileStages(read('Dockerfile'));
const runtime = dockerfile.at(-1)!;
const exposed = runtime.lines.filter((l) => l.startsWith('EXPOSE')).map((l) => Number(l.split(/\s+/)[1]));
const APP_PORT = exposed[0] ?? NaN;
const pkg = JSON.parse(read('package.json')) as { version: string };

/** Compose services that run the Postroom image (the roles, the demo poller, the migration). */
const appServices = Object.entries(services).filter(([, s]) =>
  typeof s.build === 'object' ? s.build.context === '.' : s.build === '.',
);

// ---- Tests -----------------------------------------------------------------------------------------

describe('Dockerfile', () => {
  const build = dockerfile.find((s) => s.lines.some((l) => l.includes('npm run build')));
  const prodDeps = dockerfile.find((s) => s.lines.some((l) => /npm ci\b.*--omit=dev/.test(l)));

  it('builds in a Node 24 LTS bookworm-slim stage and runs on one with production dependencies only', () => {
    for (const s of dockerfile)
      expect(s.from, `stage ${s.name ?? '(final)'}`).toMatch(/^node:24-bookworm-slim/);
    expect(build?.lines.some((l) => /^RUN .*npm ci\b/.test(l) && !l.includes('--omit=dev'))).toBe(true);
    expect(prodDeps, 'a stage running npm ci --omit=dev').toBeDefined();
    const copies = runtime.lines.filter((l) => l.startsWith('COPY --from='));
    expect(copies.some((l) => l.includes(`--from=${prodDeps?.name}`) && l.includes('node_modules'))).toBe(
      true,
    );
    expect(copies.some((l) => l.includes(`--from=${build?.name}`) && l.includes('node_modules'))).toBe(false);
    expect(runtime.lines).toContain('COPY package.json ./'); // "type": "module" at run time
  });

  it('copies every folder the build compiles', () => {
    const tsconfig = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
    const copied = build!.lines.filter((l) => l.startsWith('COPY ')).join(' ');
    for (const path of tsconfig.include)
      expect(copied, path).toMatch(new RegExp(`\\b${path.replace('.', '\\.')}\\b`));
  });

  it('runs node dist/main.js as a non-root user, with a health check on /healthz and ROLES=all', () => {
    const user =
      runtime.lines
        .filter((l) => l.startsWith('USER '))
        .at(-1)
        ?.split(/\s+/)[1] ?? 'root';
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    expect(runtime.lines.find((l) => l.startsWith('HEALTHCHECK'))).toMatch(/\/healthz/);
    expect(runtime.lines.find((l) => l.startsWith('CMD'))).toBe('CMD ["node", "dist/main.js"]');
    expect(runtime.lines.find((l) => l.startsWith('STOPSIGNAL'))).toBe('STOPSIGNAL SIGTERM');
    expect(runtime.lines.some((l) => l.startsWith('ENV') && /\bROLES=all\b/.test(l))).toBe(true);
    expect(exposed).toEqual([8080]);
  });

  it('sends only sources to the build (.dockerignore allow-list)', () => {
    const rules = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(rules[0]).toBe('*');
    const tsconfig = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
    for (const path of [...tsconfig.include, 'package.json', 'package-lock.json', 'tsconfig.json'])
      expect(
        rules.some((r) => r === `!${path}` || r === `!${path}/`),
        path,
      ).toBe(true);
    expect(rules.some((r) => r.startsWith('!') && /env|data|node_modules|\.git/.test(r))).toBe(false);
  });
});

describe('docker-compose.yml', () => {
  it('keeps MySQL 8 and RabbitMQ with management startable on their own (README: up -d mysql rabbitmq)', () => {
    expect(withDefaults(services['mysql']?.image)).toMatch(/^mysql:8/);
    expect(withDefaults(services['rabbitmq']?.image)).toMatch(/^rabbitmq:3[.\d]*-management/);
    for (const name of ['mysql', 'rabbitmq']) {
      expect(services[name]?.profiles, name).toBeUndefined();
      expect(services[name]?.depends_on, name).toBeUndefined();
    }
  });

  it('runs each role as its own service, from one image, outside any profile', () => {
    for (const role of ALL_ROLES) {
      const running = appServices.filter(([, s]) => s.environment?.['ROLES'] === role && !s.profiles);
      expect(
        running.map(([n]) => n),
        role,
      ).toEqual([role]);
    }
    const images = new Set(appServices.map(([, s]) => withDefaults(s.image)));
    expect(images.size).toBe(1);
    expect([...images][0]?.split(':')[0]).toBe(kustomization.images?.[0]?.name);
  });

  it('wires every variable into every Postroom service, with no default for secrets', () => {
    const required = requiredVariables();
    for (const [name, s] of appServices) {
      expect(Object.keys(s.environment ?? {}).sort(), name).toEqual(expect.arrayContaining(required));
      if (s.profiles) continue; // the demo poller logs in with the demo mailbox's password
      for (const v of SECRET_VARIABLES) expect(withDefaults(s.environment?.[v]), `${name} ${v}`).toBe('');
    }
  });

  it('gives every Postroom service a configuration the process accepts', () => {
    for (const [name, s] of appServices) {
      const env = Object.fromEntries(
        Object.entries(s.environment ?? {}).map(([k, v]) => [k, withDefaults(v)]),
      );
      expect(() => loadConfig(env), name).not.toThrow();
      expect(env['HTTP_PORT'], name).toBe(String(APP_PORT));
      expect(env['AMQP_URL'], name).toMatch(/@rabbitmq:5672\//);
      expect(env['MYSQL_URL'], name).toMatch(/@mysql:3306\//);
    }
  });

  it('starts in order: health checks behind every service_healthy, roles after MySQL, RabbitMQ, migrations', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        const target = services[dep];
        expect(target, `${name} depends on ${dep}`).toBeDefined();
        if (condition === 'service_healthy') {
          const context = typeof target?.build === 'object' ? target.build.context : undefined;
          const imageHasOne =
            context && context !== '.' && /^HEALTHCHECK /m.test(read(`${context}/Dockerfile`));
          expect(!!target?.healthcheck?.test || imageHasOne, `${dep} has a health check`).toBe(true);
        }
        if (condition === 'service_completed_successfully') expect(target?.restart, dep).toBe('no');
      }
    }
    for (const [name, s] of appServices.filter(([, s]) => s.environment?.['ROLES'] !== 'all')) {
      for (const dep of ['mysql', 'rabbitmq'])
        expect(s.depends_on?.[dep]?.condition, `${name}`).toBe('service_healthy');
      expect(s.depends_on?.['migrate']?.condition, name).toBe('service_completed_successfully');
      expect(String(s.healthcheck?.test), name).toContain(`127.0.0.1:${APP_PORT}/readyz`);
      expect(s.read_only, name).toBe(true);
    }
  });

  it('puts NGINX in front of the API and the webhook, on the image port', () => {
    const nginx = services['nginx'];
    const mount = nginx?.volumes?.find((v) => v.includes('/etc/nginx/'));
    const confPath = mount?.split(':')[0]?.replace(/^\.\//, '') ?? '';
    const { listen, upstreams, locations } = nginxLocations(read(confPath));
    expect(nginx?.ports?.map((p) => Number(withDefaults(p).split(':').at(-1)))).toEqual(listen);
    for (const [variable, url] of upstreams) {
      const m = /^http:\/\/([\w-]+):(\d+)$/.exec(url);
      expect(m, `${variable} = ${url}`).not.toBeNull();
      expect(services[m![1]!], `upstream service ${m![1]}`).toBeDefined();
      expect(Number(m![2]), url).toBe(APP_PORT);
      expect(nginx?.depends_on?.[m![1]!]?.condition).toBe('service_healthy');
    }
    for (const [route, role] of Object.entries(PUBLIC_ROUTES)) {
      const variable = locations.get(route) ?? locations.get(`${route}/`);
      expect(variable, `NGINX location ${route}`).toBeTruthy();
      expect(upstreams.get(variable!), route).toBe(`http://${role}:${APP_PORT}`);
    }
  });

  it('has a demo profile whose poller, test IMAP server and mail generator agree', () => {
    const dovecotConf = read('infra/dovecot/dovecot.conf');
    const imapPort = /inet_listener imap\s*\{\s*port = (\d+)/.exec(dovecotConf)?.[1];
    const users = read('infra/dovecot/users');
    const demo = services['imap-demo'];
    expect(services['dovecot']?.profiles).toEqual(expect.arrayContaining(['demo', 'test-imap']));
    expect(demo?.profiles).toEqual(['demo']);
    const env = demo?.environment ?? {};
    expect(env['ROLES']).toBe('imap');
    expect(env['IMAP_HOST']).toBe('dovecot');
    expect(env['IMAP_PORT']).toBe(imapPort);
    expect(env['IMAP_SECURE']).toBe('false');
    expect(users).toMatch(new RegExp(`^${env['IMAP_USER']}:\\{PLAIN\\}${env['IMAP_PASSWORD']}$`, 'm'));
    expect(demo?.depends_on?.['dovecot']?.condition).toBe('service_healthy');
    const mailgen = services['mailgen'];
    expect(mailgen?.profiles).toEqual(['demo']);
    expect(mailgen?.environment?.['MAILGEN_IMAP_URL']).toBe(`imap://dovecot:${imapPort}`);
    expect(read('infra/dovecot/Dockerfile')).toMatch(
      /COPY .*mailgen\.sh \/usr\/local\/bin\/postroom-mailgen/,
    );
    expect(mailgen?.command).toEqual(['postroom-mailgen']);
  });

  it('takes every base image by name from a variable whose default is the usual image', () => {
    // So a machine that reaches no registry can point them at local stand-ins (scripts/container-smoke.sh).
    for (const [name, variable] of [
      ['mysql', 'MYSQL_IMAGE'],
      ['rabbitmq', 'RABBITMQ_IMAGE'],
      ['nginx', 'NGINX_IMAGE'],
    ] as const)
      expect(services[name]?.image, name).toMatch(new RegExp(`^\\$\\{${variable}:-[^}]+\\}$`));
    const nodeDefault = /^ARG NODE_IMAGE=(\S+)$/m.exec(read('Dockerfile'))?.[1];
    for (const [name, s] of appServices) {
      const args = (typeof s.build === 'object' ? s.build.args : undefined) ?? {};
      expect(withDefaults(args['NODE_IMAGE']), name).toBe(nodeDefault);
    }
    expect(read('infra/dovecot/Dockerfile')).toMatch(/^FROM \$\{DEBIAN_IMAGE\}$/m);
  });

  it('gives every service a health check and a restart policy; run-once services are not restarted', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.restart, `${name} restart`).toMatch(/^(unless-stopped|always|on-failure|no)$/);
      const runsOnce = s.restart === 'no';
      const context = typeof s.build === 'object' ? s.build.context : undefined;
      const imageHasOne = !!context && /^HEALTHCHECK /m.test(read(`${context}/Dockerfile`));
      if (runsOnce) expect(s.healthcheck?.disable, `${name} runs once`).toBe(true);
      else expect(!!s.healthcheck?.test || (imageHasOne && !s.healthcheck?.disable), name).toBe(true);
    }
  });

  it('keeps secrets out of the YAML: each comes from .env or the shell, with no value written here', () => {
    const text = read('docker-compose.yml');
    for (const v of SECRET_VARIABLES)
      for (const m of text.matchAll(new RegExp(`^\\s*${v}:\\s*(.*)$`, 'gm'))) {
        const value = (m[1] ?? '').trim();
        if (value.startsWith('${')) expect(withDefaults(value), v).toBe('');
        else expect(['demo', "''"], `${v} = ${value}`).toContain(value); // the demo mailbox only
      }
  });

  it('keeps MySQL, RabbitMQ, filed files and the drop folder in named volumes', () => {
    const mounts = (name: string) =>
      (services[name]?.volumes ?? []).map((v) => v.split(':').slice(0, 2).join(':'));
    expect(mounts('mysql')).toContain('mysql-data:/var/lib/mysql');
    expect(mounts('rabbitmq')).toContain('rabbitmq-data:/var/lib/rabbitmq');
    expect(services['rabbitmq']?.hostname, 'a fixed node name keeps the queues').toBe('rabbitmq');
    const env = services['drive']?.environment ?? {};
    expect(mounts('drive').some((m) => String(env['STORAGE_DIR']).startsWith(m.split(':')[1]!))).toBe(true);
    const inboxEnv = services['inbox']?.environment ?? {};
    expect(mounts('inbox')).toContain(`inbox-files:${String(inboxEnv['INBOX_DIR'])}`);
  });

  it('lets consumers scale: no fixed container name or published port on a consumer service', () => {
    for (const role of ['analysis', 'drive', 'outbound', 'notify'])
      expect(services[role]?.container_name ?? services[role]?.ports, role).toBeUndefined();
  });

  it('declares every named volume it mounts', () => {
    for (const [name, s] of Object.entries(services))
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0] ?? '';
        if (!source.startsWith('.') && !source.startsWith('/'))
          expect(compose.volumes, `${name}: ${source}`).toHaveProperty(source);
      }
  });
});

describe('Kubernetes manifests (infra/k8s)', () => {
  it('lists every manifest file in kustomization.yaml, and only those', () => {
    const files = readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    for (const m of manifests) {
      expect(m.apiVersion && m.kind && m.metadata?.name, JSON.stringify(m).slice(0, 80)).toBeTruthy();
      if (m.metadata?.namespace) expect(m.metadata.namespace).toBe(kustomization.namespace);
    }
    expect(named('Namespace', kustomization.namespace ?? '')).toBeDefined();
  });

  it('deploys the image the Dockerfile builds, tagged with the package version', () => {
    expect(kustomization.images).toHaveLength(1);
    expect(kustomization.images?.[0]?.newTag, 'kustomization images newTag = package.json version').toBe(
      pkg.version,
    );
    for (const d of deployments)
      expect(containerOf(d).image, d.metadata?.name).toBe(kustomization.images?.[0]?.name);
  });

  it.each(ALL_ROLES)(
    'runs role %s in its own Deployment with probes, limits and a locked-down pod',
    (role) => {
      const d = deploymentOf(role);
      expect(d, `a Deployment with ROLES=${role}`).toBeDefined();
      const pod = d!.spec!.template!.spec!;
      const c = containerOf(d!);
      expect(selects(d!.spec?.selector?.matchLabels, d!.spec?.template?.metadata?.labels)).toBe(true);

      const port = c.ports?.find((p) => p.containerPort === APP_PORT);
      expect(port, `container port ${APP_PORT}`).toBeDefined();
      for (const [probe, path] of [
        [c.livenessProbe, '/healthz'],
        [c.readinessProbe, '/readyz'],
      ] as const) {
        expect(probe?.httpGet?.path).toBe(path);
        expect([port?.name, APP_PORT]).toContain(probe?.httpGet?.port);
      }

      const { requests, limits } = c.resources ?? {};
      expect(cores(requests?.['cpu'])).toBeGreaterThanOrEqual(0.5);
      expect(bytes(requests?.['memory'])).toBeGreaterThanOrEqual(512 * 2 ** 20);
      expect(cores(limits?.['cpu'])).toBeGreaterThanOrEqual(cores(requests?.['cpu']));
      expect(bytes(limits?.['memory'])).toBeGreaterThanOrEqual(bytes(requests?.['memory']));

      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
      expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
      const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
      expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, '/tmp is an emptyDir').toBeDefined();

      // In-flight work ends within 25 s of SIGTERM, which comes after any preStop pause.
      const pause = Number(c.lifecycle?.preStop?.exec?.command?.join(' ').match(/sleep (\d+)/)?.[1] ?? 0);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(25 + pause);

      for (const ref of c.envFrom ?? []) {
        if (ref.configMapRef) expect(named('ConfigMap', ref.configMapRef.name)).toBeDefined();
        if (ref.secretRef) expect(named('Secret', ref.secretRef.name)).toBeDefined();
      }
      if (pod.serviceAccountName) expect(named('ServiceAccount', pod.serviceAccountName)).toBeDefined();
    },
  );

  it('keeps the backups on a claim of the base, mounted writable at BACKUP_DIR and shared by the scheduler replicas', () => {
    const d = deploymentOf('scheduler')!;
    const backupDir = named('ConfigMap', 'postroom-config')?.data?.['BACKUP_DIR'];
    const mount = containerOf(d).volumeMounts?.find((m) => m.mountPath === backupDir);
    expect(mount, `a volume mounted at BACKUP_DIR (${backupDir})`).toBeDefined();
    expect(mount?.readOnly).not.toBe(true);
    const volume = d.spec?.template?.spec?.volumes?.find((v) => v.name === mount?.name);
    const claim = named('PersistentVolumeClaim', volume?.persistentVolumeClaim?.claimName ?? '');
    expect(claim, 'BACKUP_DIR is a PersistentVolumeClaim listed in kustomization.yaml').toBeDefined();
    expect(bytes(claim?.spec?.resources?.requests?.['storage'])).toBeGreaterThanOrEqual(2 ** 30);
    // More than one pod mounts it (replicas, or a rolling update's extra pod): one node alone may not.
    if ((d.spec?.replicas ?? 1) > 1 || d.spec?.strategy?.type !== 'Recreate')
      expect(claim?.spec?.accessModes).toContain('ReadWriteMany');
  });

  it('runs exactly one IMAP poller, replaced with Recreate, never autoscaled', () => {
    const d = deploymentOf('imap')!;
    expect(d.spec?.replicas).toBe(1);
    expect(d.spec?.strategy?.type).toBe('Recreate');
    expect(ofKind('HorizontalPodAutoscaler').map((h) => h.spec?.scaleTargetRef?.name)).not.toContain(
      d.metadata?.name,
    );
  });

  it('autoscales exactly the consumers', () => {
    const targets = ofKind('HorizontalPodAutoscaler').map((h) => {
      expect(h.spec?.scaleTargetRef?.kind).toBe('Deployment');
      expect(h.spec?.minReplicas).toBeGreaterThanOrEqual(1);
      expect(h.spec?.maxReplicas).toBeGreaterThanOrEqual(h.spec?.minReplicas ?? 1);
      return roleOf(named('Deployment', h.spec?.scaleTargetRef?.name ?? '')!);
    });
    expect(targets.sort()).toEqual([...SCALED_CONSUMERS].sort());
  });

  it('has disruption budgets that protect a pod without blocking node drains', () => {
    const budgets = ofKind('PodDisruptionBudget');
    expect(budgets.length).toBeGreaterThan(0);
    for (const pdb of budgets) {
      const d = deployments.filter((x) =>
        selects(pdb.spec?.selector?.matchLabels, x.spec?.template?.metadata?.labels),
      );
      expect(d, `${pdb.metadata?.name} selects one Deployment`).toHaveLength(1);
      const hpa = ofKind('HorizontalPodAutoscaler').find(
        (h) => h.spec?.scaleTargetRef?.name === d[0]?.metadata?.name,
      );
      const fewest = hpa?.spec?.minReplicas ?? d[0]?.spec?.replicas ?? 1;
      if (pdb.spec?.minAvailable !== undefined) expect(Number(pdb.spec.minAvailable)).toBeLessThan(fewest);
      else expect(Number(pdb.spec?.maxUnavailable)).toBeGreaterThanOrEqual(1);
    }
    for (const role of ALL_ROLES.filter((r) => r !== 'imap' && r !== 'inbox'))
      expect(
        budgets.some((p) =>
          selects(p.spec?.selector?.matchLabels, deploymentOf(role)?.spec?.template?.metadata?.labels),
        ),
        `a budget for ${role}`,
      ).toBe(true);
  });

  it('routes the Ingress to Services of the right pods on the image port, as NGINX does in Compose', () => {
    const ingress = ofKind('Ingress');
    expect(ingress).toHaveLength(1);
    const paths = ingress[0]?.spec?.rules?.flatMap((r) => r.http?.paths ?? []) ?? [];
    expect(paths.map((p) => p.path).sort()).toEqual(Object.keys(PUBLIC_ROUTES).sort());
    for (const p of paths) {
      const svc = named('Service', p.backend.service.name);
      expect(svc, p.backend.service.name).toBeDefined();
      const svcPort = svc!.spec?.ports?.find(
        (x) => x.name === p.backend.service.port.name || x.port === p.backend.service.port.number,
      );
      expect(svcPort, `${p.path}: Service port`).toBeDefined();
      const pods = deployments.filter((d) =>
        selects(svc!.spec?.selector, d.spec?.template?.metadata?.labels),
      );
      expect(pods.map(roleOf), p.path).toEqual([PUBLIC_ROUTES[p.path]]);
      const c = containerOf(pods[0]!);
      const target = c.ports?.find(
        (x) => x.name === svcPort!.targetPort || x.containerPort === svcPort!.targetPort,
      );
      expect(target?.containerPort, `${p.path}: targetPort`).toBe(APP_PORT);
    }
  });

  it('wires every variable through the ConfigMap, the Secret (secrets only there) and ROLES', () => {
    const config = named('ConfigMap', 'postroom-config')?.data ?? {};
    const secret = named('Secret', 'postroom-secrets')?.stringData ?? {};
    const wired = new Set([...Object.keys(config), ...Object.keys(secret), 'ROLES']);
    for (const v of requiredVariables()) expect(wired.has(v), v).toBe(true);
    for (const v of SECRET_VARIABLES) {
      expect(config, v).not.toHaveProperty(v);
      expect(secret, v).toHaveProperty(v);
    }
    expect(config['ROLES'], 'ROLES is set per Deployment').toBeUndefined();
    expect(config['HTTP_PORT']).toBe(String(APP_PORT));
    // Placeholders only: empty, or marked CHANGE_ME.
    for (const [k, v] of Object.entries(secret)) expect(v === '' || v.includes('CHANGE_ME'), k).toBe(true);
    for (const s of ofKind('Secret'))
      expect(s.data, `${s.metadata?.name} has no encoded data`).toBeUndefined();
  });

  it('gives every Deployment a configuration the process accepts', () => {
    const config = named('ConfigMap', 'postroom-config')?.data ?? {};
    const secret = named('Secret', 'postroom-secrets')?.stringData ?? {};
    for (const d of deployments) {
      const env = {
        ...config,
        ...secret,
        ...Object.fromEntries((containerOf(d).env ?? []).map((e) => [e.name, e.value ?? ''])),
      };
      expect(() => loadConfig(env), d.metadata?.name).not.toThrow();
    }
  });
});

describe('CI workflow (.github/workflows/ci.yml)', () => {
  const text = read('.github/workflows/ci.yml');
  const ci = parse(text) as {
    jobs: Record<
      string,
      { services?: Record<string, { image: string }>; steps?: { run?: string; uses?: string }[] }
    >;
  };
  const jobs = Object.values(ci.jobs);
  const runs = jobs.flatMap((j) => j.steps ?? []).map((s) => `${s.run ?? ''} ${s.uses ?? ''}`);

  it('tests against RabbitMQ and MySQL service containers, with Dovecot installed', () => {
    const images = jobs.flatMap((j) => Object.values(j.services ?? {}).map((s) => s.image));
    expect(images).toEqual(expect.arrayContaining(['rabbitmq:3-management']));
    expect(images.some((i) => /^mysql:8/.test(i))).toBe(true);
    expect(runs.some((r) => r.includes('scripts/install-dovecot.sh'))).toBe(true);
    expect(runs.some((r) => /\bnpm test\b/.test(r))).toBe(true);
  });

  it('lints, type-checks, builds the image and audits production dependencies', () => {
    for (const step of [/\beslint\b|npm run lint/, /tsc --noEmit|npm run typecheck/, /prettier --check/])
      expect(
        runs.some((r) => step.test(r)),
        String(step),
      ).toBe(true);
    expect(runs.some((r) => /docker\/build-push-action|docker build/.test(r))).toBe(true);
    expect(runs.some((r) => r.includes('npm audit --omit=dev --audit-level=high'))).toBe(true);
  });
});

describe('docker-compose.yml, profile observability', () => {
  const prometheus = parse(read('infra/prometheus/prometheus.yml')) as {
    scrape_configs: Array<{
      job_name: string;
      dns_sd_configs?: Array<{ names: string[]; port: number }>;
      static_configs?: Array<{ targets: string[] }>;
    }>;
  };

  it('runs Prometheus, Grafana, Loki and Promtail only in that profile, each with a health check', () => {
    for (const name of ['prometheus', 'grafana', 'loki', 'promtail']) {
      expect(services[name]?.profiles, name).toEqual(['observability']);
      expect(services[name]?.healthcheck, name).toBeDefined();
    }
  });

  it('scrapes every Postroom container of the stack and RabbitMQ', () => {
    const postroom = prometheus.scrape_configs.find((c) => c.job_name === 'postroom');
    const scraped = new Set(postroom?.dns_sd_configs?.flatMap((d) => d.names) ?? []);
    expect(postroom?.dns_sd_configs?.[0]?.port).toBe(APP_PORT);
    for (const [name, s] of appServices) {
      if (s.environment?.['ROLES'] === undefined || name === 'migrate') continue;
      expect(scraped.has(name), `${name} is not scraped`).toBe(true);
    }
    for (const name of scraped) expect(services[name], `${name} is scraped but not a service`).toBeDefined();
    const rabbit = prometheus.scrape_configs.find((c) => c.job_name === 'rabbitmq');
    expect(rabbit?.static_configs?.[0]?.targets).toEqual(['rabbitmq:15692']);
    expect(read('infra/rabbitmq/enabled_plugins')).toContain('rabbitmq_prometheus');
  });

  it('mounts files that exist: the alert rules, the dashboards and their provisioning, Loki and Promtail', () => {
    for (const name of ['prometheus', 'grafana', 'loki', 'promtail', 'rabbitmq']) {
      const mounts = ((services[name] as { volumes?: string[] }).volumes ?? []).filter((v) =>
        v.startsWith('./'),
      );
      expect(mounts.length, name).toBeGreaterThan(0);
      for (const v of mounts)
        expect(existsSync(join(REPO, v.split(':')[0] ?? '')), `${name}: ${v}`).toBe(true);
    }
    const provider = parse(read('infra/grafana/provisioning/dashboards/postroom.yaml')) as {
      providers: Array<{ options: { path: string } }>;
    };
    const grafanaMounts = (services['grafana'] as { volumes?: string[] }).volumes ?? [];
    expect(grafanaMounts).toContain(`./infra/grafana/dashboards:${provider.providers[0]?.options.path}:ro`);
  });
});
