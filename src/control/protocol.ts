/**
 * Control protocol: newline-delimited JSON over a unix stream socket.
 *   request  {"id":1,"cmd":"status","args":{...}}
 *   response {"id":1,"ok":true,"result":...} | {"id":1,"ok":false,"error":"..."}
 * `id` is echoed so a client may pipeline requests; it is omitted when the request had none
 * (or could not be parsed).
 */
import { TwinsecError } from '../errors.js';

export const DEFAULT_SOCKET = '/run/twinsec/control.sock';
/** Requests are tiny; a longer line is a confused or hostile client. */
export const MAX_LINE = 64 * 1024;

export type RequestId = string | number;

export interface ControlRequest {
  id?: RequestId;
  cmd: string;
  args?: unknown;
}

export type ControlResponse =
  | { id?: RequestId; ok: true; result: unknown }
  | { id?: RequestId; ok: false; error: string };

/** The daemon is not reachable on its control socket (not running, wrong path, no permission). */
export class ControlUnreachableError extends TwinsecError {
  constructor(message: string) {
    super('ERR_CONTROL_UNREACHABLE', message);
  }
}

/** The daemon answered with an error, or answered something that is not a response. */
export class ControlError extends TwinsecError {
  constructor(message: string) {
    super('ERR_CONTROL', message);
  }
}

/**
 * What `status` lists (control command args; `twinsec status --connection --limit --offset`). By
 * default everything: the JSON is the machine interface, and at 10,000 tunnels it is still a few
 * MB built in well under a second (bench/status-scale.ts). A page bounds the CHILD SA entries per
 * connection, counts stay complete.
 */
export interface StatusOptions {
  /** Only this connection. */
  connection?: string;
  /** At most this many CHILD SA entries per connection... */
  limit?: number;
  /** ...starting after this many. */
  offset?: number;
}

/** Control command arguments for `status`, checked (a bad value is the client's error). */
export function statusOptions(args: unknown): StatusOptions {
  if (args === undefined || args === null) return {};
  if (typeof args !== 'object' || Array.isArray(args))
    throw new ControlError('status: args must be an object');
  const { connection, limit, offset } = args as Record<string, unknown>;
  const o: StatusOptions = {};
  if (connection !== undefined) {
    if (typeof connection !== 'string') throw new ControlError('status: connection must be a string');
    o.connection = connection;
  }
  for (const [k, v] of [
    ['limit', limit],
    ['offset', offset],
  ] as const) {
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw new ControlError(`status: ${k} must be a non-negative integer`);
    o[k] = v;
  }
  return o;
}

/** Parses one request line; returns an error string (with the id if one was readable) when malformed. */
export function parseRequest(line: string): ControlRequest | { error: string; id?: RequestId } {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return { error: 'malformed request: not JSON' };
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    return { error: 'malformed request: expected a JSON object' };
  }
  const { id, cmd, args } = msg as Record<string, unknown>;
  const validId = typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
  if (id !== undefined && !validId) return { error: 'malformed request: id must be a string or number' };
  const rid = id as RequestId | undefined;
  if (typeof cmd !== 'string' || cmd === '') {
    return {
      error: 'malformed request: cmd must be a non-empty string',
      ...(rid !== undefined && { id: rid }),
    };
  }
  return { cmd, ...(rid !== undefined && { id: rid }), ...(args !== undefined && { args }) };
}

/** Parses one response line from the daemon. */
export function parseResponse(line: string): ControlResponse {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new ControlError('malformed response from twinsecd: not JSON');
  }
  if (typeof msg !== 'object' || msg === null || typeof (msg as { ok?: unknown }).ok !== 'boolean') {
    throw new ControlError('malformed response from twinsecd');
  }
  return msg as ControlResponse;
}

export function encode(msg: ControlRequest | ControlResponse): string {
  return `${JSON.stringify(msg)}\n`;
}

/**
 * Splits a byte stream into lines. `push` returns complete lines; it throws once the pending
 * partial line exceeds `max` so a peer cannot make us buffer without bound.
 */
export class LineSplitter {
  #pending = '';
  constructor(readonly max = MAX_LINE) {}
  push(chunk: string): string[] {
    if (!chunk.includes('\n')) {
      // A long line (a status of thousands of SAs) comes in many chunks: append without splitting
      // all of it again each time, which made reading it quadratic.
      this.#pending += chunk;
      if (this.#pending.length > this.max) throw new ControlError(`line longer than ${this.max} bytes`);
      return [];
    }
    const parts = (this.#pending + chunk).split('\n');
    this.#pending = parts.pop()!;
    if (this.#pending.length > this.max || parts.some((p) => p.length > this.max)) {
      throw new ControlError(`line longer than ${this.max} bytes`);
    }
    return parts.map((p) => p.replace(/\r$/, '')).filter((p) => p.trim() !== '');
  }
}
