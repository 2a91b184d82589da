// An HTTP service for the stitching tests (tests/tests/stitching.rs): one Node.js event loop
// serving many requests at once. `GET /r/<id>` sets and reads the Redis key `req:<id>` through
// the npm `redis` client (one shared connection), then answers 200 with the value.
//
//   node stitch_service.js --port P --redis R
'use strict';

const http = require('http');
const { createClient } = require('redis');

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    throw new Error(`missing ${name}`);
  }
  return Number(process.argv[i + 1]);
}

async function main() {
  const port = arg('--port');
  const redis = createClient({ socket: { host: '127.0.0.1', port: arg('--redis') } });
  redis.on('error', (e) => console.error('redis:', e.message));
  await redis.connect();
  const server = http.createServer(async (req, res) => {
    const m = /^\/r\/(\d+)$/.exec(req.url);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const key = `req:${m[1]}`;
    try {
      await redis.set(key, m[1]);
      const v = await redis.get(key);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(String(v));
    } catch (e) {
      res.writeHead(500).end(e.message);
    }
  });
  server.listen(port, '127.0.0.1');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
