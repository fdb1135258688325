/** Loopback ports for the registries, radosgw and proxies that scripts and tests start. */
import { createServer } from 'node:net';

/** A TCP port free on 127.0.0.1 right now (bound, read, released): another process may take it before the caller binds. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close((err) => (err || port === 0 ? reject(err ?? new Error('no TCP address')) : resolve(port)));
    });
  });
}
