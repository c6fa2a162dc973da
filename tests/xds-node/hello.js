// Calls Hello over an xds: target with @grpc/grpc-js-xds, as a Node.js service of the xds
// scenario would, and prints one JSON line: the answers per server, the errors by code and
// their distinct messages.
// The bootstrap comes from GRPC_XDS_BOOTSTRAP, read by grpc-js-xds itself.
// Usage: node hello.js TARGET PROTO_ROOT CALLS DEADLINE_MS
'use strict';

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const xds = require('@grpc/grpc-js-xds');

const [target, protoRoot, callsText, deadlineText] = process.argv.slice(2);
const calls = Number(callsText);
const deadlineMs = Number(deadlineText);

function main() {
  try {
    xds.register();
  } catch (error) {
    console.log(JSON.stringify({ error: `register: ${error.message}` }));
    process.exit(2);
  }
  const definition = protoLoader.loadSync('hellolb/v1/hello.proto', {
    includeDirs: [protoRoot],
    keepCase: true,
  });
  const { HelloService } = grpc.loadPackageDefinition(definition).hellolb.v1;
  let client;
  try {
    client = new HelloService(target, grpc.credentials.createInsecure());
  } catch (error) {
    console.log(JSON.stringify({ error: `channel: ${error.message}` }));
    process.exit(2);
  }
  const byServer = {};
  const errors = {};
  const details = new Set();
  let done = 0;
  let counter = 0;
  const next = () => {
    if (counter >= calls) {
      return;
    }
    counter += 1;
    const deadline = new Date(Date.now() + deadlineMs);
    client.Hello({ client_id: 'node-xds', counter }, { deadline }, (error, response) => {
      if (error) {
        const name = grpc.status[error.code] || String(error.code);
        errors[name] = (errors[name] || 0) + 1;
        details.add(error.details);
      } else {
        byServer[response.server_id] = (byServer[response.server_id] || 0) + 1;
      }
      done += 1;
      if (done === calls) {
        console.log(JSON.stringify({ by_server: byServer, errors, details: [...details] }));
        client.close();
        process.exit(0);
      }
      next();
    });
  };
  // A few calls in flight at a time, as the project's own client sends rounds.
  for (let i = 0; i < 3; i += 1) {
    next();
  }
}

main();
