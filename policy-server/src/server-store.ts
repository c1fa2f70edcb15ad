/**
 * The loaded policy and its versions. A version is `<counter>-<sha256 prefix>`: the counter goes
 * up on every load that changes the content. The file is watched (its directory, so editors that
 * write a new file and rename it are seen), changes are debounced; an invalid file is logged with
 * file:line:column and the last good version keeps serving.
 */
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { compileOrThrow, type EngineOptions, PolicyEngine, policyHash } from "./engine.js";
import { PolicyError } from "./policy-error.js";
import { reloadCounted } from "./telemetry-metrics.js";

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const consoleLogger: Logger = {
  info: (msg, f) => console.error(JSON.stringify({ level: "info", msg, ...f })),
  warn: (msg, f) => console.error(JSON.stringify({ level: "warn", msg, ...f })),
  error: (msg, f) => console.error(JSON.stringify({ level: "error", msg, ...f })),
};

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export interface PolicyVersion {
  version: string;
  previousVersion: string;
  name: string;
  loadedAtMs: number;
  mode: "enforce" | "monitor";
}

export type ReloadResult =
  | { ok: true; changed: boolean; version: string }
  | { ok: false; error: PolicyError; version: string };

export interface StoreOptions {
  policyPath?: string | undefined;
  policyText?: string | undefined;
  engine?: Omit<EngineOptions, "version"> | undefined;
  logger?: Logger | undefined;
  /** Debounce of file change events, ms (default 150). */
  debounceMs?: number | undefined;
}

export class PolicyStore {
  engine: PolicyEngine;
  current: PolicyVersion;
  private counter = 1;
  private hash: string;
  private readonly listeners = new Set<(v: PolicyVersion) => void>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly path: string | undefined;
  private readonly log: Logger;

  /** Loads the policy; throws PolicyError when it is invalid. */
  constructor(private readonly opts: StoreOptions) {
    this.log = opts.logger ?? silentLogger;
    this.path = opts.policyPath ? resolve(opts.policyPath) : undefined;
    const text = this.readText();
    this.hash = policyHash(text);
    this.engine = this.build(text);
    this.current = this.versionInfo("");
  }

  private readText(): string {
    if (this.path === undefined) {
      if (this.opts.policyText === undefined)
        throw new PolicyError("io", "no policy: give policyPath or policyText");
      return this.opts.policyText;
    }
    try {
      return readFileSync(this.path, "utf8");
    } catch (err) {
      throw new PolicyError("io", `cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  private build(text: string): PolicyEngine {
    const compiled = compileOrThrow(text, this.path, this.opts.engine?.volumes);
    return new PolicyEngine(compiled, { ...this.opts.engine, version: `${this.counter}-${this.hash}` });
  }

  private versionInfo(previous: string): PolicyVersion {
    return {
      version: this.engine.version,
      previousVersion: previous,
      name: this.engine.policy.name,
      loadedAtMs: Date.now(),
      mode: this.engine.policy.mode,
    };
  }

  /** Re-reads the file (or takes new text). Invalid: keeps the last good version. */
  reload(text?: string): ReloadResult {
    let t: string;
    try {
      t = text ?? this.readText();
    } catch (err) {
      const error = err as PolicyError;
      reloadCounted("failure");
      this.log.error("policy reload failed; keeping the last good version", {
        error: error.message,
        version: this.current.version,
      });
      return { ok: false, error, version: this.current.version };
    }
    const h = policyHash(t);
    if (h === this.hash) return { ok: true, changed: false, version: this.current.version };
    const prevCounter = this.counter;
    const prevHash = this.hash;
    this.counter++;
    this.hash = h;
    try {
      this.engine = this.build(t);
    } catch (err) {
      this.counter = prevCounter;
      this.hash = prevHash;
      const error = err instanceof PolicyError ? err : new PolicyError("internal", String(err));
      reloadCounted("failure");
      this.log.error("policy reload rejected; keeping the last good version", {
        error: error.format(),
        file: error.file,
        line: error.line,
        column: error.column,
        version: this.current.version,
      });
      return { ok: false, error, version: this.current.version };
    }
    this.current = this.versionInfo(this.current.version);
    reloadCounted("success");
    this.log.info("policy loaded", {
      version: this.current.version,
      previous: this.current.previousVersion,
      name: this.current.name,
    });
    for (const l of this.listeners) l(this.current);
    return { ok: true, changed: true, version: this.current.version };
  }

  onChange(listener: (v: PolicyVersion) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts watching the policy file (no-op for inline text). */
  watch(): void {
    if (this.path === undefined || this.watcher) return;
    const file = basename(this.path);
    this.watcher = watch(dirname(this.path), (_event, name) => {
      if (name !== null && name !== file) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload(), this.opts.debounceMs ?? 150);
    });
    this.watcher.on("error", (err) => this.log.warn("policy watch error", { error: String(err) }));
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
    this.listeners.clear();
  }
}
