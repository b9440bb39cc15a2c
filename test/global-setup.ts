import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { createConnection } from 'mysql2';
import { findDovecot } from '../scripts/throwaway-dovecot.js';
import { containerUlimits, DEFAULT_DOVECOT_IMAGE, RUN_LABEL, testcontainers } from './containers.js';
import { testAmqpUrl, testMysqlServer } from './env.js';
import { placeTools } from './tools-container.js';

/** Hides the password of a URL for messages. */
const redact = (url: string) => url.replace(/:[^:@/]*@/, ':***@');

async function rabbitAnswers(url: string): Promise<string | null> {
  try {
    const c = await connect(url);
    await c.close();
    return null;
  } catch (err) {
    return String(err);
  }
}

async function mysqlAnswers(url: string): Promise<string | null> {
  const conn = createConnection({ uri: url, connectTimeout: 5000 }).promise();
  try {
    await conn.query('SELECT 1');
    return null;
  } catch (err) {
    return String(err);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Calls `check` until it answers null (up to `ms`); the last problem otherwise. */
async function until(check: () => Promise<string | null>, ms: number): Promise<string | null> {
  const end = Date.now() + ms;
  let problem = await check();
  while (problem !== null && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    problem = await check();
  }
  return problem;
}

/** A service container started for this test run. */
interface Started {
  stop(): Promise<unknown>;
}

/**
 * Starts RabbitMQ and/or MySQL with testcontainers (the machine's Docker, or podman's Docker-compatible
 * socket through DOCKER_HOST), waits until they answer, and points the tests at them through the
 * environment the test workers inherit (AMQP_URL, MYSQL_URL, TEST_RABBITMQ_API). Images:
 * TEST_RABBITMQ_IMAGE (rabbitmq:3.13-management) and TEST_MYSQL_IMAGE (mysql:8.4).
 */
async function startContainers(need: { rabbitmq: boolean; mysql: boolean }): Promise<Started[]> {
  const { GenericContainer, getContainerRuntimeClient } = await testcontainers();
  await getContainerRuntimeClient();
  const started: Started[] = [];
  const ulimits = containerUlimits();
  try {
    if (need.rabbitmq) {
      const image = process.env['TEST_RABBITMQ_IMAGE'] ?? 'rabbitmq:3.13-management';
      console.log(`test services: starting RabbitMQ from ${image}`);
      const c = await new GenericContainer(image)
        .withUlimits(ulimits)
        .withEnvironment({ RABBITMQ_DEFAULT_USER: 'guest', RABBITMQ_DEFAULT_PASS: 'guest' })
        .withExposedPorts(5672, 15672)
        .withStartupTimeout(180_000)
        .start();
      started.push(c);
      const host = c.getHost();
      const url = `amqp://guest:guest@${host}:${c.getMappedPort(5672)}`;
      const problem = await until(() => rabbitAnswers(url), 180_000);
      if (problem)
        throw new Error(`RabbitMQ in a container (${image}) did not answer at ${redact(url)}: ${problem}`);
      process.env['AMQP_URL'] = url;
      // test/process.ts makes vhosts through the management API when rabbitmqctl is not on this machine.
      process.env['TEST_RABBITMQ_API'] = `http://guest:guest@${host}:${c.getMappedPort(15672)}/api`;
    }
    if (need.mysql) {
      const image = process.env['TEST_MYSQL_IMAGE'] ?? 'mysql:8.4';
      console.log(`test services: starting MySQL from ${image}`);
      const c = await new GenericContainer(image)
        .withUlimits(ulimits)
        .withEnvironment({ MYSQL_ALLOW_EMPTY_PASSWORD: 'yes' })
        .withExposedPorts(3306)
        .withStartupTimeout(180_000)
        .start();
      started.push(c);
      const url = `mysql://root@${c.getHost()}:${c.getMappedPort(3306)}/`;
      const problem = await until(() => mysqlAnswers(url), 180_000);
      if (problem) throw new Error(`MySQL in a container (${image}) did not answer at ${url}: ${problem}`);
      process.env['MYSQL_URL'] = `${url}postroom`;
    }
  } catch (err) {
    await Promise.allSettled(started.map((c) => c.stop()));
    throw err;
  }
  return started;
}

/**
 * Decides where the IMAP tests' Dovecot runs. Each test file starts its own server (test/dovecot.ts);
 * with a local dovecot binary it runs on this machine, as before. In a container when TEST_DOVECOT=
 * container or TEST_SERVICES=containers asks for it, or when no dovecot is installed and a container
 * engine answers: then the image (TEST_DOVECOT_IMAGE, else dovecot/dovecot:2.3.21) is pulled here
 * once, not by every worker at once, and TEST_DOVECOT=container tells the workers. Resolves with what
 * the teardown must clean up, or null.
 *
 * Asked for explicitly, a missing engine or image fails the run at once. Looked for only because
 * dovecot is missing, it does not: the other tests run, and the IMAP tests fail saying why
 * (TEST_DOVECOT_UNAVAILABLE).
 */
async function placeDovecot(forced: boolean): Promise<{ run: string } | null> {
  const asked = forced || process.env['TEST_DOVECOT'] === 'container';
  if (!asked && findDovecot()) return null;
  const image = process.env['TEST_DOVECOT_IMAGE'] ?? DEFAULT_DOVECOT_IMAGE;
  try {
    const { getContainerRuntimeClient, ImageName } = await testcontainers();
    const client = await getContainerRuntimeClient();
    const name = ImageName.fromString(image);
    if (!(await client.image.exists(name))) {
      console.log(`test services: pulling ${image} for Dovecot`);
      await client.image.pull(name);
      if (!(await client.image.exists(name)))
        throw new Error(`the image ${image} could not be pulled (TEST_DOVECOT_IMAGE names another)`);
    }
  } catch (err) {
    const why = `Dovecot in a container (${image}) is not available: ${String(err)}`;
    if (asked) throw new Error(why, { cause: err });
    process.env['TEST_DOVECOT_UNAVAILABLE'] = why;
    console.log(`test services: no dovecot installed, and ${why}; the IMAP tests will fail`);
    return null;
  }
  const run = randomUUID();
  Object.assign(process.env, {
    TEST_DOVECOT: 'container',
    TEST_DOVECOT_IMAGE: image,
    TEST_CONTAINER_RUN: run,
  });
  console.log(`test services: Dovecot from ${image}, a container for each test file that starts one`);
  return { run };
}

/** Removes the containers of this run that a test file left behind (a worker that died, say). */
async function removeLeftovers(run: string): Promise<void> {
  const { getContainerRuntimeClient } = await testcontainers();
  const client = await getContainerRuntimeClient();
  const left = await client.container.dockerode.listContainers({
    all: true,
    filters: { label: [`${RUN_LABEL}=${run}`] },
  });
  await Promise.allSettled(left.map((c) => client.container.getById(c.Id).remove({ force: true })));
  if (left.length > 0) console.log(`test services: removed ${left.length} Dovecot container(s) left running`);
}

/**
 * Makes sure the real services the tests need answer, and fails fast with a clear message when they
 * do not. Local services (the default URLs, or AMQP_URL / MYSQL_URL as CI sets them) are used as they
 * are. When one of them does not answer at its default URL (nothing set) and a container engine is
 * available, it is started with testcontainers instead, and stopped when the run ends.
 * TEST_SERVICES=containers starts both in containers whatever answers locally, and Dovecot too
 * (placeDovecot). The outside programs CI installs (Chromium, soffice, pdftoppm, mariadb-dump,
 * promtool...) run from a tools image when they are missing here (test/tools-container.ts).
 */
export default async function setup(): Promise<() => Promise<void>> {
  const forced = process.env['TEST_SERVICES'] === 'containers';
  const rabbitProblem = forced ? 'TEST_SERVICES=containers' : await rabbitAnswers(testAmqpUrl());
  const mysqlProblem = forced ? 'TEST_SERVICES=containers' : await mysqlAnswers(testMysqlServer());
  const need = {
    rabbitmq: rabbitProblem !== null && (forced || process.env['AMQP_URL'] === undefined),
    mysql: mysqlProblem !== null && (forced || process.env['MYSQL_URL'] === undefined),
  };
  // A service the user pointed us at explicitly is never replaced: say it does not answer.
  if (rabbitProblem !== null && !need.rabbitmq)
    throw new Error(`RabbitMQ does not answer at ${redact(testAmqpUrl())}: ${rabbitProblem}`);
  if (mysqlProblem !== null && !need.mysql)
    throw new Error(`MySQL/MariaDB does not answer at ${testMysqlServer()}: ${mysqlProblem}`);

  let started: Started[] = [];
  if (need.rabbitmq || need.mysql) {
    try {
      started = await startContainers(need);
    } catch (err) {
      const missing = [
        need.rabbitmq ? `RabbitMQ (${rabbitProblem})` : '',
        need.mysql ? `MySQL (${mysqlProblem})` : '',
      ].filter(Boolean);
      throw new Error(
        `${missing.join(' and ')} do(es) not answer on the default port, and starting them in containers ` +
          `failed: ${String(err)}. Start them locally (README, "Tests") or make Docker available.`,
      );
    }
  }
  let dovecot: { run: string } | null = null;
  let tools: (() => Promise<void>) | null = null;
  try {
    dovecot = await placeDovecot(forced);
    // Chromium, LibreOffice, poppler, the MariaDB client and promtool: local, or from the tools image.
    tools = await placeTools();
  } catch (err) {
    await Promise.allSettled(started.map((c) => c.stop()));
    if (dovecot) await removeLeftovers(dovecot.run).catch(() => undefined);
    throw err;
  }
  return async () => {
    await Promise.allSettled(started.map((c) => c.stop()));
    if (dovecot) await removeLeftovers(dovecot.run).catch(() => undefined);
    await tools?.().catch(() => undefined);
  };
}
