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

/** A protocol failure that ends a negotiation (maps to an IKE error notify). */
export class ProtocolError extends TwinsecError {
  readonly notify: number;
  constructor(notify: number, message: string) {
    super('ERR_PROTOCOL', message);
    this.notify = notify;
  }
}

/** A cryptographic failure (bad ICV, bad padding, invalid public value). */
export class CryptoError extends TwinsecError {
  constructor(message: string) {
    super('ERR_CRYPTO', message);
  }
}
