/**
 * Control server: a root-only unix socket answering newline-delimited JSON requests by
 * dispatching `cmd` to a handler map, so new commands (up, down, reload, routes) are one entry.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { StatusReport } from '../daemon.js';
import {
  ControlError,
  type ControlRequest,
  type ControlResponse,
  encode,
  LineSplitter,
  parseRequest,
} from './protocol.js';

export type Handler = (args: unknown) => unknown;

export interface ControlHandlers {
  /** args: StatusOptions (daemon.ts statusOptions checks them). */
  status: (args?: unknown) => StatusReport | Promise<StatusReport>;
  [cmd: string]: Handler;
}

export interface ControlServerOptions {
  /** Called for connection-level errors worth a log line (never for a malformed request). */
  onError?: (err: Error) => void;
}

export class ControlServer {
  readonly path: string;
  readonly #handlers: ControlHandlers;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #onError: (err: Error) => void;
  #listening = false;

  constructor(path: string, handlers: ControlHandlers, opts: ControlServerOptions = {}) {
    this.path = path;
    this.#handlers = handlers;
    this.#onError = opts.onError ?? (() => {});
    this.#server = createServer((s) => this.#accept(s));
  }

  /** Creates the socket (parent dir 0700 if missing, stale socket removed, mode 0600). */
  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    await removeStaleSocket(this.path);
    // umask closes the window between bind() and chmod() in which the socket has default perms.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(this.path, () => {
          this.#server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    this.#listening = true;
    chmodSync(this.path, 0o600);
    this.#server.on('error', (err) => this.#onError(err));
  }

  /** Stops accepting, drops open connections and removes the socket file. */
  async close(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone (node may unlink it itself); nothing to clean up.
    }
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.setEncoding('utf8');
    const lines = new LineSplitter();
    // Requests on one connection are answered in order, one at a time.
    let queue = Promise.resolve();
    socket.on('data', (chunk: string) => {
      let batch: string[];
      try {
        batch = lines.push(chunk);
      } catch (err) {
        socket.end(encode({ ok: false, error: `malformed request: ${(err as Error).message}` }));
        return;
      }
      for (const line of batch) {
        queue = queue.then(async () => {
          const res = await this.#dispatch(line);
          if (!socket.destroyed) socket.write(encode(res));
        });
      }
    });
    socket.on('error', (err) => {
      // EPIPE/ECONNRESET from a client that went away is normal; anything else is worth a line.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPIPE' && code !== 'ECONNRESET') this.#onError(err);
    });
    socket.on('close', () => this.#sockets.delete(socket));
  }

  async #dispatch(line: string): Promise<ControlResponse> {
    const req = parseRequest(line);
    if ('error' in req) return { ...(req.id !== undefined && { id: req.id }), ok: false, error: req.error };
    const idPart = req.id !== undefined ? { id: req.id } : {};
    const handler = Object.hasOwn(this.#handlers, req.cmd) ? this.#handlers[req.cmd] : undefined;
    if (!handler) return { ...idPart, ok: false, error: `unknown command '${truncate(req.cmd)}'` };
    try {
      const result = await handler((req as ControlRequest).args);
      return { ...idPart, ok: true, result: result ?? null };
    } catch (err) {
      return { ...idPart, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }
}

/** Creates and starts a control server. */
export async function startControlServer(
  path: string,
  handlers: ControlHandlers,
  opts?: ControlServerOptions,
): Promise<ControlServer> {
  const server = new ControlServer(path, handlers, opts);
  await server.listen();
  return server;
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}...` : s;
}

/**
 * A socket file left by a crashed daemon is removed; a live one (another twinsecd answering) or
 * a non-socket file at the path is an error rather than something to delete.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ControlError(`control socket path ${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new ControlError(`control socket ${path} is in use (is another twinsecd running?)`);
  unlinkSync(path);
}
