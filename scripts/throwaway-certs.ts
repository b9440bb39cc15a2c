/**
 * Throwaway TLS certificates for the test servers (Dovecot, MariaDB, RabbitMQ): a private CA and a
 * server certificate it signs for 127.0.0.1 and localhost, made with openssl in a few milliseconds.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';

/** Where `makeCertificates` put the PEM files. */
export interface CertificateFiles {
  /** The CA's certificate: what a client must trust. */
  caFile: string;
  /** The server's certificate (SAN `IP:127.0.0.1, DNS:localhost` and any `hosts` asked for). */
  certFile: string;
  /** The server's private key (unencrypted). */
  keyFile: string;
}

/** Runs openssl; a missing binary fails with a message saying what needs it and how to get it. */
async function openssl(args: string[], cwd: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('openssl', args, { cwd }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        return reject(
          new Error(
            'openssl is not installed (not on PATH): throwaway TLS servers of the tests ' +
              'need it to make their certificates (Debian: apt-get install openssl)',
            { cause: err },
          ),
        );
      reject(new Error(`openssl ${args[0]} failed: ${stderr.trim() || err.message}`, { cause: err }));
    });
  });
}

/**
 * The openssl configuration of the throwaway certificates: a CA that may only sign, and a server
 * certificate for 127.0.0.1 and localhost (and `hosts`), as a real private CA would issue it (clients
 * check the SAN, not the CN). Our own file, so the system's openssl.cnf cannot add or clash with
 * extensions.
 */
const opensslCnf = (hosts: readonly string[]) => `[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = Postroom throwaway test CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${['IP:127.0.0.1', 'DNS:localhost', ...hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`))].join(', ')}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/**
 * Makes a CA and a server certificate it signs, valid two days, in `<dir>/tls`. P-256 keys: making
 * them takes milliseconds where RSA takes a noticeable part of a second. The server presents its own
 * certificate only, not the CA's, as servers with a private CA usually do: a client that does not
 * trust the CA fails with "unable to verify the first certificate". `hosts`: names or addresses the
 * server is reached at besides 127.0.0.1 and localhost (a container engine's address, say).
 */
export async function makeCertificates(
  dir: string,
  hosts: readonly string[] = [],
): Promise<CertificateFiles> {
  const out = join(dir, 'tls');
  await mkdir(out, { mode: 0o755 });
  await writeFile(
    join(out, 'openssl.cnf'),
    opensslCnf(hosts.filter((h) => h !== '127.0.0.1' && h !== 'localhost')),
  );
  // Run in `out` with file names free of spaces, so each command can be written as one line.
  const newKey = '-config openssl.cnf -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1';
  const steps = [
    // The CA, self-signed, with the `ca` extensions.
    `req ${newKey} -x509 -days 2 -keyout ca.key -out ca.pem`,
    // The server's key and signing request...
    `req ${newKey} -new -subj /CN=127.0.0.1 -keyout server.key -out server.csr`,
    // ... signed by the CA with the `server` extensions.
    `x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x${randomBytes(8).toString('hex')} ` +
      '-days 2 -extfile openssl.cnf -extensions server -out server.pem',
  ];
  for (const step of steps) await openssl(step.split(' '), out);
  return { caFile: join(out, 'ca.pem'), certFile: join(out, 'server.pem'), keyFile: join(out, 'server.key') };
}
