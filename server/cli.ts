#!/usr/bin/env node
import { parseArgs } from "node:util";
import { MessageBus } from "./bus.js";
import { allowedOrigins, NUMBER_FLAGS, numberFlagsUsage, numberOptions } from "./cli-flags.js";
import { demoApp } from "./demo.js";

const USAGE = `usage: cometbus serve [options]

  --port N              port to listen on (default: $PORT or 3000)
  --host H              address to bind (default 127.0.0.1)
  --base PATH           where the bus is mounted (default /message-bus)
  --backend URL         memory (default), redis://…, redis+cluster://host:port,host:port or postgres://…
  --publish-token T     enables POST {base}/publish with "Authorization: Bearer T"
  --deflate             WebSocket permessage-deflate for clients that offer it (off by default)
  --allowed-origins L   WebSocket origins allowed: comma-separated (https://app.example), or * (default: same host)
  --metrics             serve Prometheus metrics at GET {base}/metrics (bearer token: --metrics-token, else the publish token)
  --metrics-token T     the bearer token GET {base}/metrics asks for (implies --metrics)
  --no-long-polling     answer every poll at once (no held long-polls)
  --no-chunked          long-polls answer unchunked
${numberFlagsUsage()}
  --demo                also serve the demo pages at /

  SIGTERM drains (fails {base}/health, waits the delay, stops accepting, tells every connection to
  move, spread over the window), then exits; SIGINT exits at once (connections are still told to move, each at a random moment).
`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      base: { type: "string", default: "/message-bus" },
      backend: { type: "string", default: "memory" },
      "publish-token": { type: "string" },
      deflate: { type: "boolean", default: false },
      "allowed-origins": { type: "string" },
      metrics: { type: "boolean", default: false },
      "metrics-token": { type: "string" },
      "no-long-polling": { type: "boolean", default: false },
      "no-chunked": { type: "boolean", default: false },
      ...Object.fromEntries(NUMBER_FLAGS.map((f) => [f.flag, { type: "string" as const }])),
      demo: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals[0] !== "serve") {
    process.stdout.write(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  // An empty PORT (set but blank, as CI templates leave it) means the default, not port 0.
  const port = Number(values.port ?? (process.env.PORT || 3000));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port: ${values.port}`);
  const bus = new MessageBus({
    backend: values.backend as string,
    base: values.base as string,
    publishToken: (values["publish-token"] as string | undefined) ?? process.env.COMETBUS_PUBLISH_TOKEN,
    allowedOrigins: allowedOrigins(values["allowed-origins"] as string | undefined),
    metrics: values.metrics || values["metrics-token"] !== undefined ? { token: values["metrics-token"] as string | undefined } : undefined,
    longPolling: values["no-long-polling"] ? false : undefined,
    chunkedEncoding: values["no-chunked"] ? false : undefined,
    perMessageDeflate: values.deflate as boolean,
    ...numberOptions(values),
  });
  await bus.ready();
  const app = values.demo ? demoApp(bus) : undefined;
  const server = await bus.listen(port, values.host, app);
  process.stdout.write(`cometbus listening on ${server.url}${values.demo ? "/" : bus.options.base}\n`);
  // On Bun and Deno: say that their own server (and WebSocket) serves, not their Node compatibility layer.
  if (server.runtime !== "node") process.stdout.write(`cometbus serves with ${server.runtime === "bun" ? "Bun.serve" : "Deno.serve"} and its own WebSocket\n`);
  let stopping = false;
  const stop = (drain: boolean) => {
    if (stopping) return;
    stopping = true;
    (drain ? server.drain() : Promise.resolve())
      .then(() => server.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.once("SIGINT", () => stop(false));
  process.once("SIGTERM", () => stop(true));
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`cometbus: ${e instanceof Error ? e.message : e}\n`);
  process.exit(1);
});
