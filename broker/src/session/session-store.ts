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

export class SessionError extends Error {
  override readonly name = "SessionError";
}

const SID = /^S-1-\d+(-\d+)+$/;

export class SessionStore {
  private readonly sessions = new Map<bigint, Session>();

  constructor(private readonly stateFile?: string) {
    if (stateFile) this.load();
  }

  /** Validates and adds a session; a token of 0 (or none) gets a random one. */
  add(input: SessionInput): Session {
    if (!Number.isInteger(input.rootPid) || input.rootPid <= 0 || input.rootPid > 0xffffffff) {
      throw new SessionError(`root_pid must be a process id 1..4294967295, got ${input.rootPid}`);
    }
    if (!input.workspace) throw new SessionError("workspace is required (the directory the agent works in)");
    if (input.userSid && !SID.test(input.userSid))
      throw new SessionError(`user_sid "${input.userSid}" is not a SID (S-1-...)`);
    let token = input.token ?? 0n;
    if (token === 0n) token = randomBytes(8).readBigUInt64LE() || 1n;
    if (this.sessions.has(token)) throw new SessionError(`session ${token} is already registered`);
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
    this.sessions.set(token, s);
    this.save();
    return s;
  }

  remove(token: bigint): Session {
    const s = this.sessions.get(token);
    if (!s) throw new SessionError(`no session ${token}`);
    this.sessions.delete(token);
    this.save();
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
    try {
      for (const raw of JSON.parse(text) as Array<Record<string, unknown>>) {
        const s = { ...(raw as unknown as Session), token: BigInt(raw.token as string) };
        this.sessions.set(s.token, s);
      }
    } catch (e) {
      throw new SessionError(`session state ${this.stateFile} is not valid JSON: ${(e as Error).message}`);
    }
  }

  private save(): void {
    if (!this.stateFile) return;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(
      tmp,
      JSON.stringify(
        this.list().map((s) => ({ ...s, token: s.token.toString() })),
        null,
        2,
      ),
    );
    renameSync(tmp, this.stateFile);
  }
}
