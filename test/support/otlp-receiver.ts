// A stand-in OpenTelemetry collector for tests and benchmarks: accepts OTLP/HTTP exports on
// loopback and counts them (bytes in all, requests per signal path such as /v1/traces).
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface OtlpReceiver {
  /** The OTEL_EXPORTER_OTLP_ENDPOINT to give an SDK. */
  url: string;
  bytes(): number;
  requests(path: string): number;
  close(): void;
}

export async function otlpReceiver(): Promise<OtlpReceiver> {
  let bytes = 0;
  const requests = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = req.url ?? "";
    requests.set(path, (requests.get(path) ?? 0) + 1);
    req.on("data", (d: Buffer) => {
      bytes += d.length;
    });
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/x-protobuf" });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytes: () => bytes,
    requests: (path) => requests.get(path) ?? 0,
    close: () => server.close(),
  };
}
