// The seed article's high-traffic API in Express: the Node peer of
// phaseloop's demo-api for load tests. Same routes the load scenarios use,
// same data directory layout (users/<id>.json, orders.log with fsync).
// Usage: node demo-express.js [port] [data-dir]
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const express = require('express');

const port = Number(process.argv[2] || 3000);
const dataDir = process.argv[3] || 'data-express';
const usersDir = path.join(dataDir, 'users');
fs.mkdirSync(usersDir, { recursive: true });
for (let id = 1; id <= 100; id++) {
  const file = path.join(usersDir, `${id}.json`);
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, JSON.stringify({ id, name: `User ${id}`, email: `user${id}@example.com` }));
  }
}
const ordersLog = path.join(dataDir, 'orders.log');
const cache = new Map();
const TTL_MS = 3600 * 1000;
let nextOrderId = 1;

const app = express();
app.use(express.json({ limit: '10kb' }));

app.get('/plaintext', (req, res) => res.type('text/plain').send('Hello, World!'));
app.get('/json', (req, res) => res.json({ message: 'Hello, World!' }));
app.get('/health', (req, res) => res.json({ status: 'healthy', timestamp: Date.now() }));

app.get('/api/users/:id', async (req, res) => {
  const userId = /^\d+$/.test(req.params.id) ? Number(req.params.id) : 0;
  if (!userId) return res.status(400).json({ error: 'Invalid user ID' });
  const hit = cache.get(userId);
  if (hit && hit.expires > Date.now()) return res.type('application/json').send(hit.json);
  try {
    const json = await fs.promises.readFile(path.join(usersDir, `${userId}.json`), 'utf8');
    cache.set(userId, { json, expires: Date.now() + TTL_MS });
    res.type('application/json').send(json);
  } catch (e) {
    if (e.code === 'ENOENT') return res.status(404).json({ error: 'User not found' });
    res.status(500).json({ error: 'Internal server error' });
  }
});

app.post('/api/orders', async (req, res) => {
  const o = req.body;
  if (!o || !(o.restaurant_id > 0) || !o.customer || !Array.isArray(o.items) || o.items.length === 0) {
    return res.status(400).json({ error: 'invalid order' });
  }
  const id = nextOrderId++;
  const fh = await fs.promises.open(ordersLog, 'a');
  try {
    await fh.appendFile(JSON.stringify({ id, order: o }) + '\n');
    await fh.datasync();
  } finally {
    await fh.close();
  }
  res.status(201).json({ id, status: 'accepted', notification: 'scheduled' });
  setImmediate(() => {
    fs.appendFile(path.join(dataDir, 'notifications.log'), JSON.stringify({ order_id: id }) + '\n', () => {});
  });
});

app.post('/api/hash', (req, res) => {
  const { password, salt } = req.body || {};
  if (typeof password !== 'string' || typeof salt !== 'string') return res.status(400).json({ error: 'password and salt required' });
  crypto.pbkdf2(password, salt, 100000, 64, 'sha512', (err, key) => {
    if (err) return res.status(500).json({ error: err.message });
    res.json({ algorithm: 'pbkdf2-sha512', iterations: 100000, hash: key.toString('hex') });
  });
});

app.listen(port, '127.0.0.1', () => console.log(`demo-express listening on http://127.0.0.1:${port}`));
