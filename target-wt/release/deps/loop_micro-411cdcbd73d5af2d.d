/work/main/target-wt/release/deps/loop_micro-411cdcbd73d5af2d.d: bench/src/bin/loop-micro.rs

/work/main/target-wt/release/deps/loop_micro-411cdcbd73d5af2d: bench/src/bin/loop-micro.rs

bench/src/bin/loop-micro.rs:

# env-dep:CARGO_MANIFEST_DIR=/tmp/wt/bench
