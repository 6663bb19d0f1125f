/work/main/target-wt/release/deps/parser_micro-13aa45d6ff4687ad.d: bench/src/bin/parser-micro.rs

/work/main/target-wt/release/deps/parser_micro-13aa45d6ff4687ad: bench/src/bin/parser-micro.rs

bench/src/bin/parser-micro.rs:
