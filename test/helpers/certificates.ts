import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI, and a
 * mosquitto password file (gateway/correct-horse, fleet/battery-staple).
 */
export function makeCertificates(dir: string) {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=outpost-test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  );
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const name of ['server', 'client']) {
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    const ext = name === 'server' ? ['-extfile', 'server.ext'] : [];
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      ...ext,
    );
  }
  execFileSync('mosquitto_passwd', ['-b', '-c', join(dir, 'passwd'), 'gateway', 'correct-horse']);
  // A user of its own for the fleet's upstream broker.
  execFileSync('mosquitto_passwd', ['-b', join(dir, 'passwd'), 'fleet', 'battery-staple']);
  return (file: string) => join(dir, file);
}
