// Node's http module answering /plaintext the TechEmpower way: the peer in
// phaseloop's HTTP comparisons. Usage: node plaintext.js [port]
'use strict';
const http = require('node:http');
const port = Number(process.argv[2] || 8081);
const body = 'Hello, World!';
http
  .createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length });
    res.end(body);
  })
  .listen(port, '127.0.0.1', () => console.log(`node listening on 127.0.0.1:${port}`));
