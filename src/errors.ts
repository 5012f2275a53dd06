/**
 * One error base with a stable `code` per kind: callers branch on codes, never on messages.
 * Messages must never carry secrets (PSKs, keys); they name fields and causes only.
 */
export class TwinsecError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A wire message or payload that does not parse: dropped and counted by the caller. */
export class WireError extends TwinsecError {
  constructor(message: string) {
    super('ERR_WIRE', message);
  }
}

/** A configuration problem; `issues` lists every problem as "path: message". */
export class ConfigError extends TwinsecError {
  readonly issues: string[];
  constructor(issues: string[]) {
    super('ERR_CONFIG', `invalid configuration:\n  ${issues.join('\n  ')}`);
    this.issues = issues;
  }
}

/**
 * An IKE negotiation or exchange failed. `reason` is the stable token the bus, logs and metrics
 * carry (auth_failed, no_proposal_chosen, ts_unacceptable, timeout, ...); each protocol version
 * maps it to the notify that answers it (v2/errors.ts). The message names the cause, never a key.
 */
export class IkeError extends TwinsecError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(`ERR_IKE_${reason.toUpperCase()}`, message);
    this.reason = reason;
  }

  /** Any error as an IkeError: a failure we did not foresee is an invalid response or request. */
  static from(err: unknown, fallback = 'invalid_response'): IkeError {
    return err instanceof IkeError ? err : new IkeError(fallback, (err as Error)?.message ?? String(err));
  }
}

/** A cryptographic failure (bad ICV, bad padding, invalid public value). */
export class CryptoError extends TwinsecError {
  constructor(message: string) {
    super('ERR_CRYPTO', message);
  }
}
