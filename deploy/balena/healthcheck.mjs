// Container health check: exit 0 when Outpost's /healthz answers 200, else 1.
//
// The runtime image has Node but no curl. It asks the port and scheme the daemon was started with:
// OUTPOST_HTTP_PORT (default 8080), https when OUTPOST_HTTP_TLS_CERT is set (the certificate is often
// self-signed on a LAN, and this is a loopback liveness probe, so it is not verified). /healthz needs no
// token and is exempt from the rate limit. A port set only in a config file is not seen here: set
// OUTPOST_HTTP_PORT too.
import http from 'node:http';
import https from 'node:https';

const TIMEOUT_MS = 4000;

const port = Number(process.env.OUTPOST_HTTP_PORT || 8080);
const tls = Boolean(process.env.OUTPOST_HTTP_TLS_CERT);
const client = tls ? https : http;

const request = client.get(
  { host: '127.0.0.1', port, path: '/healthz', timeout: TIMEOUT_MS, rejectUnauthorized: false },
  (response) => {
    response.resume();
    process.exit(response.statusCode === 200 ? 0 : 1);
  },
);
request.on('timeout', () => request.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
request.on('error', (error) => {
  console.error(`healthcheck: ${error.message}`);
  process.exit(1);
});
