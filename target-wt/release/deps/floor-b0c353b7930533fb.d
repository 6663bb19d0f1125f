/work/main/target-wt/release/deps/floor-b0c353b7930533fb.d: bench/src/bin/floor.rs

/work/main/target-wt/release/deps/floor-b0c353b7930533fb: bench/src/bin/floor.rs

bench/src/bin/floor.rs:
