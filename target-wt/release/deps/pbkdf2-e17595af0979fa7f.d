/work/main/target-wt/release/deps/pbkdf2-e17595af0979fa7f.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pbkdf2-0.12.2/src/lib.rs

/work/main/target-wt/release/deps/libpbkdf2-e17595af0979fa7f.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pbkdf2-0.12.2/src/lib.rs

/work/main/target-wt/release/deps/libpbkdf2-e17595af0979fa7f.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pbkdf2-0.12.2/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pbkdf2-0.12.2/src/lib.rs:
