'use strict';

// Throwaway certificates for the TLS tests, made with openssl at test time:
// a CA, a server certificate it signed (for 127.0.0.1 and localhost), a
// client certificate it signed, and a second CA that signed nothing of these.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA (key and self-signed certificate) named `name`, in `dir`. */
function makeCa(dir, name) {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`], dir);
}

/** A key and a certificate signed by `ca`, with `extensions` (an openssl extfile's text). */
function makeSigned(dir, name, ca, extensions) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir
  );
}

/**
 * Makes the certificates in a new temporary folder. Returns their file paths
 * and `pem(name)`, a file's text.
 */
function makeCertificates() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alt-session-tls-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  // Client use too: the nodes of a TLS cluster present it to each other on the cluster bus.
  makeSigned(dir, 'server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  makeSigned(dir, 'client', 'ca', 'extendedKeyUsage=clientAuth\n');
  const file = (name) => path.join(dir, name);
  return {
    dir,
    ca: file('ca.crt'),
    otherCa: file('other-ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    clientCert: file('client.crt'),
    clientKey: file('client.key'),
    pem: (name) => fs.readFileSync(file(name), 'utf8'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

module.exports = { makeCertificates };
