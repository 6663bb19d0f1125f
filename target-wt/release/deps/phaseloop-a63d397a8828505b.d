/work/main/target-wt/release/deps/phaseloop-a63d397a8828505b.d: server/src/lib.rs server/src/app.rs server/src/cluster.rs server/src/codec/mod.rs server/src/codec/chunked.rs server/src/codec/date.rs server/src/codec/error.rs server/src/codec/head.rs server/src/codec/request_line.rs server/src/codec/response.rs server/src/codec/status.rs server/src/config.rs server/src/connection.rs server/src/handler.rs server/src/listener.rs server/src/middleware.rs server/src/read_buffer.rs server/src/request.rs server/src/responder.rs server/src/response.rs server/src/router.rs server/src/server.rs server/src/spares.rs server/src/supervisor.rs

/work/main/target-wt/release/deps/libphaseloop-a63d397a8828505b.rlib: server/src/lib.rs server/src/app.rs server/src/cluster.rs server/src/codec/mod.rs server/src/codec/chunked.rs server/src/codec/date.rs server/src/codec/error.rs server/src/codec/head.rs server/src/codec/request_line.rs server/src/codec/response.rs server/src/codec/status.rs server/src/config.rs server/src/connection.rs server/src/handler.rs server/src/listener.rs server/src/middleware.rs server/src/read_buffer.rs server/src/request.rs server/src/responder.rs server/src/response.rs server/src/router.rs server/src/server.rs server/src/spares.rs server/src/supervisor.rs

/work/main/target-wt/release/deps/libphaseloop-a63d397a8828505b.rmeta: server/src/lib.rs server/src/app.rs server/src/cluster.rs server/src/codec/mod.rs server/src/codec/chunked.rs server/src/codec/date.rs server/src/codec/error.rs server/src/codec/head.rs server/src/codec/request_line.rs server/src/codec/response.rs server/src/codec/status.rs server/src/config.rs server/src/connection.rs server/src/handler.rs server/src/listener.rs server/src/middleware.rs server/src/read_buffer.rs server/src/request.rs server/src/responder.rs server/src/response.rs server/src/router.rs server/src/server.rs server/src/spares.rs server/src/supervisor.rs

server/src/lib.rs:
server/src/app.rs:
server/src/cluster.rs:
server/src/codec/mod.rs:
server/src/codec/chunked.rs:
server/src/codec/date.rs:
server/src/codec/error.rs:
server/src/codec/head.rs:
server/src/codec/request_line.rs:
server/src/codec/response.rs:
server/src/codec/status.rs:
server/src/config.rs:
server/src/connection.rs:
server/src/handler.rs:
server/src/listener.rs:
server/src/middleware.rs:
server/src/read_buffer.rs:
server/src/request.rs:
server/src/responder.rs:
server/src/response.rs:
server/src/router.rs:
server/src/server.rs:
server/src/spares.rs:
server/src/supervisor.rs:
