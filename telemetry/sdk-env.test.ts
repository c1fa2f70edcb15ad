// startSdk reads the standard OTEL_* variables as the specification and NodeSDK do: values trimmed,
// blank ones unset, names compared without case, a bad value warned about and replaced by the default
// (never a service that fails to start or telemetry that quietly does something else).
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { lightTracing } from "./light-trace.js";
import { providersEpoch, startSdk, type Telemetry } from "./sdk.js";
import { rootSampling } from "./trace.js";

/** Starts the SDK with `env` (metrics and traces off unless `env` says otherwise), runs `fn` on it
 * with the configuration warnings written meanwhile, and shuts it down. */
async function withSdk<T>(
  env: Record<string, string>,
  fn: (t: Telemetry, warnings: string[]) => T | Promise<T>,
  defaultPrometheusPort = 0,
): Promise<T> {
  const warnings: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const line = String(chunk);
    if (line.includes('"level":"warn"')) {
      warnings.push(JSON.parse(line).msg);
      return true;
    }
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  });
  const t = await startSdk({
    service: "agentsh-env-test",
    version: "0",
    defaultPrometheusPort,
    env: { OTEL_METRICS_EXPORTER: "none", OTEL_TRACES_EXPORTER: "none", ...env },
  });
  try {
    return await fn(t, warnings);
  } finally {
    await t.shutdown();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("OTEL_TRACES_SAMPLER", () => {
  const traced = { OTEL_TRACES_EXPORTER: "console" };
  it("names a sampler in any case, with spaces around it", async () => {
    const env = {
      ...traced,
      OTEL_TRACES_SAMPLER: " PARENTBASED_TRACEIDRATIO ",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
    };
    expect(await withSdk(env, () => rootSampling())).toBe(0.25);
    expect(await withSdk({ ...traced, OTEL_TRACES_SAMPLER: "Always_Off" }, () => rootSampling())).toBe(0);
  });

  it("unknown or blank: a warning for the unknown one, and the default ratio sampler at 0.01", async () => {
    const [ratio, warnings] = await withSdk({ ...traced, OTEL_TRACES_SAMPLER: "bogus" }, (_t, w) => [
      rootSampling(),
      w,
    ]);
    expect(ratio).toBe(0.01);
    expect(warnings).toEqual([expect.stringContaining('OTEL_TRACES_SAMPLER: unsupported "bogus"')]);
    expect(await withSdk({ ...traced, OTEL_TRACES_SAMPLER: "  " }, () => rootSampling())).toBe(0.01);
    expect(await withSdk({ ...traced, OTEL_TRACES_SAMPLER_ARG: " " }, () => rootSampling())).toBe(0.01);
  });
});

describe("exporter lists", () => {
  it("are read without case: OTEL_TRACES_EXPORTER=OTLP traces", async () => {
    expect(await withSdk({ OTEL_TRACES_EXPORTER: "OTLP" }, () => rootSampling())).toBe(0.01);
  });

  it('"none" among them means none, and the telemetry says so', async () => {
    const t = await withSdk(
      {
        OTEL_METRICS_EXPORTER: "console, none",
        OTEL_LOGS_EXPORTER: "otlp,none",
        OTEL_TRACES_EXPORTER: "otlp,none",
      },
      (t) => ({ metrics: t.metricsExporters, logs: t.logsExporters, ratio: rootSampling() }),
    );
    expect(t).toEqual({ metrics: [], logs: [], ratio: 0 });
  });

  it("report what was started: unsupported names are left out", async () => {
    const t = await withSdk({ OTEL_LOGS_EXPORTER: "Console,zipkin" }, (t) => t.logsExporters);
    expect(t).toEqual(["console"]);
  });
});

describe("OTEL_SDK_DISABLED", () => {
  it("true in any case and with spaces starts nothing", async () => {
    const e0 = providersEpoch();
    const port = await freePort();
    const t = await withSdk(
      { OTEL_SDK_DISABLED: "True ", OTEL_METRICS_EXPORTER: "prometheus", OTEL_TRACES_EXPORTER: "console" },
      (t) => ({ scrape: t.scrapeUrl, metrics: t.metricsExporters, traced: rootSampling() }),
      port,
    );
    expect(t).toEqual({ scrape: undefined, metrics: [], traced: 0 });
    expect(providersEpoch()).toBe(e0);
  });
});

describe("OTEL_EXPORTER_PROMETHEUS_PORT", () => {
  it("not a port: a warning, and the service's default port", async () => {
    const port = await freePort();
    for (const bad of ["abc", "0", "70000"]) {
      const [url, warnings, body] = await withSdk(
        { OTEL_METRICS_EXPORTER: "prometheus", OTEL_EXPORTER_PROMETHEUS_PORT: bad },
        async (t, w) => [t.scrapeUrl, w, await (await fetch(t.scrapeUrl!)).text()] as const,
        port,
      );
      expect(url).toBe(`http://127.0.0.1:${port}/metrics`);
      expect(warnings).toEqual([
        `OTEL_EXPORTER_PROMETHEUS_PORT: "${bad}" is not a port (1-65535); using ${port}`,
      ]);
      expect(body).toContain("target_info");
    }
  });
});

describe("OTEL_METRIC_EXPORT_INTERVAL and _TIMEOUT", () => {
  it("0 is ignored (the default is used), not a service that fails to start", async () => {
    const ok = await withSdk(
      { OTEL_METRICS_EXPORTER: "console", OTEL_METRIC_EXPORT_INTERVAL: "0", OTEL_METRIC_EXPORT_TIMEOUT: "0" },
      (t) => t.metricsExporters,
    );
    expect(ok).toEqual(["console"]);
  });
});

describe("OTEL_PROPAGATORS", () => {
  const light = (propagators?: string) =>
    withSdk(
      {
        OTEL_TRACES_EXPORTER: "console",
        ...(propagators === undefined ? {} : { OTEL_PROPAGATORS: propagators }),
      },
      () => lightTracing(),
    );
  it("W3C trace context is read and written directly only when it is the propagator", async () => {
    expect(await light()).toBe(true);
    expect(await light("tracecontext")).toBe(true);
    expect(await light("TraceContext, baggage")).toBe(true);
    expect(await light("baggage")).toBe(false);
    expect(await light("b3")).toBe(false);
    expect(await light("none")).toBe(false);
  });
});

describe("OTEL_LOG_LEVEL", () => {
  it("sets the level of the SDK's diagnostic messages", () => {
    /** What a process that starts the SDK at `level` and then logs `call` writes (the diagnostic
     * logger writes with the console as it was when the API loaded, so this runs in a process). */
    const written = (level: string, call: string): string => {
      const script = `import { diag } from "@opentelemetry/api";
        import { startSdk } from ${JSON.stringify(new URL("./sdk.ts", import.meta.url).pathname)};
        const t = await startSdk({ service: "x", version: "0", defaultPrometheusPort: 0,
          env: { OTEL_METRICS_EXPORTER: "none", OTEL_LOG_LEVEL: ${JSON.stringify(level)} } });
        ${call};
        await t.shutdown();`;
      const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        cwd: new URL(".", import.meta.url).pathname,
        encoding: "utf8",
      });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout + r.stderr;
    };
    expect(written("error", 'diag.warn("a warning")')).not.toContain("a warning");
    expect(written("error", 'diag.error("an error")')).toContain("an error");
    expect(written("debug", 'diag.debug("a debug message")')).toContain("a debug message");
  });
});
