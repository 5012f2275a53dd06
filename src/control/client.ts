/**
 * Control client: one request per connection, which is all the CLI needs and keeps failure
 * handling trivial (a half-read response cannot confuse a later request).
 */
import { connect } from 'node:net';
import {
  ControlError,
  type ControlResponse,
  ControlUnreachableError,
  encode,
  LineSplitter,
  parseResponse,
} from './protocol.js';

export interface RequestOptions {
  /** Give up after this many milliseconds (default 5000). */
  timeoutMs?: number;
}

/** Sends one command and returns the raw response (ok or not). Throws only on transport failures. */
export function request(
  socketPath: string,
  cmd: string,
  args?: unknown,
  opts: RequestOptions = {},
): Promise<ControlResponse> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    // A complete status is about 240 bytes per CHILD SA (2.3 MB at 10,000 tunnels): room for
    // some 250,000; beyond that, page it (--limit).
    const lines = new LineSplitter(64 * 1024 * 1024);
    let connected = false;
    let settled = false;
    const finish = (err: Error | null, res?: ControlResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(
      () => finish(new ControlUnreachableError(`cannot reach twinsecd at ${socketPath}: timed out`)),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.once('connect', () => {
      connected = true;
      sock.write(encode({ id: 1, cmd, ...(args !== undefined && { args }) }));
    });
    sock.on('data', (chunk: string) => {
      try {
        const [line] = lines.push(chunk);
        if (line !== undefined) finish(null, parseResponse(line));
      } catch (err) {
        finish(err as Error);
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'ENOENT' ? 'no such socket' : err.code === 'EACCES' ? 'permission denied' : err.message;
      finish(
        connected
          ? new ControlError(`connection to twinsecd failed: ${why}`)
          : new ControlUnreachableError(`cannot reach twinsecd at ${socketPath}: ${why}`),
      );
    });
    sock.on('close', () => finish(new ControlError('twinsecd closed the connection without answering')));
  });
}

/** Sends one command and returns its result; a daemon-side error becomes a ControlError. */
export async function call(
  socketPath: string,
  cmd: string,
  args?: unknown,
  opts?: RequestOptions,
): Promise<unknown> {
  const res = await request(socketPath, cmd, args, opts);
  if (!res.ok) throw new ControlError(res.error);
  return res.result;
}
