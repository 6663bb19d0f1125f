/work/main/target-wt/release/deps/phaseloop_core-ef3e5528b94729f6.d: loop-core/src/lib.rs loop-core/src/event_loop.rs loop-core/src/guard.rs loop-core/src/handle_slots.rs loop-core/src/hooks.rs loop-core/src/immediates.rs loop-core/src/io.rs loop-core/src/metrics.rs loop-core/src/microtasks.rs loop-core/src/oneshot.rs loop-core/src/pool/mod.rs loop-core/src/pool/job.rs loop-core/src/pool/crypto.rs loop-core/src/pool/dns.rs loop-core/src/pool/fs.rs loop-core/src/pool/zlib.rs loop-core/src/remote.rs loop-core/src/signal.rs loop-core/src/sleep.rs loop-core/src/task.rs loop-core/src/timers.rs loop-core/src/worker.rs

/work/main/target-wt/release/deps/libphaseloop_core-ef3e5528b94729f6.rlib: loop-core/src/lib.rs loop-core/src/event_loop.rs loop-core/src/guard.rs loop-core/src/handle_slots.rs loop-core/src/hooks.rs loop-core/src/immediates.rs loop-core/src/io.rs loop-core/src/metrics.rs loop-core/src/microtasks.rs loop-core/src/oneshot.rs loop-core/src/pool/mod.rs loop-core/src/pool/job.rs loop-core/src/pool/crypto.rs loop-core/src/pool/dns.rs loop-core/src/pool/fs.rs loop-core/src/pool/zlib.rs loop-core/src/remote.rs loop-core/src/signal.rs loop-core/src/sleep.rs loop-core/src/task.rs loop-core/src/timers.rs loop-core/src/worker.rs

/work/main/target-wt/release/deps/libphaseloop_core-ef3e5528b94729f6.rmeta: loop-core/src/lib.rs loop-core/src/event_loop.rs loop-core/src/guard.rs loop-core/src/handle_slots.rs loop-core/src/hooks.rs loop-core/src/immediates.rs loop-core/src/io.rs loop-core/src/metrics.rs loop-core/src/microtasks.rs loop-core/src/oneshot.rs loop-core/src/pool/mod.rs loop-core/src/pool/job.rs loop-core/src/pool/crypto.rs loop-core/src/pool/dns.rs loop-core/src/pool/fs.rs loop-core/src/pool/zlib.rs loop-core/src/remote.rs loop-core/src/signal.rs loop-core/src/sleep.rs loop-core/src/task.rs loop-core/src/timers.rs loop-core/src/worker.rs

loop-core/src/lib.rs:
loop-core/src/event_loop.rs:
loop-core/src/guard.rs:
loop-core/src/handle_slots.rs:
loop-core/src/hooks.rs:
loop-core/src/immediates.rs:
loop-core/src/io.rs:
loop-core/src/metrics.rs:
loop-core/src/microtasks.rs:
loop-core/src/oneshot.rs:
loop-core/src/pool/mod.rs:
loop-core/src/pool/job.rs:
loop-core/src/pool/crypto.rs:
loop-core/src/pool/dns.rs:
loop-core/src/pool/fs.rs:
loop-core/src/pool/zlib.rs:
loop-core/src/remote.rs:
loop-core/src/signal.rs:
loop-core/src/sleep.rs:
loop-core/src/task.rs:
loop-core/src/timers.rs:
loop-core/src/worker.rs:
