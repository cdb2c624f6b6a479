/**
 * A loopback TCP proxy that can be told to stall: while paused it still accepts connections and reads bytes,
 * but forwards nothing in either direction, which is what a hung dependency (a wedged server, a dead network
 * path with no RST) looks like to a client. Refusing connections is a different fault: use `refuse()`.
 */
import net from 'node:net';

export interface StallProxy {
  /** Port on 127.0.0.1 to point the client at instead of the upstream. */
  readonly port: number;
  /** `upstreamUrl` with its host and port replaced by the proxy's. */
  url(upstreamUrl: string): string;
  /** Stop forwarding: new and existing connections are accepted and read, nothing goes through. */
  pause(): void;
  /** Forward again (bytes read while paused are dropped: the peers' sessions are as good as broken). */
  resume(): void;
  /** Close the listener so new connections are refused, and reset existing ones. */
  refuse(): Promise<void>;
  readonly paused: boolean;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startStallProxy(upstream: { host: string; port: number }): Promise<StallProxy> {
  let paused = false;
  let accepted = 0;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((client) => {
    accepted += 1;
    sockets.add(client);
    const upstreamSocket = net.connect(upstream.port, upstream.host);
    sockets.add(upstreamSocket);
    const forget = () => {
      sockets.delete(client);
      sockets.delete(upstreamSocket);
      client.destroy();
      upstreamSocket.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstreamSocket.on('error', forget).on('close', forget);
    // Data is read either way (so the sender's writes complete, as over a real network); forwarded only when live.
    client.on('data', (chunk) => {
      if (!paused) upstreamSocket.write(chunk);
    });
    upstreamSocket.on('data', (chunk) => {
      if (!paused) client.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  const closeServer = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });

  return {
    port,
    url(upstreamUrl) {
      const url = new URL(upstreamUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
    },
    refuse: closeServer,
    get paused() {
      return paused;
    },
    get accepted() {
      return accepted;
    },
    close: closeServer,
  };
}
