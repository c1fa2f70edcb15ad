// Sessions registered on this host: the context sent with every check, and per-session counters.
// Kept in memory and, when a state file is configured, on disk, so that a restarted broker can
// register them with the driver again.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export interface Session {
  token: bigint;
  rootPid: number;
  workspace: string;
  userSid: string;
  userProfile: string;
  agent: string;
  registeredAtMs: number;
  counters: { allow: number; deny: number; approve: number; audit: number; failMode: number; stale: number };
}

export type SessionInput = Pick<Session, "rootPid" | "workspace" | "userSid" | "userProfile" | "agent"> & {
  token?: bigint;
};

/** What was wrong: the request (invalid), a session already there (exists), none there (missing). */
export type SessionErrorKind = "invalid" | "exists" | "missing";

export class SessionError extends Error {
  override readonly name = "SessionError";
  constructor(
    message: string,
    readonly kind: SessionErrorKind = "invalid",
  ) {
    super(message);
  }
}

const SID = /^S-1-\d+(-\d+)+$/;
/** The driver's limit for a path in a message (UNICODE_STRING, in UTF-16 code units). */
const MAX_PATH_UNITS = 32767;
const MAX_AGENT_CHARS = 256;

/** Why `p` is not an absolute Windows path the policy server can canonicalise, or undefined. */
function pathProblem(field: string, p: string): string | undefined {
  if (p.trim() !== p || p === "") return `${field} must not be blank or have spaces around it`;
  if (p.length > MAX_PATH_UNITS) return `${field} is ${p.length} characters, more than ${MAX_PATH_UNITS}`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  if (/[\x00-\x1f]/.test(p)) return `${field} contains a control character`;
  if (!/^([A-Za-z]:[\\/]|\\\\|\\\?\?\\|\\Device\\)/i.test(p))
    return `${field} must be an absolute Windows path (C:\\..., \\\\server\\share\\... or \\Device\\...), got ${JSON.stringify(p.slice(0, 80))}`;
  return undefined;
}

export class SessionStore {
  private readonly sessions = new Map<bigint, Session>();

  constructor(private readonly stateFile?: string) {
    if (stateFile) this.load();
  }

  /** Validates and adds a session; a token of 0 (or none) gets a random one. */
  add(input: SessionInput): Session {
    validate(input);
    let token = input.token ?? 0n;
    if (token === 0n) token = randomBytes(8).readBigUInt64LE() || 1n;
    if (this.sessions.has(token)) throw new SessionError(`session ${token} is already registered`, "exists");
    for (const o of this.sessions.values())
      if (o.rootPid === input.rootPid)
        throw new SessionError(`root_pid ${input.rootPid} already roots session ${o.token}`, "exists");
    const s: Session = {
      token,
      rootPid: input.rootPid,
      workspace: input.workspace,
      userSid: input.userSid,
      userProfile: input.userProfile,
      agent: input.agent,
      registeredAtMs: Date.now(),
      counters: { allow: 0, deny: 0, approve: 0, audit: 0, failMode: 0, stale: 0 },
    };
    // Saved first: a state file that cannot be written leaves the sessions as they were.
    this.save([...this.sessions.values(), s]);
    this.sessions.set(token, s);
    return s;
  }

  remove(token: bigint): Session {
    const s = this.sessions.get(token);
    if (!s) throw new SessionError(`no session ${token}`, "missing");
    this.save(this.list().filter((o) => o !== s));
    this.sessions.delete(token);
    return s;
  }

  get(token: bigint): Session | undefined {
    return this.sessions.get(token);
  }

  list(): Session[] {
    return [...this.sessions.values()];
  }

  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.stateFile!, "utf8");
    } catch {
      return;
    }
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch (e) {
      throw new SessionError(`session state ${this.stateFile} is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(list)) throw new SessionError(`session state ${this.stateFile} must be a JSON list`);
    list.forEach((raw: Record<string, unknown>, i) => {
      try {
        if (typeof raw !== "object" || raw === null) throw new SessionError("not an object");
        if (typeof raw.token !== "string" || !/^\d+$/.test(raw.token) || raw.token === "0")
          throw new SessionError("token must be a decimal string");
        const s: Session = {
          token: BigInt(raw.token),
          rootPid: raw.rootPid as number,
          workspace: raw.workspace as string,
          userSid: typeof raw.userSid === "string" ? raw.userSid : "",
          userProfile: typeof raw.userProfile === "string" ? raw.userProfile : "",
          agent: typeof raw.agent === "string" ? raw.agent : "",
          registeredAtMs: typeof raw.registeredAtMs === "number" ? raw.registeredAtMs : Date.now(),
          counters: { allow: 0, deny: 0, approve: 0, audit: 0, failMode: 0, stale: 0 },
        };
        const c = raw.counters as Record<string, unknown> | undefined;
        for (const k of Object.keys(s.counters) as (keyof Session["counters"])[])
          if (typeof c?.[k] === "number") s.counters[k] = c[k] as number;
        validate(s);
        this.sessions.set(s.token, s);
      } catch (e) {
        throw new SessionError(`session state ${this.stateFile}, entry ${i}: ${(e as Error).message}`);
      }
    });
  }

  private save(sessions: Session[] = this.list()): void {
    if (!this.stateFile) return;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(
      tmp,
      JSON.stringify(
        sessions.map((s) => ({ ...s, token: s.token.toString() })),
        null,
        2,
      ),
    );
    renameSync(tmp, this.stateFile);
  }
}

/** Throws a SessionError naming the first field of `input` that is wrong. */
function validate(input: SessionInput): void {
  if (!Number.isInteger(input.rootPid) || input.rootPid <= 0 || input.rootPid > 0xffffffff) {
    throw new SessionError(`root_pid must be a process id 1..4294967295, got ${input.rootPid}`);
  }
  if (!input.workspace) throw new SessionError("workspace is required (the directory the agent works in)");
  const why =
    pathProblem("workspace", input.workspace) ??
    (input.userProfile ? pathProblem("user_profile", input.userProfile) : undefined);
  if (why) throw new SessionError(why);
  if (input.userSid && !SID.test(input.userSid))
    throw new SessionError(`user_sid "${input.userSid}" is not a SID (S-1-...)`);
  if (input.agent.length > MAX_AGENT_CHARS)
    throw new SessionError(`agent is ${input.agent.length} characters, more than ${MAX_AGENT_CHARS}`);
}
