// The Node peer of bench's ws-fanout: the `ws` package's server keeps
// every socket on /ws; GET /broadcast sends one message to all of them and
// answers how long the sends took on the event loop. Used by
// load-tests/ws_fanout.py --peer node.
// Usage: node ws-fanout.js PORT
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 3412);
const sockets = [];
const server = http.createServer((req, res) => {
  if (req.url === '/broadcast') {
    const message = '{"order":42,"step":"notified"}';
    const start = process.hrtime.bigint();
    let sent = 0;
    for (const ws of sockets) {
      ws.send(message);
      sent += 1;
    }
    const ns = Number(process.hrtime.bigint() - start);
    res.end(JSON.stringify({ sent, refused: 0, ns }));
    return;
  }
  res.statusCode = 404;
  res.end();
});
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
wss.on('connection', (ws) => sockets.push(ws));
server.listen(port, '127.0.0.1', () => console.log(`ws-fanout listening on http://127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
