/work/main/target-wt/release/deps/demo_api-2ada135b8032648c.d: server/src/bin/demo-api/main.rs server/src/bin/demo-api/args.rs server/src/bin/demo-api/files.rs server/src/bin/demo-api/journal.rs server/src/bin/demo-api/metrics.rs server/src/bin/demo-api/orders.rs server/src/bin/demo-api/primes.rs server/src/bin/demo-api/users.rs

/work/main/target-wt/release/deps/demo_api-2ada135b8032648c: server/src/bin/demo-api/main.rs server/src/bin/demo-api/args.rs server/src/bin/demo-api/files.rs server/src/bin/demo-api/journal.rs server/src/bin/demo-api/metrics.rs server/src/bin/demo-api/orders.rs server/src/bin/demo-api/primes.rs server/src/bin/demo-api/users.rs

server/src/bin/demo-api/main.rs:
server/src/bin/demo-api/args.rs:
server/src/bin/demo-api/files.rs:
server/src/bin/demo-api/journal.rs:
server/src/bin/demo-api/metrics.rs:
server/src/bin/demo-api/orders.rs:
server/src/bin/demo-api/primes.rs:
server/src/bin/demo-api/users.rs:
