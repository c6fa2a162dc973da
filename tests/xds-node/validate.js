// Runs grpc-js-xds's own bootstrap parser (validateBootstrapConfig) on each JSON file given and
// prints one JSON line per file: {"ok": true} or {"error": "<the parser's message>"}.
// Usage: node validate.js BOOTSTRAP_FILE...
'use strict';

const fs = require('fs');
const { validateBootstrapConfig } = require('@grpc/grpc-js-xds/build/src/xds-bootstrap');

for (const file of process.argv.slice(2)) {
  try {
    validateBootstrapConfig(JSON.parse(fs.readFileSync(file, 'utf8')));
    console.log(JSON.stringify({ ok: true }));
  } catch (error) {
    console.log(JSON.stringify({ error: error.message }));
  }
}
