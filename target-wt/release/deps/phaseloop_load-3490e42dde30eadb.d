/work/main/target-wt/release/deps/phaseloop_load-3490e42dde30eadb.d: bench/src/bin/loadgen/main.rs bench/src/bin/loadgen/args.rs bench/src/bin/loadgen/report.rs bench/src/bin/loadgen/response.rs

/work/main/target-wt/release/deps/phaseloop_load-3490e42dde30eadb: bench/src/bin/loadgen/main.rs bench/src/bin/loadgen/args.rs bench/src/bin/loadgen/report.rs bench/src/bin/loadgen/response.rs

bench/src/bin/loadgen/main.rs:
bench/src/bin/loadgen/args.rs:
bench/src/bin/loadgen/report.rs:
bench/src/bin/loadgen/response.rs:
