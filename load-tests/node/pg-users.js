// The seed's GET /api/users/:id on Express with pg's Pool (the seed's
// settings and its queryDatabase helper), without the cache, so every
// request reads PostgreSQL: the peer of bench/src/bin/pg-users.rs.
// Usage: node pg-users.js PORT DATABASE_URL [SQL]
const express = require("express");
const { Pool } = require("pg");

const [port, url, sqlArg] = process.argv.slice(2);
const sql = sqlArg || "SELECT id, name, email FROM users WHERE id = $1";
const pool = new Pool({
  connectionString: url,
  max: 20,
  idleTimeoutMillis: 30000,
  connectionTimeoutMillis: 2000,
});

async function queryDatabase(sql, params) {
  const client = await pool.connect();
  try {
    const result = await client.query(sql, params);
    return result.rows;
  } finally {
    client.release();
  }
}

const app = express();
app.use(express.json({ limit: "10kb" }));
app.get("/api/users/:id", async (req, res) => {
  try {
    const userId = parseInt(req.params.id);
    if (!userId) {
      return res.status(400).json({ error: "Invalid user ID" });
    }
    const rows = await queryDatabase(sql, [userId]);
    if (rows.length === 0) {
      return res.status(404).json({ error: "User not found" });
    }
    res.json(rows[0]);
  } catch (error) {
    console.error("Error:", error);
    res.status(500).json({ error: "Internal server error" });
  }
});
app.listen(Number(port), "127.0.0.1");
